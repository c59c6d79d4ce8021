"""LocalStorage: a folder standing in for S3, with S3's codes, ETags, key order and atomic writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dmap.errors import StorageError
from dmap.storage.local import LocalStorage


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    (tmp_path / "b").mkdir()
    return LocalStorage(tmp_path)


def _write(storage: LocalStorage, key: str, data: bytes) -> None:
    with storage.open_write("b", key) as f:
        f.write(data)


def _code(call: object) -> str:
    with pytest.raises(StorageError) as info:
        call()  # type: ignore[operator]
    return info.value.code


def test_a_written_object_reads_back_and_lists_with_an_md5_etag(storage: LocalStorage) -> None:
    _write(storage, "dir/sub/obj.txt", b"content")
    with storage.open_read("b", "dir/sub/obj.txt") as f:
        assert f.read() == b"content"
        assert f.seek(3) == 3 and f.read(2) == b"te"
    [info] = list(storage.list_objects("b"))
    assert (info.key, info.size, info.storage_class) == ("dir/sub/obj.txt", 7, "STANDARD")
    assert info.etag == '"' + hashlib.md5(b"content").hexdigest() + '"'
    assert info.last_modified == pytest.approx(os.path.getmtime(storage.root / "b" / "dir" / "sub" / "obj.txt"))


def test_an_object_appears_only_when_its_stream_is_closed(storage: LocalStorage) -> None:
    stream = storage.open_write("b", "out.json")
    stream.write(b"[1,")
    assert list(storage.list_objects("b")) == []
    assert _code(lambda: storage.open_read("b", "out.json")) == "NoSuchKey"
    stream.write(b"2]")
    stream.close()
    assert [o.key for o in storage.list_objects("b")] == ["out.json"]
    assert (storage.root / "b" / "out.json").read_bytes() == b"[1,2]"


def test_an_aborted_or_failed_write_leaves_nothing_behind(storage: LocalStorage) -> None:
    _write(storage, "keep.txt", b"old")
    stream = storage.open_write("b", "keep.txt")
    stream.write(b"new")
    stream.abort()  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), storage.open_write("b", "other.txt") as f:
        f.write(b"partial")
        raise RuntimeError("the writer failed")
    assert [o.key for o in storage.list_objects("b")] == ["keep.txt"]
    assert sorted(os.listdir(storage.root / "b")) == ["keep.txt"]
    assert (storage.root / "b" / "keep.txt").read_bytes() == b"old"


def test_listing_is_in_s3_key_order_across_folders(storage: LocalStorage) -> None:
    keys = ["a/c", "a-b", "a/b/z", "a0", "B", "é", "a/b-c"]
    for key in keys:
        _write(storage, key, b"x")
    assert [o.key for o in storage.list_objects("b")] == sorted(keys)


def test_listing_honours_prefix_and_start_after(storage: LocalStorage) -> None:
    keys = sorted(f"p/{d}/{n}" for d in ("x", "y", "z") for n in range(3)) + ["p-other", "q"]
    for key in keys:
        _write(storage, key, b"x")
    listed = [o.key for o in storage.list_objects("b", "p/")]
    assert listed == [k for k in keys if k.startswith("p/")]
    assert [o.key for o in storage.list_objects("b", "p/", start_after="p/y/0")] == [
        "p/y/1",
        "p/y/2",
        "p/z/0",
        "p/z/1",
        "p/z/2",
    ]
    assert [o.key for o in storage.list_objects("b", start_after="p/z/2")] == ["q"]  # "p-other" < "p/": "-" < "/"
    everything = sorted(keys)
    assert everything[0] == "p-other"
    assert [o.key for o in storage.list_objects("b", start_after="p-other")] == everything[1:]
    assert [o.key for o in storage.list_objects("b", "p/y")] == ["p/y/0", "p/y/1", "p/y/2"]
    assert [o.key for o in storage.list_objects("b", start_after="p/zz")] == ["q"]
    assert list(storage.list_objects("b", "p/../")) == []


def test_listing_is_lazy(storage: LocalStorage) -> None:
    for n in range(5):
        _write(storage, f"d{n}/k", b"x")
    listing = storage.list_objects("b")
    assert next(listing).key == "d0/k"
    (storage.root / "b" / "d4" / "k").unlink()
    assert [o.key for o in listing] == ["d1/k", "d2/k", "d3/k"]


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../../x", "a/./b", ".."])
def test_keys_that_escape_the_bucket_are_access_denied(storage: LocalStorage, key: str) -> None:
    assert _code(lambda: storage.open_read("b", key)) == "AccessDenied"
    assert _code(lambda: storage.open_write("b", key)) == "AccessDenied"


def test_symlinks_that_leave_the_bucket_are_access_denied(storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f").write_bytes(b"secret")
    os.symlink(outside, tmp_path / "b" / "escape")
    assert _code(lambda: storage.open_read("b", "escape/f")) == "AccessDenied"
    assert _code(lambda: storage.open_write("b", "escape/new")) == "AccessDenied"
    assert not (outside / "new").exists()


def test_missing_things_have_s3_codes(storage: LocalStorage) -> None:
    assert _code(lambda: storage.open_read("b", "nope")) == "NoSuchKey"
    assert _code(lambda: storage.open_read("b", "a//b")) == "NoSuchKey"
    assert _code(lambda: storage.open_read("nobucket", "k")) == "NoSuchBucket"
    assert _code(lambda: list(storage.list_objects("nobucket"))) == "NoSuchBucket"
    assert _code(lambda: storage.check_writable("nobucket")) == "NoSuchBucket"
    assert _code(lambda: storage.open_read("..", "k")) == "InvalidBucketName"
    assert _code(lambda: storage.open_write("b", "dir/")) == "InvalidArgument"
    _write(storage, "file", b"x")
    assert _code(lambda: storage.open_write("b", "file/under")) == "InvalidArgument"
    storage.check_writable("b")


def test_a_folder_is_not_an_object(storage: LocalStorage) -> None:
    _write(storage, "dir/k", b"x")
    assert _code(lambda: storage.open_read("b", "dir")) == "NoSuchKey"
    assert _code(lambda: storage.open_write("b", "dir")) == "InvalidArgument"


def test_the_etag_follows_changes_to_a_file(storage: LocalStorage) -> None:
    _write(storage, "k", b"one")
    first = next(storage.list_objects("b")).etag
    _write(storage, "k", b"two!")
    second = next(storage.list_objects("b")).etag
    assert first != second == '"' + hashlib.md5(b"two!").hexdigest() + '"'

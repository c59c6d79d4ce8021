"""GZIP and ZSTD sources are decompressed as streams, recognised by their bytes and cross-checked by extension."""

from __future__ import annotations

import gzip

import pytest
import zstandard

from dmap.errors import StatesError

from .conftest import Objects

CSV = b"id,name\n1,one\n2,two\n"
ROWS = [{"id": "1", "name": "one"}, {"id": "2", "name": "two"}]


@pytest.mark.parametrize(
    ("key", "compress"),
    [
        ("rows.csv.gz", gzip.compress),
        ("rows.csv.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("rows.csv.zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("rows.csv", gzip.compress),  # no extension: the magic bytes decide
    ],
)
def test_compressed_csv_is_read_like_plain_csv(objects: Objects, key: str, compress: object) -> None:
    objects.put(key, compress(CSV))  # type: ignore[operator]
    assert objects.values(key=key, input_type="CSV") == ROWS


def test_compressed_json_and_jsonl_are_read(local_objects: Objects) -> None:
    local_objects.put("a.json.gz", gzip.compress(b'{"k": [1, 2]}'))
    local_objects.put("a.jsonl.zst", zstandard.ZstdCompressor().compress(b"1\n2\n"))
    assert local_objects.values(key="a.json.gz", input_type="JSON", items_pointer="/k") == [1, 2]
    assert local_objects.values(key="a.jsonl.zst", input_type="JSONL") == [1, 2]


def test_concatenated_gzip_members_and_zstd_frames_are_one_stream(local_objects: Objects) -> None:
    local_objects.put("multi.jsonl.gz", gzip.compress(b"1\n2\n") + gzip.compress(b"3\n"))
    zc = zstandard.ZstdCompressor()
    local_objects.put("multi.jsonl.zst", zc.compress(b"1\n2\n") + zc.compress(b"3\n"))
    assert local_objects.values(key="multi.jsonl.gz", input_type="JSONL") == [1, 2, 3]
    assert local_objects.values(key="multi.jsonl.zst", input_type="JSONL") == [1, 2, 3]


def test_an_extension_that_contradicts_the_bytes_fails_naming_the_object(local_objects: Objects) -> None:
    local_objects.put("plain.csv.gz", CSV)
    with pytest.raises(StatesError) as info:
        local_objects.values(key="plain.csv.gz", input_type="CSV")
    assert info.value.name == "States.ItemReaderFailed"
    assert "S3://data/plain.csv.gz" in info.value.cause and "not GZIP data" in info.value.cause


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("cut.csv.gz", gzip.compress(CSV * 100)[:-20]),
        ("bad.csv.zst", zstandard.ZstdCompressor().compress(CSV)[:8] + b"\x00" * 16),
    ],
)
def test_corrupt_compressed_data_fails_naming_the_object(objects: Objects, key: str, body: bytes) -> None:
    objects.put(key, body)
    with pytest.raises(StatesError) as info:
        objects.values(key=key, input_type="CSV")
    assert info.value.name == "States.ItemReaderFailed"
    assert f"S3://{objects.bucket}/{key}" in info.value.cause

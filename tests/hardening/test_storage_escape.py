"""Bucket and key names can never reach a file outside ``DMAP_S3_ROOT``.

For the ItemReader (getObject and listings), the ResultWriter and the optimized s3 integrations:
``..`` segments, absolute keys, bucket names that are paths, and symlinks that point outside are
all refused (``AccessDenied``/``InvalidBucketName``...), and nothing outside the folder is read or
written. The layout (``tmp_path``)::

    secret.json            outside the root: must never be read
    outside/               outside the root: must stay empty (or hold only what the test put there)
    s3root/outside.json    inside the root but outside every bucket
    s3root/b/link.json     -> ../../secret.json
    s3root/b/dirlink       -> ../../outside
    s3root/evil            -> ../outside       (a bucket that is a symlink out of the root)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend
from dmap.readers import ReaderSpec, open_items
from dmap.storage.local import LocalStorage

from .conftest import BUCKET
from .flows import distributed_map, object_reader, result_writer

pytestmark = pytest.mark.timeout(30)

SECRET = "TOPSECRET-do-not-read"
LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
SECRET_ITEMS = json.dumps([{"secret": SECRET}])


@pytest.fixture
def layout(s3root: Path) -> Path:
    """The layout of the module docstring; returns ``tmp_path`` (the parent of the root)."""
    top = s3root.parent
    (top / "secret.json").write_text(SECRET_ITEMS, "utf-8")
    (top / "outside").mkdir()
    (top / "outside" / "planted.json").write_text(SECRET_ITEMS, "utf-8")
    (s3root / "outside.json").write_text(SECRET_ITEMS, "utf-8")
    (s3root / BUCKET / "link.json").symlink_to(top / "secret.json")
    (s3root / BUCKET / "dirlink").symlink_to(top / "outside", target_is_directory=True)
    (s3root / "evil").symlink_to(top / "outside", target_is_directory=True)
    return top


def described(execution: dmap.Execution) -> str:
    return json.dumps(execution.describe(), default=str)


def outside_files(top: Path) -> set[str]:
    """Every file under ``top`` that is not under the root (symlinks not followed)."""
    found: set[str] = set()
    for folder, _, files in os.walk(top):
        if Path(folder).is_relative_to(top / "s3root"):
            continue
        found.update(str(Path(folder, name).relative_to(top)) for name in files)
    return found


READ_ESCAPES = [
    (BUCKET, "../outside.json"),
    (BUCKET, "../../secret.json"),
    (BUCKET, "a/../../secret.json"),
    (BUCKET, "/etc/passwd"),
    (BUCKET, str(Path("/tmp").resolve() / "x.json")),
    (BUCKET, "link.json"),
    (BUCKET, "dirlink/planted.json"),
    (BUCKET, "./link.json"),
    (BUCKET, "x\0.json"),
    ("..", "secret.json"),
    ("../s3root/b", "link.json"),
    ("", "secret.json"),
]


@pytest.mark.parametrize(("bucket", "key"), READ_ESCAPES, ids=[f"{b}|{k}" for b, k in READ_ESCAPES])
def test_the_item_reader_cannot_read_outside_the_root(
    bucket: str, key: str, layout: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    definition = distributed_map(reader=object_reader(bucket, key, "JSON"))

    execution = dmap.run(definition, backend=local_backend())

    assert execution.status == "FAILED"
    assert execution.error == "States.ItemReaderFailed"
    assert any(code in (execution.cause or "") for code in ("AccessDenied", "InvalidBucketName", "NoSuchKey"))
    assert SECRET not in described(execution)


def test_a_bucket_that_is_a_symlink_out_of_the_root_is_refused(
    layout: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    execution = dmap.run(distributed_map(reader=object_reader("evil", "planted.json", "JSON")), backend=local_backend())

    assert execution.status == "FAILED"
    assert SECRET not in described(execution)


LIST_ESCAPES = ["../", "../../", "..", "dirlink/", "dirlink", "a/../../", "./", "../s3root/b/"]


@pytest.mark.parametrize("prefix", LIST_ESCAPES)
def test_a_listing_never_yields_or_flattens_a_file_outside_the_bucket(prefix: str, layout: Path) -> None:
    # Straight through the reader: a Map over a source of no items hangs (see test_bad_manifests).
    storage = LocalStorage(layout / "s3root")
    listed = ReaderSpec(resource=LIST_OBJECTS, bucket=BUCKET, prefix=prefix)
    flattened = replace(listed, transformation="LOAD_AND_FLATTEN", input_type="JSON")

    keys = [item.value["Key"] for item in open_items(listed, storage)]
    values = [item.value for item in open_items(flattened, storage)]

    assert keys == []
    assert SECRET not in json.dumps(values)


def test_a_listing_prefix_starting_with_a_slash_matches_no_key(layout: Path) -> None:
    (layout / "s3root" / BUCKET / "inside.json").write_text("[]", "utf-8")
    spec = ReaderSpec(resource=LIST_OBJECTS, bucket=BUCKET, prefix="/inside")

    assert [item.value["Key"] for item in open_items(spec, LocalStorage(layout / "s3root"))] == []


def test_a_whole_bucket_listing_skips_symlinks_that_point_outside(
    layout: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    (layout / "s3root" / BUCKET / "inside.json").write_text(json.dumps([{"inside": True}]), "utf-8")
    reader = {
        "Resource": LIST_OBJECTS,
        "ReaderConfig": {"InputType": "JSON", "Transformation": "LOAD_AND_FLATTEN"},
        "Parameters": {"Bucket": BUCKET},
    }

    execution = dmap.run(distributed_map(reader=reader), backend=local_backend())

    assert execution.status == "SUCCEEDED", execution.cause
    assert [entry["event"] for entry in execution.output] == [{"inside": True}]


WRITE_ESCAPES = [
    (BUCKET, "../../etc"),
    (BUCKET, "../../outside"),
    (BUCKET, "../"),
    (BUCKET, "/abs"),
    (BUCKET, "dirlink"),
    (BUCKET, "a/../../outside"),
    ("..", "x"),
    ("../outside", "x"),
    ("evil/..", "x"),
]
WRITE_IDS = [f"{b}|{p}" for b, p in WRITE_ESCAPES]


@pytest.mark.parametrize(("bucket", "prefix"), WRITE_ESCAPES, ids=WRITE_IDS)
def test_the_result_writer_never_writes_outside_the_root(
    bucket: str, prefix: str, layout: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    before = outside_files(layout)

    try:
        dmap.run(distributed_map(writer=result_writer(bucket, prefix)), input=[{"id": 1}], backend=local_backend())
    except dmap.DmapError:
        pass  # how the run ends is the next test's business; here only the files outside matter

    assert outside_files(layout) == before
    assert not (layout / "etc").exists()


@pytest.mark.parametrize(
    ("bucket", "prefix"),
    [pytest.param(b, p, id=i) for (b, p), i in zip(WRITE_ESCAPES, WRITE_IDS, strict=True)],
)
def test_a_result_writer_prefix_or_bucket_that_escapes_fails_the_map_with_result_writer_failed(
    bucket: str, prefix: str, layout: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    definition = distributed_map(writer=result_writer(bucket, prefix))

    execution = dmap.run(definition, input=[{"id": 1}], backend=local_backend())

    assert execution.status == "FAILED"
    assert execution.error == "States.ResultWriterFailed", execution.cause
    assert any(code in (execution.cause or "") for code in ("AccessDenied", "InvalidBucketName", "NoSuchBucket"))


S3_TASK_ESCAPES: list[tuple[str, dict[str, Any]]] = [
    ("getObject", {"Bucket": BUCKET, "Key": "../../secret.json"}),
    ("getObject", {"Bucket": BUCKET, "Key": "link.json"}),
    ("getObject", {"Bucket": BUCKET, "Key": "/etc/passwd"}),
    ("getObject", {"Bucket": "..", "Key": "secret.json"}),
    ("putObject", {"Bucket": BUCKET, "Key": "../../outside/pwned.txt", "Body": "x"}),
    ("putObject", {"Bucket": BUCKET, "Key": "dirlink/pwned.txt", "Body": "x"}),
    ("putObject", {"Bucket": BUCKET, "Key": "/tmp/pwned.txt", "Body": "x"}),
    ("putObject", {"Bucket": "..", "Key": "pwned.txt", "Body": "x"}),
]


@pytest.mark.parametrize(("action", "parameters"), S3_TASK_ESCAPES, ids=[f"{a}|{p['Key']}" for a, p in S3_TASK_ESCAPES])
def test_the_s3_integrations_cannot_reach_outside_the_root(
    action: str,
    parameters: dict[str, Any],
    layout: Path,
    integrations: Callable[[str], None],
    local_backend: Callable[..., LocalBackend],
) -> None:
    integrations("s3")
    before = outside_files(layout)
    state = {"Type": "Task", "Resource": f"arn:aws:states:::s3:{action}", "Parameters": parameters, "End": True}

    execution = dmap.run({"StartAt": "S3", "States": {"S3": state}}, backend=local_backend())

    assert execution.status == "FAILED"
    assert (execution.error or "").startswith("S3."), (execution.error, execution.cause)
    assert SECRET not in described(execution)
    assert outside_files(layout) == before
    assert not Path("/tmp/pwned.txt").exists()

"""ResultWriter against real storage: S3Storage on moto over HTTP, and LocalStorage on a folder.

Every test runs on both through the parametrized ``target`` fixture; the objects are read back
through the storage's own client (boto3, the file system), not through dmap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dmap.errors import StatesError
from dmap.storage import Storage
from dmap.storage.local import LocalStorage
from dmap.storage.s3 import S3Storage
from dmap.writers import ResultWriter, WriterSpec, child_execution_name

from .support import (
    AWS_SUCCEEDED_RECORD,
    EXECUTION_ARN_PREFIX,
    MAP_RUN_ARN,
    MAP_RUN_ID,
    STATE_MACHINE_ARN,
    WRITER_ARGS,
    pending,
    succeeded,
    unsuccessful,
)

BASE = f"jobs/{MAP_RUN_ID}/"

pytestmark = pytest.mark.integration


class Target:
    """A bucket on one storage backend, read back without dmap."""

    def __init__(
        self, storage: Storage, bucket: str, read: Callable[[str], bytes], keys: Callable[[], list[str]]
    ) -> None:
        self.storage = storage
        self.bucket = bucket
        self.read = read
        self.keys = keys
        self.leftovers: Callable[[], list[str]] = lambda: []

    def json(self, key: str) -> Any:
        return json.loads(self.read(key))


def s3_target(s3_client: Any, bucket: str) -> Target:
    def read(key: str) -> bytes:
        body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def keys() -> list[str]:
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    target = Target(S3Storage(s3_client), bucket, read, keys)
    target.leftovers = lambda: [u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return target


def local_target(root: Path, bucket: str = "results") -> Target:
    (root / bucket).mkdir()

    def keys() -> list[str]:
        return sorted(p.relative_to(root / bucket).as_posix() for p in (root / bucket).rglob("*") if p.is_file())

    target = Target(LocalStorage(root), bucket, lambda key: (root / bucket / key).read_bytes(), keys)
    # LocalStorage writes into hidden temporary files: any left behind is an upload not cleaned up.
    target.leftovers = lambda: [k for k in keys() if k.rsplit("/", 1)[-1].startswith(".")]
    target.keys = lambda: [k for k in keys() if not k.rsplit("/", 1)[-1].startswith(".")]
    return target


@pytest.fixture(params=["s3", "local"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """The same bucket contract on moto-over-HTTP S3 and on a local folder."""
    if request.param == "s3":
        return s3_target(request.getfixturevalue("s3_client"), request.getfixturevalue("bucket"))
    return local_target(tmp_path)


def writer_for(target: Target, **spec: Any) -> ResultWriter:
    max_file_bytes = spec.pop("max_file_bytes", 5 * 1024**3)
    return ResultWriter(
        target.storage,
        WriterSpec(bucket=target.bucket, prefix="jobs", **spec),
        **WRITER_ARGS,
        max_file_bytes=max_file_bytes,
    )


def records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for child in range(40):
        if child % 10 == 3:
            out.append(unsuccessful(child, "FAILED", "ValueError", f"bad item {child}"))
        elif child % 10 == 7:
            out.append(unsuccessful(child, "TIMED_OUT", "States.Timeout", ""))
        elif child >= 36:
            out.append(pending(child))
        else:
            out.append(succeeded(child, [{"customer_id": str(child), "note": "ü" * (child % 5)}]))
    return out


def parse(data: bytes, output_type: str) -> list[Any]:
    if output_type == "JSON":
        values = json.loads(data)
        assert isinstance(values, list)
        return values
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]


@pytest.mark.parametrize("output_type", ["JSON", "JSONL"])
def test_results_and_manifest_land_in_storage_with_exact_sizes(target: Target, output_type: str) -> None:
    writer = writer_for(target, output_type=output_type, max_file_bytes=2_000)
    for record in records():
        writer.write(record)
    output = writer.close()

    assert output == {
        "MapRunArn": MAP_RUN_ARN,
        "ResultWriterDetails": {"Bucket": target.bucket, "Key": BASE + "manifest.json"},
    }
    manifest = target.json(BASE + "manifest.json")
    assert manifest["DestinationBucket"] == target.bucket and manifest["MapRunArn"] == MAP_RUN_ARN
    files = manifest["ResultFiles"]
    assert len(files["SUCCEEDED"]) > 1  # rolled over at 2,000 bytes
    listed = [entry["Key"] for group in ("FAILED", "PENDING", "SUCCEEDED") for entry in files[group]]
    assert target.keys() == sorted([*listed, BASE + "manifest.json"])
    assert target.leftovers() == []
    for group in files.values():
        for entry in group:
            data = target.read(entry["Key"])
            assert entry["Size"] == len(data) <= 2_000

    def group_values(group: str) -> list[Any]:
        return [value for entry in files[group] for value in parse(target.read(entry["Key"]), output_type)]

    expected = records()
    successes = group_values("SUCCEEDED")
    assert [r["Name"] for r in successes] == [
        child_execution_name(MAP_RUN_ID, r["Child"]) for r in expected if r["Status"] == "SUCCEEDED"
    ]
    failures = group_values("FAILED")
    assert [(r["Status"], r["Error"]) for r in failures] == [
        (r["Status"], r["Error"]) for r in expected if r["Status"] in ("FAILED", "TIMED_OUT")
    ]
    assert [json.loads(r["Input"]) for r in group_values("PENDING")] == [{"n": c} for c in range(36, 40) if c % 10 != 7]


def test_a_succeeded_record_read_back_matches_the_aws_record_field_by_field(target: Target) -> None:
    writer = writer_for(target)
    writer.write(succeeded(0, [{"customer_id": "145538", "order_id": "100000"}], item={}))
    writer.close()

    [record] = target.json(BASE + "SUCCEEDED_0.json")
    name = child_execution_name(MAP_RUN_ID, 0)
    expected = dict(
        AWS_SUCCEEDED_RECORD,
        ExecutionArn=EXECUTION_ARN_PREFIX + name,
        Name=name,
        StateMachineArn=STATE_MACHINE_ARN,
    )
    assert list(record) == list(expected)
    for field, value in expected.items():
        assert record[field] == value, field


def test_compact_and_flatten_read_back_as_plain_outputs(target: Target) -> None:
    for transformation, expected in (("COMPACT", [[1, 2], {"a": 3}]), ("FLATTEN", [1, 2, {"a": 3}])):
        writer = writer_for(target, output_type="JSONL", transformation=transformation)
        writer.write(succeeded(0, [1, 2]))
        writer.write(succeeded(1, {"a": 3}))
        writer.close()
        assert parse(target.read(BASE + "SUCCEEDED_0.json"), "JSONL") == expected


def test_a_missing_bucket_fails_with_result_writer_failed_and_no_such_bucket(target: Target) -> None:
    writer = ResultWriter(target.storage, WriterSpec(bucket="no-such-bucket-dmap", prefix="jobs"), **WRITER_ARGS)

    with pytest.raises(StatesError) as checked:
        writer.check()
    assert checked.value.name == "States.ResultWriterFailed"
    assert "no-such-bucket-dmap" in checked.value.cause and "NoSuchBucket" in checked.value.cause

    with pytest.raises(StatesError) as written:
        writer.write(succeeded(0, 1))
    assert written.value.name == "States.ResultWriterFailed"
    assert f"s3://no-such-bucket-dmap/{BASE}SUCCEEDED_0.json" in written.value.cause
    assert "NoSuchBucket" in written.value.cause


def test_check_passes_on_an_existing_bucket(target: Target) -> None:
    writer_for(target).check()
    assert target.keys() == []


def test_abort_leaves_neither_objects_nor_unfinished_uploads(target: Target) -> None:
    writer = writer_for(target)
    writer.write(succeeded(0, 1))
    writer.write(unsuccessful(1))
    writer.write(pending(2))
    writer.abort()

    assert target.keys() == []
    assert target.leftovers() == []


def test_a_key_the_local_folder_cannot_hold_fails_with_the_storage_error_code(tmp_path: Path) -> None:
    target = local_target(tmp_path)
    (tmp_path / "results" / "jobs").write_text("a file where the prefix folder should be")
    writer = writer_for(target)

    with pytest.raises(StatesError) as info:
        writer.write(succeeded(0, 1))
    assert info.value.name == "States.ResultWriterFailed"
    assert "InvalidArgument" in info.value.cause and f"s3://results/{BASE}SUCCEEDED_0.json" in info.value.cause


def test_a_result_file_larger_than_one_multipart_part_is_complete_on_s3(s3_client: Any, bucket: str) -> None:
    target = s3_target(s3_client, bucket)
    writer = writer_for(target, output_type="JSONL", transformation="COMPACT")
    chunk = "z" * 32_000
    for child in range(300):  # ~9.6 MB: more than one 8 MiB part
        writer.write(succeeded(child, {"i": child, "pad": chunk}))
    writer.close()

    [entry] = target.json(BASE + "manifest.json")["ResultFiles"]["SUCCEEDED"]
    assert entry["Size"] == s3_client.head_object(Bucket=bucket, Key=entry["Key"])["ContentLength"] > 8 * 1024 * 1024
    assert [v["i"] for v in parse(target.read(entry["Key"]), "JSONL")] == list(range(300))

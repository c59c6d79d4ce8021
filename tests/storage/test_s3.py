"""S3Storage against moto over HTTP: streaming reads, paginated listings, multipart writes, S3 error codes."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from dmap.errors import StorageError
from dmap.storage.s3 import PART_SIZE, S3Storage


@pytest.fixture
def storage(s3_client: Any) -> S3Storage:
    return S3Storage(s3_client)


def _code(call: object) -> str:
    with pytest.raises(StorageError) as info:
        call()  # type: ignore[operator]
    return info.value.code


def test_the_default_client_comes_from_boto3s_environment(s3_env: str, bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"via env")
    storage = S3Storage()
    assert storage.client.meta.endpoint_url == s3_env
    with storage.open_read(bucket, "k") as f:
        assert f.read() == b"via env"


def test_reads_stream_and_seek_with_ranges(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    body = bytes(range(256)) * 4096
    s3_client.put_object(Bucket=bucket, Key="blob", Body=body)
    with storage.open_read(bucket, "blob") as f:
        assert f.read(10) == body[:10]
        f.seek(-16, os.SEEK_END)
        assert f.read() == body[-16:]
        f.seek(500_000)
        assert f.tell() == 500_000 and f.read(4) == body[500_000:500_004]
        f.seek(0)
        assert sum(len(line) for line in f) == len(body)


def test_a_version_id_is_passed_to_get_object(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3_client.put_object(Bucket=bucket, Key="v", Body=b"old")["VersionId"]
    s3_client.put_object(Bucket=bucket, Key="v", Body=b"new")
    with storage.open_read(bucket, "v", version_id=old) as f:
        assert f.read() == b"old"
    for item in s3_client.list_object_versions(Bucket=bucket).get("Versions", []):
        s3_client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])


def test_listing_pages_lazily_and_starts_after_a_key(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    for key in ["a/1", "a/2", "a/3", "b"]:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"xy")
    infos = list(storage.list_objects(bucket, "a/"))
    assert [i.key for i in infos] == ["a/1", "a/2", "a/3"]
    assert infos[0].size == 2 and infos[0].etag.startswith('"') and infos[0].storage_class == "STANDARD"
    assert [i.key for i in storage.list_objects(bucket, start_after="a/2")] == ["a/3", "b"]


def test_multipart_writes_appear_on_close_and_span_parts(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    chunk = b"0123456789abcdef" * 65536  # 1 MiB
    with storage.open_write(bucket, "big.json") as f:
        for _ in range(PART_SIZE // len(chunk) + 1):
            f.write(chunk)
        assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
    head = s3_client.head_object(Bucket=bucket, Key="big.json")
    assert head["ContentLength"] == PART_SIZE + len(chunk)
    assert head["ETag"].endswith('-2"')  # two parts


def test_an_empty_write_creates_an_empty_object(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    storage.open_write(bucket, "empty").close()
    assert s3_client.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


def test_an_aborted_or_failed_write_creates_nothing(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    stream = storage.open_write(bucket, "aborted")
    stream.write(b"x")
    stream.abort()  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), storage.open_write(bucket, "failed") as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_errors_become_storage_errors_with_s3_codes(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    assert _code(lambda: storage.open_read(bucket, "missing")) == "NoSuchKey"
    assert _code(lambda: storage.open_read("no-such-bucket-x", "k")) == "NoSuchBucket"
    assert _code(lambda: list(storage.list_objects("no-such-bucket-x"))) == "NoSuchBucket"
    assert _code(lambda: storage.open_write("no-such-bucket-x", "k")) == "NoSuchBucket"
    assert _code(lambda: storage.check_writable("no-such-bucket-x")) == "NoSuchBucket"
    storage.check_writable(bucket)
    with pytest.raises(StorageError) as info:
        storage.open_read(bucket, "missing")
    assert f"bucket '{bucket}'" in str(info.value) and "key 'missing'" in str(info.value)


def test_a_policy_denying_reads_is_access_denied(storage: S3Storage, s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"x")
    statement = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    s3_client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    try:
        assert _code(lambda: storage.open_read(bucket, "k")) == "AccessDenied"
    finally:
        s3_client.delete_bucket_policy(Bucket=bucket)

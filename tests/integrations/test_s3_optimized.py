"""The optimized ``s3:getObject``/``s3:putObject`` Tasks, on moto's S3 over HTTP and on ``DMAP_S3_ROOT``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dmap

from .support import cause_of, chain, task

GET = "arn:aws:states:::s3:getObject"
PUT = "arn:aws:states:::s3:putObject"


@pytest.fixture(params=[pytest.param("moto", marks=pytest.mark.integration), "s3_root"])
def where(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket on moto's S3, or a bucket folder under a local ``DMAP_S3_ROOT``."""
    if request.param == "moto":
        return str(request.getfixturevalue("bucket"))
    monkeypatch.setenv("DMAP_S3_ROOT", str(tmp_path))
    (tmp_path / "local-bucket").mkdir()
    return "local-bucket"


def test_an_object_written_by_put_object_is_read_back_by_get_object(where: str, enable: Any) -> None:
    enable("s3")
    definition = chain(
        ("Put", task(PUT, {"Bucket": where, "Key": "dir/greeting.txt", "Body.$": "$.text"}, ResultPath="$.put")),
        ("Get", task(GET, {"Bucket": where, "Key": "dir/greeting.txt"}, ResultPath="$.get")),
    )

    execution = dmap.run(definition, input={"text": "héllo"})

    assert execution.status == "SUCCEEDED", execution.cause
    out = execution.output
    assert out["get"]["Body"] == "héllo"
    assert out["get"]["ContentLength"] == len("héllo".encode())
    assert out["put"]["ETag"] == out["get"]["ETag"]
    assert out["put"]["ETag"].startswith('"')
    assert out["get"]["LastModified"].endswith("Z")


def test_a_json_body_is_written_as_compact_json(where: str, enable: Any) -> None:
    enable("s3")
    definition = chain(
        ("Put", task(PUT, {"Bucket": where, "Key": "data.json", "Body": {"a": [1, 2], "b": None}}, ResultPath=None)),
        ("Get", task(GET, {"Bucket": where, "Key": "data.json"}, OutputPath="$.Body")),
    )

    execution = dmap.run(definition)

    assert execution.output == '{"a":[1,2],"b":null}'


def test_a_missing_key_fails_with_no_such_key(where: str, enable: Any) -> None:
    enable("s3")

    execution = dmap.run(chain(("Get", task(GET, {"Bucket": where, "Key": "absent.txt"}))))

    assert execution.status == "FAILED"
    assert execution.error == "S3.NoSuchKeyException"
    assert "absent.txt" in cause_of(execution)


def test_a_missing_bucket_fails_with_no_such_bucket(where: str, enable: Any) -> None:
    enable("s3")

    execution = dmap.run(chain(("Put", task(PUT, {"Bucket": "no-such-bucket-x", "Key": "k", "Body": "x"}))))

    assert execution.error == "S3.NoSuchBucketException"


def test_parameters_without_a_key_fail_with_states_runtime(where: str, enable: Any) -> None:
    enable("s3")

    execution = dmap.run(chain(("Get", task(GET, {"Bucket": where}))))

    assert execution.error == "States.Runtime"
    assert 'The field "Key" is required' in cause_of(execution)


def test_an_object_larger_than_the_payload_limit_is_not_read_into_memory(
    where: str, enable: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DMAP_PAYLOAD_LIMIT", "1000")
    enable("s3")
    definition = chain(
        ("Put", task(PUT, {"Bucket": where, "Key": "big", "Body": "x" * 5000}, ResultPath=None)),
        ("Get", task(GET, {"Bucket": where, "Key": "big"})),
    )

    execution = dmap.run(definition)

    assert execution.error == "States.DataLimitExceeded"
    assert f"s3://{where}/big is larger than 1000 bytes" in cause_of(execution)

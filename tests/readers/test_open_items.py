"""open_items: MaxItems, lazy opening, resume by index and by position, and failures that name the object."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dmap.errors import ConfigurationError, StatesError
from dmap.readers import ReaderSpec, open_items

from .conftest import GET, LIST, Objects


def _cause(objects: Objects, **fields: Any) -> str:
    with pytest.raises(StatesError) as info:
        objects.values(**fields)
    assert info.value.name == "States.ItemReaderFailed"
    return info.value.cause


@pytest.mark.parametrize(("max_items", "expected"), [(None, 5), (0, 5), (2, 2), (5, 5), (100_000_000, 5)])
def test_max_items_limits_the_items_read_and_zero_means_no_limit(
    local_objects: Objects, max_items: int | None, expected: int
) -> None:
    local_objects.put("five.json", "[0, 1, 2, 3, 4]")
    assert local_objects.values(key="five.json", input_type="JSON", max_items=max_items) == list(range(expected))


def test_negative_max_items_fails_with_the_aws_cause(local_objects: Objects) -> None:
    local_objects.put("five.json", "[0]")
    assert _cause(local_objects, key="five.json", input_type="JSON", max_items=-1) == "field MaxItems must be positive"


def test_max_items_counts_from_the_start_of_the_source_when_resuming(local_objects: Objects) -> None:
    local_objects.put("l.jsonl", "".join(f"{n}\n" for n in range(10)))
    items = list(local_objects.open(key="l.jsonl", input_type="JSONL", max_items=6, start=4))
    assert [(i.index, i.value) for i in items] == [(4, 4), (5, 5)]
    assert list(local_objects.open(key="l.jsonl", input_type="JSONL", max_items=3, start=4)) == []


def test_a_single_object_resumes_by_index_and_by_position(objects: Objects) -> None:
    objects.put("rows.csv", "n\n" + "".join(f"{n}\n" for n in range(8)))
    stream = objects.open(key="rows.csv", input_type="CSV")
    assert [next(stream).value["n"] for _ in range(3)] == ["0", "1", "2"]
    assert json.loads(stream.position) == {"i": 3, "o": 8, "l": 4}  # byte offset after "2\n", its line
    stream.close()
    resumed = list(objects.open(key="rows.csv", input_type="CSV", position=stream.position))
    assert [(i.index, i.value["n"]) for i in resumed] == [(n, str(n)) for n in range(3, 8)]


def test_opening_reads_nothing_until_the_first_item(local_objects: Objects) -> None:
    stream = local_objects.open(key="not-yet.json", input_type="JSON")
    local_objects.put("not-yet.json", "[1]")
    assert [i.value for i in stream] == [1]


def test_a_missing_key_or_bucket_fails_naming_the_code_and_object(objects: Objects) -> None:
    cause = _cause(objects, key="missing.csv", input_type="CSV")
    assert cause.startswith("NoSuchKey:") and f"bucket '{objects.bucket}'" in cause and "key 'missing.csv'" in cause
    cause = _cause(objects, bucket="no-such-bucket-at-all", key="k.csv", input_type="CSV")
    assert cause.startswith("NoSuchBucket:") and "no-such-bucket-at-all" in cause


@pytest.mark.parametrize("key", ["../outside.json", "/etc/passwd", "a/../../outside.json", "./x.json"])
def test_local_keys_that_escape_the_bucket_are_denied(local_objects: Objects, key: str) -> None:
    assert _cause(local_objects, key=key, input_type="JSON").startswith("AccessDenied:")


def test_a_local_symlink_out_of_the_bucket_is_denied(local_objects: Objects, tmp_path: Path) -> None:
    (tmp_path / "secret.json").write_text("[1]")
    os.symlink(tmp_path / "secret.json", tmp_path / "data" / "link.json")
    assert _cause(local_objects, key="link.json", input_type="JSON").startswith("AccessDenied:")


def test_s3_access_denied_by_a_bucket_policy_is_reported(s3_objects: Objects, s3_client: Any) -> None:
    s3_objects.put("k.json", "[1]")
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{s3_objects.bucket}/*",
    }
    s3_client.put_bucket_policy(
        Bucket=s3_objects.bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    try:
        cause = _cause(s3_objects, key="k.json", input_type="JSON")
    finally:
        s3_client.delete_bucket_policy(Bucket=s3_objects.bucket)
    assert cause.startswith("AccessDenied:") and "key 'k.json'" in cause


def test_unsupported_readers_fail_as_item_reader_failures(local_objects: Objects) -> None:
    assert "Unsupported ItemReader Resource" in _cause(
        local_objects, resource="arn:aws:states:::s3:headObject", key="k"
    )
    assert "needs a Key" in _cause(local_objects, resource=GET)
    local_objects.put("k", "x")
    assert "InputType 'XML'" in _cause(local_objects, key="k", input_type="XML")
    assert "Unknown ReaderConfig.Transformation" in _cause(local_objects, transformation="FLATTEN_ALL")


def test_bad_positions_and_starts_are_caller_errors(local_objects: Objects) -> None:
    spec = ReaderSpec(resource=GET, bucket="data", key="k")
    for position in ("not json", "[]", '{"after": "x"}', '{"i": "3"}'):
        with pytest.raises(ConfigurationError):
            open_items(spec, local_objects.storage, position=position)
    with pytest.raises(ConfigurationError):
        open_items(spec, local_objects.storage, start=-1)
    with pytest.raises(ConfigurationError):
        open_items(spec, local_objects.storage, start=2, position='{"i": 3}')
    listing = ReaderSpec(resource=LIST, bucket="data")
    with pytest.raises(ConfigurationError, match="not made by an ItemReader like this one"):
        open_items(listing, local_objects.storage, position='{"i": 3, "part": "k", "skip": 1}')
    with pytest.raises(ConfigurationError, match="not made by an ItemReader like this one"):
        open_items(spec, local_objects.storage, position='{"i": 3, "after": "k"}')


def test_a_version_id_that_does_not_exist_locally_fails(local_objects: Objects) -> None:
    local_objects.put("v.json", "[1]")
    assert local_objects.values(key="v.json", input_type="JSON", version_id="null") == [1]
    assert _cause(local_objects, key="v.json", input_type="JSON", version_id="3HL4kqtJ").startswith("NoSuchVersion:")

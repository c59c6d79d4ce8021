"""listObjectsV2 items: AWS's exact item shape, key order, pages, LOAD_AND_FLATTEN and resume."""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dmap.errors import StatesError
from dmap.storage.s3 import S3Storage

from .conftest import LIST, Objects


def test_each_object_is_an_item_shaped_exactly_as_aws(objects: Objects) -> None:
    objects.put("processData/images/a.jpg", b"hello")
    [info] = list(objects.storage.list_objects(objects.bucket, "processData/"))
    items = list(objects.open(prefix="processData/"))
    assert len(items) == 1
    value = items[0].value
    assert list(value) == ["Etag", "Key", "LastModified", "Size", "StorageClass"]
    assert value["Etag"] == '"' + hashlib.md5(b"hello").hexdigest() + '"'
    assert value["Key"] == "processData/images/a.jpg"
    assert isinstance(value["LastModified"], int) and value["LastModified"] == int(info.last_modified)
    assert abs(value["LastModified"] - time.time()) < 86400  # epoch seconds, not milliseconds
    assert (value["Size"], value["StorageClass"]) == (5, "STANDARD")
    assert (items[0].source, items[0].key, items[0].index) == (f"S3://{objects.bucket}", None, 0)


def test_keys_come_in_s3_order_and_a_prefix_matches_partial_names(objects: Objects) -> None:
    for key in ["folder10/x", "folder1/b", "folder1/a/z", "folder1-x", "other", "folder1/a-b"]:
        objects.put(key, b"1")
    assert [v["Key"] for v in objects.values(prefix="folder1")] == [
        "folder1-x",
        "folder1/a-b",
        "folder1/a/z",
        "folder1/b",
        "folder10/x",
    ]
    assert [v["Key"] for v in objects.values(prefix="folder1/")] == ["folder1/a-b", "folder1/a/z", "folder1/b"]
    assert [v["Key"] for v in objects.values(prefix="nothing/")] == []


def test_a_missing_bucket_fails_with_no_such_bucket(objects: Objects) -> None:
    with pytest.raises(StatesError) as info:
        objects.values(bucket="no-such-bucket-here")
    assert info.value.name == "States.ItemReaderFailed"
    assert info.value.cause.startswith("NoSuchBucket:") and "no-such-bucket-here" in info.value.cause


def test_a_listing_of_several_pages_streams_and_resumes(s3_objects: Objects, s3_client: Any) -> None:
    keys = [f"k/{i:05d}" for i in range(2050)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=s3_objects.bucket, Key=k, Body=b"x"), keys))
    try:
        calls: list[dict[str, Any]] = []
        s3_client.meta.events.register(
            "before-parameter-build.s3.ListObjectsV2", lambda params, **_: calls.append(params)
        )
        stream = s3_objects.open(prefix="k/")
        first = [next(stream).value["Key"] for _ in range(1500)]
        assert first == keys[:1500]
        assert len(calls) == 2  # lazily: the third page is not fetched yet
        position = stream.position
        rest = list(s3_objects.open(prefix="k/", position=position))
        assert [(i.index, i.value["Key"]) for i in rest[:1]] == [(1500, keys[1500])]
        assert [i.value["Key"] for i in rest] == keys[1500:]
        assert calls[-1].get("StartAfter") == keys[1499]
        by_index = list(s3_objects.open(prefix="k/", start=2040))
        assert [(i.index, i.value["Key"]) for i in by_index] == [(2040 + n, keys[2040 + n]) for n in range(10)]
    finally:
        for n in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[n : n + 1000]]
            s3_client.delete_objects(Bucket=s3_objects.bucket, Delete={"Objects": chunk})


def test_load_and_flatten_reads_every_listed_object_as_its_input_type(objects: Objects) -> None:
    objects.put("in/a.csv", "id,v\n1,x\n2,y\n")
    objects.put("in/b.csv", "id,v\n3,z\n")
    objects.put("in/c/", b"")  # a console "folder": no data
    objects.put("in/d.csv", "id,v\n")
    items = list(objects.open(prefix="in/", transformation="LOAD_AND_FLATTEN", input_type="CSV"))
    assert [i.value for i in items] == [{"id": "1", "v": "x"}, {"id": "2", "v": "y"}, {"id": "3", "v": "z"}]
    assert [i.source for i in items] == [f"S3://{objects.bucket}/in/a.csv"] * 2 + [f"S3://{objects.bucket}/in/b.csv"]
    assert [i.index for i in items] == [0, 1, 2]


def test_a_plain_listing_includes_folder_objects_as_aws_does(s3_objects: Objects) -> None:
    s3_objects.put("in/c/", b"")
    assert [v["Key"] for v in s3_objects.values(prefix="in/")] == ["in/c/"]


def test_load_and_flatten_resumes_inside_an_object_from_a_position(local_objects: Objects) -> None:
    for n in range(3):
        local_objects.put(f"j/{n}.jsonl", "".join(json.dumps({"f": n, "r": r}) + "\n" for r in range(3)))
    spec = {"prefix": "j/", "transformation": "LOAD_AND_FLATTEN", "input_type": "JSONL"}
    stream = local_objects.open(**spec)
    seen = [next(stream).value for _ in range(4)]
    assert seen[-1] == {"f": 1, "r": 0}
    assert json.loads(stream.position) == {"i": 4, "part": "j/0.jsonl", "skip": 1, "o": 17, "l": 1}
    resumed = list(local_objects.open(position=stream.position, **spec))
    assert [(i.index, i.value) for i in resumed[:1]] == [(4, {"f": 1, "r": 1})]
    assert len(resumed) == 5
    assert [i.value for i in local_objects.open(start=4, **spec)] == [i.value for i in resumed]


def test_load_and_flatten_of_json_files_and_a_bad_object_names_it(local_objects: Objects) -> None:
    local_objects.put("j/1.json", "[1, 2]")
    local_objects.put("j/2.json", '{"a": 1}')
    local_objects.put("j/3.json", "[3, oops]")
    stream = local_objects.open(prefix="j/", transformation="LOAD_AND_FLATTEN", input_type="JSON")
    assert [next(stream).value for _ in range(3)] == [1, 2, {"Key": "a", "Value": 1}]
    assert next(stream).value == 3
    with pytest.raises(StatesError) as info:
        next(stream)
    assert "S3://data/j/3.json" in info.value.cause


def test_load_and_flatten_needs_a_file_input_type(local_objects: Objects) -> None:
    with pytest.raises(StatesError, match="LOAD_AND_FLATTEN needs ReaderConfig.InputType"):
        local_objects.values(prefix="", transformation="LOAD_AND_FLATTEN")


def test_access_denied_on_a_listed_object_is_an_item_reader_failure(s3_objects: Objects, s3_client: Any) -> None:
    s3_objects.put("secret.csv", "a\n1\n")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{s3_objects.bucket}/*",
            }
        ],
    }
    s3_client.put_bucket_policy(Bucket=s3_objects.bucket, Policy=json.dumps(policy))
    try:
        with pytest.raises(StatesError) as info:
            s3_objects.values(prefix="", transformation="LOAD_AND_FLATTEN", input_type="CSV")
        assert info.value.cause.startswith("AccessDenied:") and "key 'secret.csv'" in info.value.cause
    finally:
        s3_client.delete_bucket_policy(Bucket=s3_objects.bucket)


def test_a_local_listing_does_not_follow_a_symlinked_folder_out_of_the_bucket(
    local_objects: Objects, tmp_path: Any
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.txt").write_text("secret")
    os.symlink(outside, tmp_path / "data" / "link")
    os.symlink(outside / "leak.txt", tmp_path / "data" / "leak-file")
    local_objects.put("ok.txt", "x")
    assert [v["Key"] for v in local_objects.values()] == ["ok.txt"]


def test_a_listing_resource_is_recognised_in_other_partitions(local_objects: Objects) -> None:
    local_objects.put("a", "x")
    resource = LIST.replace("arn:aws:", "arn:aws-cn:")
    assert [v["Key"] for v in local_objects.values(resource=resource)] == ["a"]


def test_s3_storage_is_used_through_the_protocol_only(s3_objects: Objects) -> None:
    assert isinstance(s3_objects.storage, S3Storage)

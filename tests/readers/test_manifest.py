"""S3 Inventory and Athena manifests: their data files are read in order, each row an item."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmap.errors import StatesError

from .conftest import Objects

SCHEMA = "Bucket, Key, Size, LastModifiedDate"


def _inventory(objects: Objects, files: dict[str, bytes], **extra: object) -> None:
    for key, body in files.items():
        objects.put(key, body)
    manifest = {
        "sourceBucket": "amzn-s3-demo-source-bucket",
        "destinationBucket": f"arn:aws:s3:::{objects.bucket}",
        "version": "2016-11-30",
        "creationTimestamp": "1668560400000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": [{"key": key, "size": len(body), "MD5checksum": "x"} for key, body in files.items()],
        **extra,
    }
    objects.put("inv/manifest.json", json.dumps(manifest))


def test_an_s3_inventory_yields_string_rows_with_url_decoded_keys(objects: Objects) -> None:
    first = (
        b'"src","csvDataset/titles.csv","3399671","2022-11-16T00:29:32.000Z"\n'
        b'"src","a+b%21.txt","0","2022-11-16T00:29:33.000Z"\n'
    )
    second = gzip.compress(b'"src","folder/%E2%82%AC.bin","7","2022-11-17T00:00:00.000Z"\n')
    _inventory(objects, {"inv/data/1.csv": first, "inv/data/2.csv.gz": second})
    items = list(objects.open(key="inv/manifest.json", manifest_type="S3_INVENTORY"))
    assert [i.value for i in items] == [
        {
            "Bucket": "src",
            "Key": "csvDataset/titles.csv",
            "Size": "3399671",
            "LastModifiedDate": "2022-11-16T00:29:32.000Z",
        },
        {"Bucket": "src", "Key": "a b!.txt", "Size": "0", "LastModifiedDate": "2022-11-16T00:29:33.000Z"},
        {"Bucket": "src", "Key": "folder/€.bin", "Size": "7", "LastModifiedDate": "2022-11-17T00:00:00.000Z"},
    ]
    assert [i.source for i in items] == [f"S3://{objects.bucket}/inv/data/1.csv"] * 2 + [
        f"S3://{objects.bucket}/inv/data/2.csv.gz"
    ]


def test_input_type_manifest_is_the_older_spelling_of_an_inventory(local_objects: Objects) -> None:
    _inventory(local_objects, {"inv/1.csv": b'"b","k","1","t"\n'})
    assert local_objects.values(key="inv/manifest.json", input_type="MANIFEST") == [
        {"Bucket": "b", "Key": "k", "Size": "1", "LastModifiedDate": "t"}
    ]


def test_an_inventory_resumes_inside_its_second_file_from_a_position(local_objects: Objects) -> None:
    rows = [f'"b","k{i}","{i}","t"\n'.encode() for i in range(6)]
    _inventory(local_objects, {"inv/1.csv": b"".join(rows[:3]), "inv/2.csv": b"".join(rows[3:])})
    stream = local_objects.open(key="inv/manifest.json", manifest_type="S3_INVENTORY")
    assert [next(stream).value["Key"] for _ in range(4)] == ["k0", "k1", "k2", "k3"]
    resumed = list(local_objects.open(key="inv/manifest.json", manifest_type="S3_INVENTORY", position=stream.position))
    assert [(i.index, i.value["Key"]) for i in resumed] == [(4, "k4"), (5, "k5")]
    by_index = list(local_objects.open(key="inv/manifest.json", manifest_type="S3_INVENTORY", start=4))
    assert [i.value for i in by_index] == [i.value for i in resumed]


def test_an_inventory_that_is_not_csv_or_not_json_fails_clearly(local_objects: Objects) -> None:
    _inventory(local_objects, {}, fileFormat="Parquet")
    local_objects.put("broken/manifest.json", "{not json")
    with pytest.raises(StatesError, match="only CSV inventories"):
        local_objects.values(key="inv/manifest.json", manifest_type="S3_INVENTORY")
    with pytest.raises(StatesError, match="is not valid JSON"):
        local_objects.values(key="broken/manifest.json", manifest_type="S3_INVENTORY")


def test_an_inventory_data_file_that_is_missing_fails_naming_it(local_objects: Objects) -> None:
    _inventory(local_objects, {"inv/1.csv": b'"b","k","1","t"\n'})
    (local_objects.storage.root / "data" / "inv" / "1.csv").unlink()  # type: ignore[attr-defined]
    with pytest.raises(StatesError) as info:
        local_objects.values(key="inv/manifest.json", manifest_type="S3_INVENTORY")
    assert info.value.cause.startswith("NoSuchKey:") and "key 'inv/1.csv'" in info.value.cause


def test_an_athena_manifest_reads_every_listed_csv_file_with_given_headers(objects: Objects) -> None:
    b = objects.bucket
    objects.put("athena/q1_0.csv.gz", gzip.compress(b"1,alpha\n2,beta\n"))
    objects.put("athena/q1_1.csv.gz", gzip.compress(b"3,gamma\n"))
    objects.put("athena/q1-manifest.csv", f"s3://{b}/athena/q1_0.csv.gz\n\ns3://{b}/athena/q1_1.csv.gz\n")
    items = list(
        objects.open(
            key="athena/q1-manifest.csv",
            manifest_type="ATHENA_DATA",
            input_type="CSV",
            csv_header_location="GIVEN",
            csv_headers=("id", "name"),
        )
    )
    assert [i.value for i in items] == [
        {"id": "1", "name": "alpha"},
        {"id": "2", "name": "beta"},
        {"id": "3", "name": "gamma"},
    ]
    assert items[2].source == f"S3://{b}/athena/q1_1.csv.gz"


def test_an_athena_manifest_of_jsonl_and_parquet_files_is_read(local_objects: Objects) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"n": [1, 2]}), sink)
    local_objects.put("p/0.parquet", sink.getvalue())
    local_objects.put("j/0.jsonl", '{"n": 1}\n{"n": 2}\n')
    local_objects.put("p-manifest.csv", "s3://data/p/0.parquet\n")
    local_objects.put("j-manifest.csv", "s3://data/j/0.jsonl\n")
    assert local_objects.values(key="p-manifest.csv", manifest_type="ATHENA_DATA", input_type="PARQUET") == [
        {"n": 1},
        {"n": 2},
    ]
    assert local_objects.values(key="j-manifest.csv", manifest_type="ATHENA_DATA", input_type="JSONL") == [
        {"n": 1},
        {"n": 2},
    ]


def test_an_athena_manifest_with_a_bad_line_or_input_type_fails(local_objects: Objects) -> None:
    local_objects.put("m-manifest.csv", "s3://data/ok.jsonl\nnot a uri\n")
    local_objects.put("ok.jsonl", "1\n")
    with pytest.raises(StatesError, match="Line 2 of the Athena manifest S3://data/m-manifest.csv"):
        local_objects.values(key="m-manifest.csv", manifest_type="ATHENA_DATA", input_type="JSONL")
    with pytest.raises(StatesError, match="ATHENA_DATA needs InputType"):
        local_objects.values(key="m-manifest.csv", manifest_type="ATHENA_DATA", input_type="JSON")

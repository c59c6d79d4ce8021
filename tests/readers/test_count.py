"""Counting a source ahead of its reader: the same number of items the reader yields, for every source kind."""

from __future__ import annotations

import gzip
import io
import json
import threading
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmap.errors import StatesError
from dmap.readers.count import CountCancelled, count_items

from .conftest import Objects


def _counted(objects: Objects, expected: int, **fields: Any) -> None:
    """The count is ``expected``, and is what the reader itself yields."""
    spec = objects.spec(**fields)
    assert count_items(spec, objects.storage) == expected
    assert len(objects.values(**fields)) == expected


def test_a_json_array_counts_its_elements_at_the_root_or_at_the_items_pointer(objects: Objects) -> None:
    objects.put("a.json", json.dumps([{"i": i, "nested": [1, 2, {"x": [3]}]} for i in range(1234)]))
    objects.put("p.json", json.dumps({"meta": {"n": [1, 2]}, "data": {"rows": list(range(77))}}))
    objects.put("o.json", json.dumps({"a": 1, "b": [1, 2], "c": {"d": 3}}))
    _counted(objects, 1234, key="a.json", input_type="JSON")
    _counted(objects, 77, key="p.json", input_type="JSON", items_pointer="/data/rows")
    _counted(objects, 3, key="o.json", input_type="JSON", items_pointer="")  # an object's key/value pairs


def test_jsonl_counts_non_blank_lines_after_a_byte_order_mark(objects: Objects) -> None:
    body = b"\xef\xbb\xbf" + b'{"i": 0}\n\n  \n' + b"".join(b'{"i": %d}\r\n' % i for i in range(1, 500)) + b"[1]"
    objects.put("a.jsonl", body)
    _counted(objects, 501, key="a.jsonl", input_type="JSONL")


def test_csv_counts_rows_after_the_header_row_and_every_row_with_given_headers(objects: Objects) -> None:
    rows = "".join(f"{i},name {i}\n" for i in range(300))
    objects.put("h.csv", "id,name\n" + rows)
    objects.put("g.csv", rows)
    objects.put("empty.csv", "")
    _counted(objects, 300, key="h.csv", input_type="CSV")
    _counted(objects, 300, key="g.csv", input_type="CSV", csv_header_location="GIVEN", csv_headers=("id", "name"))
    _counted(objects, 0, key="empty.csv", input_type="CSV")


def test_a_quoted_csv_field_spanning_lines_is_one_row_and_blank_lines_are_rows(local_objects: Objects) -> None:
    local_objects.put("q.csv", 'a|b\n1|"two\nlines"\n\n3|"x""y"\n4|\\|\n')
    _counted(local_objects, 4, key="q.csv", input_type="CSV", csv_delimiter="PIPE")


def test_compressed_objects_are_counted_decompressed(objects: Objects) -> None:
    objects.put("a.csv.gz", gzip.compress(b"id\n" + b"".join(b"%d\n" % i for i in range(2000))))
    objects.put("a.jsonl.gz", gzip.compress(b"".join(b"%d\n" % i for i in range(321))))
    _counted(objects, 2000, key="a.csv.gz", input_type="CSV")
    _counted(objects, 321, key="a.jsonl.gz", input_type="JSONL")


def test_max_items_caps_the_count(objects: Objects) -> None:
    objects.put("a.jsonl", "".join(f"{i}\n" for i in range(100)))
    _counted(objects, 10, key="a.jsonl", input_type="JSONL", max_items=10)
    _counted(objects, 100, key="a.jsonl", input_type="JSONL", max_items=1000)
    with pytest.raises(StatesError, match="MaxItems"):
        count_items(objects.spec(key="a.jsonl", input_type="JSONL", max_items=-1), objects.storage)


def test_parquet_is_counted_from_its_metadata(local_objects: Objects) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"i": list(range(5000))}), sink, row_group_size=1000)
    local_objects.put("t.parquet", sink.getvalue())
    _counted(local_objects, 5000, key="t.parquet", input_type="PARQUET")
    _counted(local_objects, 42, key="t.parquet", input_type="PARQUET", max_items=42)


def test_an_s3_inventory_manifest_counts_the_rows_of_all_its_data_files(objects: Objects) -> None:
    files = {
        "inv/1.csv": b"".join(b'"src","k%d","1","t"\n' % i for i in range(40)),
        "inv/2.csv.gz": gzip.compress(b"".join(b'"src","g%d","1","t"\n' % i for i in range(60))),
    }
    for key, body in files.items():
        objects.put(key, body)
    manifest = {
        "destinationBucket": f"arn:aws:s3:::{objects.bucket}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": key} for key in files],
    }
    objects.put("inv/manifest.json", json.dumps(manifest))
    _counted(objects, 100, key="inv/manifest.json", manifest_type="S3_INVENTORY")
    _counted(objects, 55, key="inv/manifest.json", manifest_type="S3_INVENTORY", max_items=55)


def test_an_athena_manifest_counts_the_rows_of_the_files_it_lists(local_objects: Objects) -> None:
    local_objects.put("ath/a.csv", "1,x\n2,y\n")
    local_objects.put("ath/b.csv", "3,z\n")
    bucket = local_objects.bucket
    local_objects.put("ath/m.csv", f"s3://{bucket}/ath/a.csv\ns3://{bucket}/ath/b.csv\n")
    _counted(
        local_objects,
        3,
        key="ath/m.csv",
        manifest_type="ATHENA_DATA",
        input_type="CSV",
        csv_header_location="GIVEN",
        csv_headers=("n", "s"),
    )


def test_a_listing_counts_its_objects_or_with_load_and_flatten_their_items(objects: Objects) -> None:
    for n in range(7):
        objects.put(f"in/{n}.jsonl", "".join(f"{i}\n" for i in range(n)))
    objects.put("in/folder/", b"")
    objects.put("other/x.jsonl", "1\n")
    _counted(objects, 8, prefix="in/")
    _counted(objects, 21, prefix="in/", transformation="LOAD_AND_FLATTEN", input_type="JSONL")
    _counted(objects, 5, prefix="in/", transformation="LOAD_AND_FLATTEN", input_type="JSONL", max_items=5)


def test_a_source_the_reader_cannot_read_fails_the_count_with_the_readers_error(objects: Objects) -> None:
    with pytest.raises(StatesError) as missing:
        count_items(objects.spec(key="nope.csv", input_type="CSV"), objects.storage)
    assert missing.value.name == "States.ItemReaderFailed"
    objects.put("bad.json", '{"items": [1, 2]}')
    with pytest.raises(StatesError, match="ItemsPointer"):
        count_items(objects.spec(key="bad.json", input_type="JSON"), objects.storage)


def test_a_cancelled_count_stops(local_objects: Objects) -> None:
    local_objects.put("a.jsonl", "".join(f"{i}\n" for i in range(10_000)))
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(CountCancelled):
        count_items(local_objects.spec(key="a.jsonl", input_type="JSONL"), local_objects.storage, cancelled=cancelled)

"""Parquet items: one per row, with dmap's documented type mapping, read row group by row group."""

from __future__ import annotations

import datetime
import decimal
import gzip
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmap.errors import StatesError

from .conftest import Objects


def _parquet(table: pa.Table, **kwargs: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue()


def test_values_map_to_json_as_documented(objects: Objects) -> None:
    utc = datetime.UTC
    table = pa.table(
        {
            "int": pa.array([1, None], pa.int64()),
            "small": pa.array([-3, 4], pa.int8()),
            "float": pa.array([1.5, float("nan")]),
            "inf": pa.array([float("inf"), float("-inf")], pa.float32()),
            "str": pa.array(["a", "é"]),
            "bool": pa.array([True, False]),
            "ts_ns": pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns")),
            "ts_utc": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc)] * 2, pa.timestamp("us", tz="UTC")),
            "ts_paris": pa.array([1_700_000_000_000_000] * 2, pa.timestamp("us", tz="Europe/Paris")),
            "date": pa.array([datetime.date(2024, 1, 2)] * 2, pa.date32()),
            "time": pa.array([datetime.time(1, 2, 3)] * 2, pa.time64("us")),
            "dec": pa.array([decimal.Decimal("1.50"), decimal.Decimal("-0.01")], pa.decimal128(5, 2)),
            "bin": pa.array([b"\x00\xff", None], pa.binary()),
            "dur": pa.array([datetime.timedelta(seconds=1.5), datetime.timedelta(0)], pa.duration("us")),
            "list": pa.array([[1, 2], []], pa.list_(pa.int32())),
            "struct": pa.array([{"a": 1, "t": datetime.date(2024, 5, 6)}, None]),
            "map": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
            "dict": pa.array(["x", "y"]).dictionary_encode(),
        }
    )
    objects.put("t.parquet", _parquet(table))
    rows = objects.values(key="t.parquet", input_type="PARQUET")
    assert rows[0] == {
        "int": 1,
        "small": -3,
        "float": 1.5,
        "inf": "Infinity",
        "str": "a",
        "bool": True,
        "ts_ns": "2023-11-14T22:13:20.123456789",
        "ts_utc": "2024-01-02T03:04:05.000000Z",
        "ts_paris": "2023-11-14T23:13:20.000000+01:00",
        "date": "2024-01-02",
        "time": "01:02:03.000000",
        "dec": "1.50",
        "bin": "AP8=",
        "dur": "PT1.5S",
        "list": [1, 2],
        "struct": {"a": 1, "t": "2024-05-06"},
        "map": {"k": 1},
        "dict": "x",
    }
    assert rows[1]["int"] is None and rows[1]["float"] == "NaN" and rows[1]["inf"] == "-Infinity"
    assert rows[1]["ts_ns"] is None and rows[1]["bin"] is None and rows[1]["struct"] is None
    assert (rows[1]["dec"], rows[1]["dur"], rows[1]["list"], rows[1]["map"]) == ("-0.01", "PT0S", [], {})


def test_rows_span_row_groups_and_resume_skips_whole_groups(local_objects: Objects) -> None:
    table = pa.table({"n": list(range(2500))})
    local_objects.put("many.parquet", _parquet(table, row_group_size=1000))
    assert [r["n"] for r in local_objects.values(key="many.parquet", input_type="PARQUET")] == list(range(2500))
    items = list(local_objects.open(key="many.parquet", input_type="PARQUET", start=2100))
    assert [(i.index, i.value["n"]) for i in items[:2]] == [(2100, 2100), (2101, 2101)]
    assert len(items) == 400


def test_a_corrupt_parquet_object_fails_naming_it(objects: Objects) -> None:
    objects.put("bad.parquet", b"PAR1 this is not really parquet PAR1")
    with pytest.raises(StatesError) as info:
        objects.values(key="bad.parquet", input_type="PARQUET")
    assert info.value.name == "States.ItemReaderFailed"
    assert f"S3://{objects.bucket}/bad.parquet" in info.value.cause


def test_parquet_refuses_version_ids_and_outside_compression(local_objects: Objects) -> None:
    data = _parquet(pa.table({"n": [1]}))
    local_objects.put("v.parquet", data)
    local_objects.put("g.parquet.gz", gzip.compress(data))
    with pytest.raises(StatesError, match="VersionId is not supported"):
        local_objects.values(key="v.parquet", input_type="PARQUET", version_id="abc")
    with pytest.raises(StatesError, match="GZIP-compressed"):
        local_objects.values(key="g.parquet.gz", input_type="PARQUET")

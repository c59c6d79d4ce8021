"""Resuming a reader from a position yields exactly what a fresh read yields from there, and seeks.

For every format and source kind, on LocalStorage and on S3 (moto): a stream is read up to a cut,
its position taken, and a stream opened at that position must yield the same ``(index, value,
source, key)`` sequence as a fresh read from the start past the cut. Where the position holds a
byte offset (JSONL, CSV), the bytes before it are then overwritten with the same number of bytes
that do not parse: a resumed reader that still read them would fail or yield other values.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from dmap.readers import Item

from .conftest import Objects

N = 23
CUTS = (0, 1, 7, 22, 23)


def _jsonl(n: int = N) -> bytes:
    return b"".join(
        json.dumps({"n": i, "s": "é" * (i % 3)}).encode() + (b"\n\n" if i % 5 == 0 else b"\n") for i in range(n)
    )


def _csv(n: int = N, header: bool = True) -> bytes:
    head = b"n,s\n" if header else b""
    rows = (f'{i},"multi\nline {i}"\n' if i % 4 == 0 else f"{i},plain {i}\n" for i in range(n))
    return head + "".join(rows).encode()


def _parquet(n: int = N) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"n": list(range(n)), "s": [f"r{i}" for i in range(n)]}), sink, row_group_size=5)
    return sink.getvalue()


def _seen(items: Any) -> list[tuple[int, Any, str, str | None]]:
    return [(i.index, i.value, i.source, i.key) for i in items]


SINGLE: dict[str, tuple[str, bytes, dict[str, Any]]] = {
    "jsonl": ("d.jsonl", _jsonl(), {"input_type": "JSONL"}),
    "jsonl-gzip": ("d.jsonl.gz", gzip.compress(_jsonl()), {"input_type": "JSONL"}),
    "csv-first-row": ("d.csv", _csv(), {"input_type": "CSV"}),
    "csv-given": (
        "g.csv",
        _csv(header=False),
        {"input_type": "CSV", "csv_header_location": "GIVEN", "csv_headers": ("a", "b")},
    ),
    "csv-zstd": ("d.csv.zst", zstandard.ZstdCompressor().compress(_csv()), {"input_type": "CSV"}),
    "parquet": ("d.parquet", _parquet(), {"input_type": "PARQUET"}),
    "json": ("d.json", json.dumps([{"n": i} for i in range(N)]).encode(), {"input_type": "JSON"}),
}


@pytest.mark.parametrize("kind", sorted(SINGLE))
def test_a_resumed_single_object_yields_what_a_fresh_read_yields_past_the_cut(objects: Objects, kind: str) -> None:
    key, data, fields = SINGLE[kind]
    objects.put(key, data)
    fresh = _seen(objects.open(key=key, **fields))
    assert len(fresh) == N
    for cut in CUTS:
        stream = objects.open(key=key, **fields)
        head = [next(stream) for _ in range(cut)]
        stream.close()
        assert _seen(head) == fresh[:cut]
        assert _seen(objects.open(key=key, position=stream.position, **fields)) == fresh[cut:], (kind, cut)


@pytest.mark.parametrize("kind", sorted(SINGLE))
def test_max_items_ends_a_resumed_read_where_it_ends_a_fresh_one(local_objects: Objects, kind: str) -> None:
    key, data, fields = SINGLE[kind]
    local_objects.put(key, data)
    stream = local_objects.open(key=key, max_items=10, **fields)
    for _ in range(4):
        next(stream)
    resumed = _seen(local_objects.open(key=key, max_items=10, position=stream.position, **fields))
    assert [index for index, *_ in resumed] == list(range(4, 10))


@pytest.mark.parametrize("kind", ["jsonl", "csv-first-row", "csv-given"])
def test_a_byte_offset_position_does_not_read_the_bytes_before_it(objects: Objects, kind: str) -> None:
    key, data, fields = SINGLE[kind]
    objects.put(key, data)
    fresh = _seen(objects.open(key=key, **fields))
    stream = objects.open(key=key, **fields)
    for _ in range(9):
        next(stream)
    offset = json.loads(stream.position)["o"]
    header = data.index(b"\n") + 1 if kind == "csv-first-row" else 0  # the header row is still read
    # One line of "~" in place of the rows before the offset: a reader that re-read them would see one
    # row there, not nine, and yield other items at other indexes.
    garbled = data[:header] + b"~" * (offset - header - 1) + b"\n" + data[offset:]
    objects.put(key, garbled)
    assert _seen(objects.open(key=key, position=stream.position, **fields)) == fresh[9:]
    assert _seen(objects.open(key=key, start=9, **fields)) != fresh[9:]  # a re-read would have noticed


def test_a_parquet_position_names_the_row_group_and_the_rows_read_of_it(local_objects: Objects) -> None:
    local_objects.put("d.parquet", _parquet())
    stream = local_objects.open(key="d.parquet", input_type="PARQUET")
    for _ in range(7):
        next(stream)
    assert json.loads(stream.position) == {"i": 7, "g": 1, "r": 2}  # row groups of 5 rows


def test_a_listing_and_its_flattened_objects_resume_where_a_fresh_read_goes_on(objects: Objects) -> None:
    for n in range(4):
        objects.put(f"p/{n}.jsonl", _jsonl(5 + n))
        objects.put(f"c/{n}.csv", _csv(3 + n))
    sources: list[dict[str, Any]] = [
        {"prefix": "p/"},
        {"prefix": "p/", "transformation": "LOAD_AND_FLATTEN", "input_type": "JSONL"},
        {"prefix": "c/", "transformation": "LOAD_AND_FLATTEN", "input_type": "CSV"},
    ]
    for fields in sources:
        fresh = _seen(objects.open(**fields))
        for cut in sorted({c for c in (0, 1, 6, len(fresh) // 2, len(fresh) - 1, len(fresh)) if c <= len(fresh)}):
            stream = objects.open(**fields)
            for _ in range(cut):
                next(stream)
            assert _seen(objects.open(position=stream.position, **fields)) == fresh[cut:], (fields, cut)


def test_an_inventory_and_an_athena_manifest_resume_inside_a_data_file(objects: Objects) -> None:
    rows = [f'"b","k{i}","{i}"\n'.encode() for i in range(9)]
    objects.put("inv/1.csv", b"".join(rows[:4]))
    objects.put("inv/2.csv.gz", gzip.compress(b"".join(rows[4:])))
    files = [{"key": "inv/1.csv"}, {"key": "inv/2.csv.gz"}]
    objects.put(
        "inv/manifest.json", json.dumps({"fileFormat": "CSV", "fileSchema": "Bucket, Key, Size", "files": files})
    )
    for n in range(2):
        objects.put(f"ath/{n}.jsonl", _jsonl(6))
    uris = "".join(f"s3://{objects.bucket}/ath/{n}.jsonl\n" for n in range(2))
    objects.put("ath/manifest.csv", uris)
    sources: list[dict[str, Any]] = [
        {"key": "inv/manifest.json", "manifest_type": "S3_INVENTORY"},
        {"key": "ath/manifest.csv", "manifest_type": "ATHENA_DATA", "input_type": "JSONL"},
    ]
    for fields in sources:
        fresh = _seen(objects.open(**fields))
        for cut in range(len(fresh) + 1):
            stream = objects.open(**fields)
            for _ in range(cut):
                next(stream)
            assert _seen(objects.open(position=stream.position, **fields)) == fresh[cut:], (fields, cut)


def test_a_position_of_item_zero_reads_from_the_start(local_objects: Objects) -> None:
    local_objects.put("d.jsonl", _jsonl())
    stream = local_objects.open(key="d.jsonl", input_type="JSONL")
    assert json.loads(stream.position) == {"i": 0}
    resumed: list[Item] = list(local_objects.open(key="d.jsonl", input_type="JSONL", position=stream.position))
    assert [i.index for i in resumed] == list(range(N))

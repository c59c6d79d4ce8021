"""A coordinator killed mid-run resumes its reader from the stored position, not from the first item.

The crash is injected in-process on the local backend (the pattern of
``tests/faults/test_result_resume.py``): the store's ``acquire`` raises a ``BaseException`` after a
few grants, which unwinds the coordinator like a kill; the same backend then runs the execution
again under its name. Each source is read once fresh for the expected ``(index, value)`` pairs;
the resumed run's output (every item through ``ItemSelector`` with ``$$.Map.Item.Index``) must be
exactly those. Where the stored position is a byte offset, the bytes before it are overwritten
after the crash with one line that does not parse: a reader that re-read them would fail the run.
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dmap
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.readers import ReaderSpec, open_items
from dmap.storage import Storage
from dmap.storage.local import LocalStorage
from dmap.storage.s3 import S3Storage
from dmap.store.redis import RedisRunStore

ITEMS = 60
GET, LIST = "arn:aws:states:::s3:getObject", "arn:aws:states:::s3:listObjectsV2"


class Crash(BaseException):
    """The coordinator's process dies (nothing in dmap catches a BaseException that is not an Exception)."""


class _CrashingStore:
    """The backend's store, whose ``acquire`` raises :class:`Crash` on its ``after``-th call."""

    def __init__(self, inner: Any, after: int) -> None:
        self._inner, self._left, self.run = inner, after, ""

    def acquire(self, run: str, *args: Any, **kwargs: Any) -> Any:
        self.run = run
        self._left -= 1
        if self._left <= 0:
            raise Crash()
        return self._inner.acquire(run, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _jsonl() -> bytes:
    return b"".join(json.dumps({"n": i}).encode() + (b"\n\n" if i % 7 == 0 else b"\n") for i in range(ITEMS))


def _csv() -> bytes:
    return b"n,s\n" + "".join(f'{i},"two\nlines"\n' if i % 9 == 0 else f"{i},x{i}\n" for i in range(ITEMS)).encode()


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"n": list(range(ITEMS))}), sink, row_group_size=8)
    return sink.getvalue()


# name -> (objects to put, ItemReader Parameters/ReaderConfig, whether the position is a byte offset)
SOURCES: dict[str, tuple[dict[str, bytes], dict[str, Any], dict[str, Any], bool]] = {
    "jsonl": ({"d.jsonl": _jsonl()}, {"Key": "d.jsonl"}, {"InputType": "JSONL"}, True),
    "jsonl-gzip": ({"d.jsonl.gz": gzip.compress(_jsonl())}, {"Key": "d.jsonl.gz"}, {"InputType": "JSONL"}, False),
    "csv": ({"d.csv": _csv()}, {"Key": "d.csv"}, {"InputType": "CSV"}, True),
    "parquet": ({"d.parquet": _parquet()}, {"Key": "d.parquet"}, {"InputType": "PARQUET"}, False),
    "json": ({"d.json": json.dumps(list(range(ITEMS))).encode()}, {"Key": "d.json"}, {"InputType": "JSON"}, False),
    "listing": ({f"l/{i:03}": b"x" for i in range(ITEMS)}, {"Prefix": "l/"}, {}, False),
}


def _definition(bucket: str, parameters: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    reader: dict[str, Any] = {
        "Resource": GET if "Key" in parameters else LIST,
        "Parameters": {"Bucket": bucket, **parameters},
    }
    if config:
        reader["ReaderConfig"] = config
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "MaxConcurrency": 2,
                "ItemReader": reader,
                "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        },
    }


def _expected(storage: Storage, bucket: str, parameters: dict[str, Any], config: dict[str, Any]) -> list[Any]:
    spec = ReaderSpec(
        resource=GET if "Key" in parameters else LIST,
        bucket=bucket,
        key=parameters.get("Key"),
        prefix=parameters.get("Prefix"),
        input_type=config.get("InputType"),
    )
    # A listing item's LastModified/Etag are what the store says: compared through the same reader.
    return [{"i": item.index, "v": item.value} for item in open_items(spec, storage)]


def _run_crash_and_resume(
    backend: LocalBackend, storage: Storage, bucket: str, put: Callable[[str, bytes], None], kind: str
) -> None:
    objects, parameters, config, by_offset = SOURCES[kind]
    for key, data in objects.items():
        put(key, data)
    definition = _definition(bucket, parameters, config)
    expected = _expected(storage, bucket, parameters, config)
    assert len(expected) == ITEMS
    name, store = f"resume-{uuid.uuid4().hex[:8]}", backend.store
    crashing = _CrashingStore(store, after=6)
    backend.store = crashing  # type: ignore[assignment]
    with pytest.raises(Crash):
        dmap.run(definition, backend=backend, name=name)
    backend.store = store

    reader, next_child, next_item = store.cursor(crashing.run)
    assert 0 < next_item < ITEMS and next_child == next_item
    assert isinstance(reader, str) and json.loads(reader)["i"] == next_item, reader
    if by_offset:
        (key, data), offset = next(iter(objects.items())), json.loads(reader)["o"]
        header = data.index(b"\n") + 1 if kind == "csv" else 0
        put(key, data[:header] + b"~" * (offset - header - 1) + b"\n" + data[offset:])

    execution = dmap.run(definition, backend=backend, name=name)
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == expected


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_killed_coordinator_resumes_its_local_reader_at_the_stored_position(tmp_path: Path, kind: str) -> None:
    root, bucket = tmp_path / "s3", "data"
    (root / bucket).mkdir(parents=True)

    def put(key: str, data: bytes) -> None:
        (root / bucket / key).parent.mkdir(parents=True, exist_ok=True)
        (root / bucket / key).write_bytes(data)

    backend = LocalBackend(Settings(s3_root=str(root)), threads=2)
    _run_crash_and_resume(backend, LocalStorage(root), bucket, put, kind)


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_killed_coordinator_resumes_its_s3_reader_at_the_position_stored_in_redis(
    s3_client: Any, bucket: str, redis_url: str, kind: str
) -> None:
    import redis

    def put(key: str, data: bytes) -> None:
        s3_client.put_object(Bucket=bucket, Key=key, Body=data)

    backend = LocalBackend(Settings(), threads=2)
    backend.store = RedisRunStore(redis.Redis.from_url(redis_url))  # type: ignore[assignment]
    _run_crash_and_resume(backend, S3Storage(s3_client), bucket, put, kind)

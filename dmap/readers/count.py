"""Counting the items of an ItemReader without running anything: how many items ``open_items`` would yield.

This module owns the count that lets a Map Run know its total before its reader gets there (DESIGN
§10, early tolerance). Every source kind is counted by the same rules its reader applies, streamed,
in bounded memory — nothing here holds more than one item or one line:

* JSON: the items of the array (or object pairs) at the root or at ``ItemsPointer``, via ijson;
* JSONL: the non-blank lines (the values are not parsed);
* CSV: the records (a quoted field may span lines), less the header row with ``FIRST_ROW``;
* Parquet: the row count of the file's metadata (the footer; no row is read);
* S3 Inventory and Athena manifests: the sum over their data files;
* listObjectsV2: the listed objects (NONE) or the items of every object (LOAD_AND_FLATTEN);
* GZIP/ZSTD objects are counted decompressed, as a stream.

``MaxItems`` caps the count and stops it there. Failures raise the reader's own errors
(``States.ItemReaderFailed``); the caller decides what an uncountable source means. It does not
decide when to count nor report the total anywhere (``dmap.counting`` does).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from typing import Any, BinaryIO

from ..errors import StatesError, StorageError
from ..storage import Storage
from . import FILE_INPUT_TYPES, ReaderSpec, object_uri, reader_failed, storage_failed

_CHECK_EVERY = 4096
_BOM = b"\xef\xbb\xbf"


class CountCancelled(Exception):
    """Raised inside a count when its ``cancelled`` event is set (the count is no longer wanted)."""


class _Tally:
    """The running count: stops at MaxItems, and every few thousand items checks for cancellation."""

    __slots__ = ("cancelled", "limit", "n", "next_check")

    def __init__(self, limit: int | None, cancelled: threading.Event | None) -> None:
        self.n = 0
        self.limit = limit
        self.cancelled = cancelled
        self.next_check = _CHECK_EVERY

    def add(self, k: int = 1) -> bool:
        """Count ``k`` more items; True once MaxItems is reached (the caller stops reading)."""
        self.n += k
        if self.n >= self.next_check:
            self.next_check = self.n + _CHECK_EVERY
            if self.cancelled is not None and self.cancelled.is_set():
                raise CountCancelled
        return self.limit is not None and self.n >= self.limit

    def each(self, items: Iterable[Any]) -> bool:
        """Count every element of ``items``; True (and stop) once MaxItems is reached."""
        return any(self.add() for _ in items)


def count_items(spec: ReaderSpec, storage: Storage, *, cancelled: threading.Event | None = None) -> int:
    """How many items ``open_items(spec, storage)`` yields, ``MaxItems`` applied, counted as a stream.

    Args:
        spec: The resolved ItemReader.
        storage: Where the objects are.
        cancelled: Set it to stop the count early (it then raises :class:`CountCancelled`).

    Returns:
        The number of items.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for a source its reader could not read either.
        CountCancelled: ``cancelled`` was set.
    """
    if spec.max_items is not None and spec.max_items < 0:
        raise reader_failed("field MaxItems must be positive")
    limit = spec.max_items if spec.max_items and spec.max_items > 0 else None
    tally = _Tally(limit, cancelled)
    _count(spec, storage, tally)
    return tally.n if limit is None else min(tally.n, limit)


def _count(spec: ReaderSpec, storage: Storage, tally: _Tally) -> None:
    if spec.resource.endswith(":s3:listObjectsV2"):
        _count_listing(spec, storage, tally)
    elif spec.resource.endswith(":s3:getObject"):
        if not spec.key:
            raise reader_failed(f"The ItemReader {spec.resource} needs a Key (bucket '{spec.bucket}').")
        if spec.manifest_type == "ATHENA_DATA":
            from .manifest import ATHENA_INPUT_TYPES, _athena_parts

            if spec.input_type not in ATHENA_INPUT_TYPES:
                raise reader_failed(f"ManifestType ATHENA_DATA needs InputType {', '.join(ATHENA_INPUT_TYPES)}.")
            for _, bucket, key in _athena_parts(storage, spec, 0):
                if _count_object(storage, spec, bucket, key, spec.input_type, None, tally):
                    return
        elif spec.manifest_type == "S3_INVENTORY" or spec.input_type == "MANIFEST":
            _count_inventory(spec, storage, tally)
        else:
            _count_object(storage, spec, spec.bucket, spec.key, spec.input_type or "JSON", spec.version_id, tally)
    else:
        raise reader_failed(f"Unsupported ItemReader Resource {spec.resource!r}.")


def _count_listing(spec: ReaderSpec, storage: Storage, tally: _Tally) -> None:
    from .listing import _listed, _objects_to_load

    prefix = spec.prefix or ""
    if spec.transformation == "LOAD_AND_FLATTEN":
        if spec.input_type not in FILE_INPUT_TYPES:
            raise reader_failed(f"Transformation LOAD_AND_FLATTEN needs an InputType, got {spec.input_type!r}.")
        for _, bucket, key in _objects_to_load(storage, spec.bucket, prefix, None):
            if _count_object(storage, spec, bucket, key, spec.input_type, None, tally):
                return
    elif spec.transformation in (None, "", "NONE"):
        tally.each(_listed(storage, spec.bucket, prefix, None))
    else:
        raise reader_failed(f"Unknown ReaderConfig.Transformation {spec.transformation!r}.")


def _count_inventory(spec: ReaderSpec, storage: Storage, tally: _Tally) -> None:
    from .manifest import _bucket_name, _load_manifest

    manifest = _load_manifest(storage, spec)
    bucket = _bucket_name(manifest.get("destinationBucket"), spec.bucket)
    # Inventory data files have no header row: every record is an item.
    csv_spec = dataclasses.replace(spec, input_type="CSV", csv_header_location="GIVEN", csv_delimiter="COMMA")
    for index, entry in enumerate(manifest["files"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise reader_failed(f"Entry {index} of files in {object_uri(spec.bucket, spec.key or '')} has no key.")
        if _count_object(storage, csv_spec, bucket, entry["key"], "CSV", None, tally):
            return


def _count_object(
    storage: Storage,
    spec: ReaderSpec,
    bucket: str,
    key: str,
    input_type: str,
    version_id: str | None,
    tally: _Tally,
) -> bool:
    """Count the items of one object (as ``read_object`` would parse it); True once MaxItems is reached."""
    uri = object_uri(bucket, key)
    if input_type not in FILE_INPUT_TYPES:
        raise reader_failed(f"InputType {input_type!r} cannot be read from {uri}; expected one of {FILE_INPUT_TYPES}.")
    try:
        with storage.open_read(bucket, key, version_id=version_id) as raw:
            if input_type == "PARQUET":
                return tally.add(_parquet_rows(raw))
            from .compression import decompressed

            with decompressed(raw, key) as text:
                return _count_text(text, uri, input_type, spec, tally)
    except (StatesError, CountCancelled):
        raise
    except StorageError as exc:
        raise storage_failed(exc) from exc
    except Exception as exc:  # decompression, I/O and parser errors, as the reader reports them
        raise reader_failed(f"Cannot read {uri}: {type(exc).__name__}: {exc}") from exc


def _count_text(text: BinaryIO, uri: str, input_type: str, spec: ReaderSpec, tally: _Tally) -> bool:
    if input_type == "JSON":
        from .jsonfile import iter_json

        # The same pointer rule as the reader: each object a listing flattens is taken as it is.
        pointer = spec.items_pointer
        if pointer is None and spec.resource.endswith("listObjectsV2"):
            pointer = ""
        return tally.each(iter_json(text, uri, pointer))
    if input_type == "JSONL":
        return _count_jsonl(text, tally)
    from .csvfile import iter_records

    records = iter_records(text, uri, delimiter=spec.csv_delimiter)
    if spec.csv_header_location != "GIVEN" and next(records, None) is None:
        return False  # an empty object has no header row and no items
    return tally.each(records)


def _count_jsonl(stream: BinaryIO, tally: _Tally) -> bool:
    """Non-blank lines, as ``iter_jsonl`` takes them (a line holding only a BOM and spaces is blank)."""
    first = True
    for raw in stream:
        if first:
            first = False
            if raw.startswith(_BOM):
                raw = raw[3:]
        if raw.strip() and tally.add():
            return True
    return False


def _parquet_rows(stream: BinaryIO) -> int:
    """The row count of a Parquet file, from its footer (no row group is read)."""
    from .compression import sniff
    from .parquet import _pyarrow

    pa = _pyarrow()
    buffered, kind = sniff(stream)
    if kind:
        raise reader_failed(f"a {kind}-compressed Parquet object cannot be read")
    return int(pa.parquet.ParquetFile(buffered).metadata.num_rows)

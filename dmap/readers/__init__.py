"""ItemReader: every item source as a lazy, resumable iterator of items.

This package owns reading items: from S3 objects (JSON, JSONL, CSV, Parquet, S3 Inventory and
Athena manifests, compressed or not) and from S3 listings. It knows nothing of Map Runs, batching
or dispatch. :func:`open_items` is the only entry point the coordinator uses; nothing here ever
holds a whole object or listing in memory.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ConfigurationError, ErrorName, StatesError, StorageError

if TYPE_CHECKING:
    from ..storage import Storage


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A resolved ``ItemReader``: every path and expression already evaluated to a value.

    Attributes:
        resource: ``arn:aws:states:::s3:getObject`` or ``arn:aws:states:::s3:listObjectsV2``.
        bucket, key, prefix, version_id: The S3 parameters (``key`` for getObject, ``prefix`` for listings).
        input_type: ``JSON`` | ``JSONL`` | ``CSV`` | ``PARQUET`` | ``MANIFEST`` | None.
        transformation: ``NONE`` | ``LOAD_AND_FLATTEN`` (listings only).
        manifest_type: ``S3_INVENTORY`` | ``ATHENA_DATA`` | None.
        csv_header_location: ``FIRST_ROW`` | ``GIVEN``.
        csv_headers: The headers when GIVEN.
        csv_delimiter: ``COMMA`` | ``PIPE`` | ``SEMICOLON`` | ``SPACE`` | ``TAB``.
        items_pointer: A JSON pointer selecting the node of a JSON file to iterate.
        max_items: Stop after this many items (0 or None = no limit).
    """

    resource: str
    bucket: str
    key: str | None = None
    prefix: str | None = None
    version_id: str | None = None
    input_type: str | None = None
    transformation: str = "NONE"
    manifest_type: str | None = None
    csv_header_location: str = "FIRST_ROW"
    csv_headers: tuple[str, ...] | None = None
    csv_delimiter: str = "COMMA"
    items_pointer: str | None = None
    max_items: int | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One item read from a source.

    Attributes:
        index: Its 0-based position in the whole source (``$$.Map.Item.Index``).
        value: The JSON value (``$$.Map.Item.Value``).
        source: ``$$.Map.Item.Source`` as AWS sets it (``STATE_DATA``, ``S3://bucket``, ``S3://bucket/key``).
        key: ``$$.Map.Item.Key`` when iterating the pairs of a JSON object, else None.
    """

    index: int
    value: Any
    source: str
    key: str | None = None


# --- Reading: the entry point and what every reader shares -------------------------------------

logger = logging.getLogger(__name__)

#: What a format reader yields per item: the value and ``$$.Map.Item.Key`` (JSON object pairs only).
Row = tuple[Any, str | None]
#: What a source yields per item: value, ``$$.Map.Item.Source``, key.
Record = tuple[Any, str, str | None]
#: Input types one object can be parsed as (getObject, LOAD_AND_FLATTEN, Athena data files).
FILE_INPUT_TYPES = ("CSV", "JSON", "JSONL", "PARQUET")


def object_uri(bucket: str, key: str) -> str:
    """``$$.Map.Item.Source`` of an item read from an object: ``S3://bucket/key`` (AWS's spelling)."""
    return f"S3://{bucket}/{key}"


def reader_failed(cause: str) -> StatesError:
    """A ``States.ItemReaderFailed`` error with ``cause``."""
    return StatesError(ErrorName.ITEM_READER_FAILED, cause)


def storage_failed(exc: StorageError) -> StatesError:
    """``States.ItemReaderFailed`` for a storage error: the cause names its S3 code, bucket and key."""
    return reader_failed(f"{exc.code}: {exc}")


def seek_forward(stream: BinaryIO, count: int) -> None:
    """Move ``stream`` ``count`` bytes on: a seek where it can (a local file, an S3 Range GET, a gzip
    stream's own forward seek), else the bytes are read and dropped (a ZSTD stream: still no parsing).
    """
    if count <= 0:
        return
    if stream.seekable():
        stream.seek(count, io.SEEK_CUR)
        return
    while count > 0:
        chunk = stream.read(min(count, _DISCARD_CHUNK))
        if not chunk:
            return
        count -= len(chunk)


_DISCARD_CHUNK = 1024 * 1024
#: The fields a format reader records in a position to resume inside one object (see each reader).
OFFSET_FIELDS = frozenset({"o", "l"})  # JSONL, CSV: byte offset after the record, its line number
ROW_GROUP_FIELDS = frozenset({"g", "r"})  # PARQUET: row group of the next row, rows of it already read
IN_OBJECT_FIELDS = OFFSET_FIELDS | ROW_GROUP_FIELDS


class Cursor:
    """Where a source stands, as the JSON-able fields of :attr:`ItemStream.position`.

    Sources update ``fields`` before yielding each item: ``after`` (a listing: the last key read),
    ``part`` and ``skip`` (several objects: where the current object restarts, and how many of its
    items were consumed), and where the next item is inside the object being read: ``o`` and ``l``
    (JSONL, CSV: byte offset and line number) or ``g`` and ``r`` (Parquet: row group, rows of it read).
    """

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        self.fields: dict[str, Any] = dict(fields or {})


def read_object(
    storage: Storage,
    spec: ReaderSpec,
    bucket: str,
    key: str,
    *,
    input_type: str,
    skip: int = 0,
    version_id: str | None = None,
    at: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
) -> Iterator[Row]:
    """The rows of one object parsed as ``input_type``, decompressed when GZIP/ZSTD.

    Args:
        storage: Where the object is.
        spec: The reader options (CSV headers and delimiter, ItemsPointer).
        bucket: The object's bucket.
        key: The object's key.
        input_type: ``CSV``, ``JSON``, ``JSONL`` or ``PARQUET``.
        skip: Items to pass over first.
        version_id: The object version to read.
        at: Where to resume inside the object (the fields ``where`` held before the last row read,
            :data:`OFFSET_FIELDS` or :data:`ROW_GROUP_FIELDS`); replaces ``skip``. A JSON object
            has no such position: it is re-streamed and ``skip`` items are passed over.
        where: Updated with the in-object position of each row before the row is yielded.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for every failure; the cause names the object.
    """
    uri = object_uri(bucket, key)
    if input_type not in FILE_INPUT_TYPES:
        raise reader_failed(f"InputType {input_type!r} cannot be read from {uri}; expected one of {FILE_INPUT_TYPES}.")
    if input_type == "PARQUET" and version_id:
        raise reader_failed(f"VersionId is not supported for InputType PARQUET ({uri}).")
    try:
        with storage.open_read(bucket, key, version_id=version_id) as raw:
            yield from _parse(raw, uri, key, input_type, spec, skip, at, where)
    except StatesError:
        raise
    except StorageError as exc:
        raise storage_failed(exc) from exc
    except Exception as exc:  # decompression, I/O and parser errors of every library: bad input never crashes
        logger.debug("reading %s failed", uri, exc_info=True)
        raise reader_failed(f"Cannot read {uri}: {type(exc).__name__}: {exc}") from exc


def _parse(
    raw: Any,
    uri: str,
    key: str,
    input_type: str,
    spec: ReaderSpec,
    skip: int,
    at: dict[str, Any] | None,
    where: dict[str, Any] | None,
) -> Iterator[Row]:
    from .compression import decompressed, sniff

    if input_type == "PARQUET":
        from .parquet import iter_parquet

        stream, kind = sniff(raw)
        if kind:
            raise reader_failed(f"{uri} is {kind}-compressed; Parquet files are compressed inside, not from outside.")
        for row in iter_parquet(stream, uri, skip, at=_only(at, ROW_GROUP_FIELDS), where=where):
            yield row, None
        return
    with decompressed(raw, key) as text:
        if input_type == "JSON":
            from .jsonfile import iter_json

            # The {"items": [...]} teaching failure is for a manifest named by getObject; each object a listing
            # flattens is taken as it is (an object iterates as its key/value pairs).
            pointer = spec.items_pointer
            if pointer is None and spec.resource.endswith("listObjectsV2"):
                pointer = ""
            yield from iter_json(text, uri, pointer, skip)
        elif input_type == "JSONL":
            from .jsonl import iter_jsonl

            for value in iter_jsonl(text, uri, skip, at=_only(at, OFFSET_FIELDS), where=where):
                yield value, None
        else:
            from .csvfile import iter_csv

            for row in iter_csv(
                text,
                uri,
                delimiter=spec.csv_delimiter,
                header_location=spec.csv_header_location,
                headers=spec.csv_headers,
                skip=skip,
                at=_only(at, OFFSET_FIELDS),
                where=where,
            ):
                yield row, None


def _only(at: dict[str, Any] | None, fields: frozenset[str]) -> dict[str, Any] | None:
    """``at`` if it is a position of this format (all of ``fields`` present), else None: skip by count."""
    return at if at is not None and fields <= at.keys() else None


Part = tuple[Any, str, str]


def iter_parts(
    spec: ReaderSpec,
    storage: Storage,
    parts: Iterator[Part],
    *,
    input_type: str,
    start: int,
    resumed: bool,
    cursor: Cursor,
) -> Iterator[Record]:
    """The items of several objects in turn (a listing with LOAD_AND_FLATTEN, a manifest's data files).

    Args:
        spec: The reader options.
        storage: Where the objects are.
        parts: ``(marker, bucket, key)`` per object, where ``marker`` is what the source needs to
            restart at that object (stored in the position as ``part``); when ``resumed``, the first
            part is the one the position names.
        input_type: How to parse each object.
        start: The index of the first item wanted (re-read and skipped unless ``resumed``).
        resumed: True when the cursor came from a position (its ``skip`` applies to the first part).
        cursor: Updated with ``part``, ``skip`` and the in-object position before each item.
    """
    fields = cursor.fields
    to_skip = 0 if resumed else start
    first_skip = int(fields.get("skip", 0)) if resumed else 0
    # Inside the first object, resume at its byte offset or row group when the position has one.
    at = {k: fields[k] for k in IN_OBJECT_FIELDS if k in fields} if resumed else None
    for n, (marker, bucket, key) in enumerate(parts):
        source = object_uri(bucket, key)
        consumed = first_skip if n == 0 else 0
        rows = read_object(
            storage, spec, bucket, key, input_type=input_type, skip=consumed, at=at if n == 0 else None, where=fields
        )
        for value, item_key in rows:
            consumed += 1
            if to_skip:
                to_skip -= 1
                continue
            fields["part"] = marker
            fields["skip"] = consumed
            yield value, source, item_key


#: The position after an item, not yet encoded: the next index and the cursor fields.
Mark = tuple[int, dict[str, Any]]


def encode_position(mark: Mark) -> str:
    """The opaque JSON position of a :meth:`ItemStream.mark`, for ``open_items(..., position=...)``."""
    return json.dumps({"i": mark[0], **mark[1]}, separators=(",", ":"))


class ItemStream(Iterator[Item]):
    """The items of one source, lazily, with a position to resume from.

    Every failure surfaces from ``next()`` as ``States.ItemReaderFailed``. :attr:`position` is a
    small opaque JSON string; ``open_items(spec, storage, position=stream.position)`` yields the
    items after the last one returned, with the same indices. It is exact and cheap for listings
    (ListObjectsV2 ``StartAfter`` the last key), for LOAD_AND_FLATTEN and for manifests (the object
    being read and where in it), and for JSONL, CSV and Parquet objects: a byte offset (one seek,
    an HTTP Range GET on S3) or a row group and the rows read of it. A GZIP/ZSTD object has no
    random access: it is decompressed from its start up to the offset, but not parsed. A JSON
    object is re-streamed and the items before the position are skipped (ijson cannot start mid-array).
    """

    def __init__(self, records: Iterator[Record], start: int, limit: int | None, cursor: Cursor) -> None:
        self._records = records
        self._next = start
        self._limit = limit
        self._cursor = cursor

    def __iter__(self) -> ItemStream:
        return self

    def __next__(self) -> Item:
        if self._limit is not None and self._next >= self._limit:
            self.close()
            raise StopIteration
        try:
            value, source, key = next(self._records)
        except StorageError as exc:
            raise storage_failed(exc) from exc
        item = Item(self._next, value, source, key)
        self._next += 1
        return item

    @property
    def next_index(self) -> int:
        """The index the next item will have."""
        return self._next

    @property
    def position(self) -> str:
        """Where to resume to read the item after the last one returned (opaque JSON)."""
        return encode_position(self.mark())

    def mark(self) -> Mark:
        """:attr:`position`, cheaply (a copy of a few fields), for :func:`encode_position` to encode later.

        A coordinator that reads ahead of what it hands out marks each item as it reads it and encodes
        only the marks it stores.
        """
        return self._next, dict(self._cursor.fields)

    def close(self) -> None:
        """Stop reading and release the open object, if any."""
        close = getattr(self._records, "close", None)
        if close is not None:
            close()


def open_items(spec: ReaderSpec, storage: Storage, *, start: int = 0, position: str | None = None) -> ItemStream:
    """Open the items of an ItemReader as a lazy iterator; ``MaxItems`` applied.

    Nothing is read until the first ``next()``, and every reader failure is raised from ``next()``
    as ``StatesError(States.ItemReaderFailed, cause)``, the cause naming the bucket, the key and
    the line, row or byte where it applies.

    Args:
        spec: The resolved ItemReader.
        storage: Where the objects are.
        start: Index of the first item wanted (resume by re-reading and skipping).
        position: An :attr:`ItemStream.position` from an earlier stream of the same spec; resumes
            exactly there (its index replaces ``start``).

    Returns:
        An :class:`ItemStream` of :class:`Item`.

    Raises:
        ConfigurationError: For a negative ``start`` or a malformed ``position``.
    """
    fields: dict[str, Any] = {}
    if position is not None:
        try:
            fields = json.loads(position)
            index = fields.pop("i")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigurationError(f"not a reader position: {position!r}") from exc
        if not isinstance(index, int) or (start and start != index):
            raise ConfigurationError(f"reader position {position!r} does not match start={start}")
        start = index
    if start < 0:
        raise ConfigurationError(f"start must be >= 0, not {start}")
    required, optional = _position_fields(spec)
    if fields and not (required <= fields.keys() <= required | optional):
        raise ConfigurationError(f"reader position {position!r} was not made by an ItemReader like this one")
    cursor = Cursor(fields)
    limit = spec.max_items if spec.max_items and spec.max_items > 0 else None
    return ItemStream(_records(spec, storage, start, bool(fields), cursor), start, limit, cursor)


def _position_fields(spec: ReaderSpec) -> tuple[frozenset[str], frozenset[str]]:
    """The cursor fields a position of this kind of source carries besides its index: required, optional."""
    parts = frozenset({"part", "skip"})
    if spec.resource.endswith(":s3:listObjectsV2"):
        return (parts, IN_OBJECT_FIELDS) if spec.transformation == "LOAD_AND_FLATTEN" else (frozenset({"after"}), _NONE)
    if spec.manifest_type in ("ATHENA_DATA", "S3_INVENTORY") or spec.input_type == "MANIFEST":
        return parts, IN_OBJECT_FIELDS
    if spec.input_type == "PARQUET":
        return _NONE, ROW_GROUP_FIELDS
    if spec.input_type in ("JSONL", "CSV"):
        return _NONE, OFFSET_FIELDS
    return _NONE, _NONE


_NONE: frozenset[str] = frozenset()


def _records(spec: ReaderSpec, storage: Storage, start: int, resumed: bool, cursor: Cursor) -> Iterator[Record]:
    if spec.max_items is not None and spec.max_items < 0:
        raise reader_failed("field MaxItems must be positive")
    if spec.resource.endswith(":s3:listObjectsV2"):
        from .listing import listing_records

        yield from listing_records(spec, storage, start=start, resumed=resumed, cursor=cursor)
    elif spec.resource.endswith(":s3:getObject"):
        if not spec.key:
            raise reader_failed(f"The ItemReader {spec.resource} needs a Key (bucket '{spec.bucket}').")
        if spec.manifest_type == "ATHENA_DATA":
            from .manifest import athena_records

            yield from athena_records(spec, storage, start=start, resumed=resumed, cursor=cursor)
        elif spec.manifest_type == "S3_INVENTORY" or spec.input_type == "MANIFEST":
            from .manifest import inventory_records

            yield from inventory_records(spec, storage, start=start, resumed=resumed, cursor=cursor)
        else:
            uri = object_uri(spec.bucket, spec.key)
            input_type = spec.input_type or "JSON"
            at = dict(cursor.fields) if resumed else None
            rows = read_object(
                storage,
                spec,
                spec.bucket,
                spec.key,
                input_type=input_type,
                skip=start,
                version_id=spec.version_id,
                at=at,
                where=cursor.fields,
            )
            for value, key in rows:
                yield value, uri, key
    else:
        raise reader_failed(f"Unsupported ItemReader Resource {spec.resource!r}.")

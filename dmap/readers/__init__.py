"""ItemReader: every item source as a lazy, resumable iterator of items.

This package owns reading items: from S3 objects (JSON, JSONL, CSV, Parquet, S3 Inventory and
Athena manifests, compressed or not) and from S3 listings. It knows nothing of Map Runs, batching
or dispatch. :func:`open_items` is the only entry point the coordinator uses; nothing here ever
holds a whole object or listing in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

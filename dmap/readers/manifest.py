"""Manifests as item sources: S3 Inventory (``manifest.json``) and Athena UNLOAD (``<id>-manifest.csv``).

This module owns finding the data files a manifest lists and reading them in order:

* **S3 Inventory** (``ManifestType: S3_INVENTORY``, or the older ``InputType: MANIFEST``): the
  ``manifest.json`` of a CSV-format inventory. Its ``files`` (CSV or CSV.gz, no header row) are read
  in order from the destination bucket, with the columns named by ``fileSchema``; every value is a
  string and ``Key`` is URL-decoded (inventory CSVs URL-encode keys), e.g.
  ``{"Bucket": "b", "Key": "csvDataset/titles.csv", "Size": "3399671", "LastModifiedDate": "..."}``.
  Inventory CSVs are always comma-separated, so ``CSVDelimiter`` is not used.
* **Athena** (``ManifestType: ATHENA_DATA``): the manifest lists one ``s3://`` URI per line; each
  data file is read as ``InputType`` (CSV, JSONL or PARQUET; UNLOAD CSV has no header, so
  ``CSVHeaderLocation: GIVEN`` is expected).

``$$.Map.Item.Source`` is the data file an item was read from (``S3://bucket/key``) — dmap's choice,
as AWS documents only "S3://bucket/key" for S3 inputs. The position records the data file's index
in the manifest and the items consumed in it. ``manifest.json`` is small metadata and is parsed
whole (up to 64 MiB); data files and the Athena manifest are streamed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from ..errors import ConfigurationError, StatesError, StorageError
from ..storage import Storage, parse_s3_uri
from . import Cursor, Part, ReaderSpec, Record, iter_parts, object_uri, reader_failed, storage_failed

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
ATHENA_INPUT_TYPES = ("CSV", "JSONL", "PARQUET")


def _bucket_name(destination: Any, default: str) -> str:
    """The bucket of an inventory's ``destinationBucket`` (an ARN ``arn:aws:s3:::name`` or a name)."""
    if not isinstance(destination, str) or not destination:
        return default
    return destination.rsplit(":", 1)[-1]


def _load_manifest(storage: Storage, spec: ReaderSpec) -> dict[str, Any]:
    assert spec.key is not None
    uri = object_uri(spec.bucket, spec.key)
    try:
        with storage.open_read(spec.bucket, spec.key, version_id=spec.version_id) as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except StorageError as exc:
        raise storage_failed(exc) from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise reader_failed(f"The S3 Inventory manifest {uri} is larger than {MAX_MANIFEST_BYTES} bytes.")
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise reader_failed(f"The S3 Inventory manifest {uri} is not valid JSON: {exc}.") from exc
    if not isinstance(manifest, dict):
        raise reader_failed(f"The S3 Inventory manifest {uri} is not a JSON object.")
    fmt = manifest.get("fileFormat", "CSV")
    if fmt != "CSV":
        raise reader_failed(f"The S3 Inventory manifest {uri} is in {fmt} format; only CSV inventories can be read.")
    if not isinstance(manifest.get("fileSchema"), str) or not isinstance(manifest.get("files"), list):
        raise reader_failed(f"The S3 Inventory manifest {uri} needs a fileSchema string and a files list.")
    return manifest


def _decode_key(row: dict[str, str]) -> dict[str, str]:
    key = row.get("Key")
    if key:
        row["Key"] = unquote_plus(key)
    return row


def inventory_records(
    spec: ReaderSpec, storage: Storage, *, start: int, resumed: bool, cursor: Cursor
) -> Iterator[Record]:
    """The rows of every data file of an S3 Inventory manifest, in manifest order.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for an unreadable or non-CSV manifest, or a bad data file.
    """
    manifest = _load_manifest(storage, spec)
    columns = tuple(name.strip() for name in manifest["fileSchema"].split(","))
    bucket = _bucket_name(manifest.get("destinationBucket"), spec.bucket)
    csv_spec = dataclasses.replace(
        spec, input_type="CSV", csv_header_location="GIVEN", csv_headers=columns, csv_delimiter="COMMA"
    )
    first = int(cursor.fields.get("part", 0)) if resumed else 0
    parts: list[Part] = []
    for index, entry in enumerate(manifest["files"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise reader_failed(f"Entry {index} of files in {object_uri(spec.bucket, spec.key or '')} has no key.")
        if index >= first:
            parts.append((index, bucket, entry["key"]))
    rows = iter_parts(csv_spec, storage, iter(parts), input_type="CSV", start=start, resumed=resumed, cursor=cursor)
    for value, source, key in rows:
        yield _decode_key(value), source, key


def athena_records(
    spec: ReaderSpec, storage: Storage, *, start: int, resumed: bool, cursor: Cursor
) -> Iterator[Record]:
    """The rows of every data file an Athena UNLOAD manifest lists, in manifest order.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for a bad InputType, manifest line or data file.
    """
    if spec.input_type not in ATHENA_INPUT_TYPES:
        raise reader_failed(
            f"ManifestType ATHENA_DATA needs InputType {', '.join(ATHENA_INPUT_TYPES)} (got {spec.input_type!r})."
        )
    first = int(cursor.fields.get("part", 0)) if resumed else 0
    parts = _athena_parts(storage, spec, first)
    yield from iter_parts(spec, storage, parts, input_type=spec.input_type, start=start, resumed=resumed, cursor=cursor)


def _athena_parts(storage: Storage, spec: ReaderSpec, first: int) -> Iterator[Part]:
    """``(index, bucket, key)`` of each data file listed, from the ``first``-th on (streamed)."""
    from .compression import decompressed

    assert spec.key is not None
    uri = object_uri(spec.bucket, spec.key)
    try:
        with (
            storage.open_read(spec.bucket, spec.key, version_id=spec.version_id) as raw,
            decompressed(raw, spec.key) as lines,
        ):
            index = 0
            for lineno, line in enumerate(lines, 1):
                text = line.decode("utf-8", errors="replace").strip()
                if not text:
                    continue
                try:
                    bucket, key = parse_s3_uri(text)
                except ConfigurationError:
                    bucket, key = "", ""
                if not key:
                    raise reader_failed(
                        f"Line {lineno} of the Athena manifest {uri} is not an S3 object URI: {text!r}."
                    )
                if index >= first:
                    yield index, bucket, key
                index += 1
    except StorageError as exc:
        raise storage_failed(exc) from exc
    except StatesError:
        raise
    except Exception as exc:  # a corrupt compressed manifest, a dropped connection...
        raise reader_failed(f"Cannot read the Athena manifest {uri}: {type(exc).__name__}: {exc}") from exc

"""S3 listings as items (``arn:aws:states:::s3:listObjectsV2``), page by page.

This module owns the two listing readers:

* ``Transformation: NONE`` — one item per object, exactly AWS's shape
  ``{"Etag": "\\"<md5>\\"", "Key": ..., "LastModified": <epoch seconds>, "Size": ..., "StorageClass": ...}``
  with ``$$.Map.Item.Source`` = ``S3://bucket``. Every listed object is an item, console "folder"
  objects included, as on AWS.
* ``Transformation: LOAD_AND_FLATTEN`` — every listed object is read as ``InputType`` and its rows
  are the items (source ``S3://bucket/key`` of each object). Zero-byte keys ending in ``/`` (console
  folders) hold no data and are passed over — dmap's choice; a JSON reader would otherwise fail on them.

Resuming uses ListObjectsV2 ``StartAfter``: the position holds the last key read (NONE), or the key
before the object being read and how many of its items were consumed (LOAD_AND_FLATTEN).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

from ..errors import StorageError
from ..storage import ObjectInfo, Storage
from . import FILE_INPUT_TYPES, Cursor, Part, ReaderSpec, Record, iter_parts, reader_failed, storage_failed

logger = logging.getLogger(__name__)


def listing_item(info: ObjectInfo) -> dict[str, Any]:
    """The item AWS builds for one listed object."""
    return {
        "Etag": info.etag,
        "Key": info.key,
        "LastModified": int(info.last_modified),
        "Size": info.size,
        "StorageClass": info.storage_class,
    }


def _listed(storage: Storage, bucket: str, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
    """The listing, with storage failures turned into ItemReaderFailed causes naming the bucket."""
    try:
        yield from storage.list_objects(bucket, prefix, start_after=start_after)
    except StorageError as exc:
        raise storage_failed(exc) from exc


def listing_records(
    spec: ReaderSpec, storage: Storage, *, start: int, resumed: bool, cursor: Cursor
) -> Iterator[Record]:
    """The items of a listObjectsV2 ItemReader, from item ``start`` or from the cursor's position.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for a missing bucket, denied access, a missing or
            unknown InputType with LOAD_AND_FLATTEN, or any object that cannot be read.
    """
    prefix = spec.prefix or ""
    if spec.transformation == "LOAD_AND_FLATTEN":
        input_type = spec.input_type
        if input_type not in FILE_INPUT_TYPES:
            raise reader_failed(
                f"Transformation LOAD_AND_FLATTEN needs ReaderConfig.InputType, one of {', '.join(FILE_INPUT_TYPES)} "
                f"(got {input_type!r})."
            )
        after = cursor.fields.get("part") if resumed else None
        parts = _objects_to_load(storage, spec.bucket, prefix, after)
        yield from iter_parts(spec, storage, parts, input_type=input_type, start=start, resumed=resumed, cursor=cursor)
        return
    if spec.transformation not in (None, "", "NONE"):
        raise reader_failed(
            f"Unknown ReaderConfig.Transformation {spec.transformation!r}; expected NONE or LOAD_AND_FLATTEN."
        )
    source = f"S3://{spec.bucket}"
    fields = cursor.fields
    if resumed and "after" in fields:
        listed = _listed(storage, spec.bucket, prefix, fields["after"])
    else:
        listed = itertools.islice(_listed(storage, spec.bucket, prefix, None), start, None)
    for info in listed:
        fields["after"] = info.key
        yield listing_item(info), source, None


def _objects_to_load(storage: Storage, bucket: str, prefix: str, after: str | None) -> Iterator[Part]:
    """``(key before it, bucket, key)`` per object with data, in key order after ``after``."""
    previous = after
    for info in _listed(storage, bucket, prefix, after):
        if info.size == 0 and info.key.endswith("/"):
            logger.debug("LOAD_AND_FLATTEN passes over the folder object s3://%s/%s", bucket, info.key)
        else:
            yield previous, bucket, info.key
        previous = info.key

"""Where a DISTRIBUTED Map's items come from: the state input, its ItemReader, or a manifest override.

Everything here yields :class:`~dmap.readers.Item` lazily from a start index, so the coordinator
can resume at its cursor. The readers themselves (formats, S3, compression) are in ``readers/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .asl.model import MapState
from .errors import ConfigurationError, ErrorName, StatesError
from .interpreter import dataflow
from .readers import Item, ReaderSpec, open_items
from .storage import Storage, get_storage, parse_s3_uri

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
STATE_DATA = "STATE_DATA"
logger = logging.getLogger(__name__)
_TYPES = {".json": "JSON", ".jsonl": "JSONL", ".ndjson": "JSONL", ".csv": "CSV", ".parquet": "PARQUET"}


def input_type_of(key: str) -> str | None:
    """Guess ``InputType`` from an object key's extension (compression suffixes ignored)."""
    name = key.lower()
    for suffix in (".gz", ".gzip", ".zst", ".zstd"):
        name = name.removesuffix(suffix)
    return next((t for ext, t in _TYPES.items() if name.endswith(ext)), None)


def reader_spec(state: MapState, data: Any, context: Any, variables: Mapping[str, Any] | None) -> ReaderSpec | None:
    """The Map's ItemReader with its parameters and MaxItems(Path) evaluated, or None without a reader."""
    reader = state.item_reader
    if reader is None:
        return None
    params = dataflow.template(reader.parameters or {}, data, context, variables)
    config = reader.reader_config
    max_items = _max_items(
        config.max_items if config else None, config.max_items_path if config else None, data, context, variables
    )
    return ReaderSpec(
        resource=reader.resource,
        bucket=str(params.get("Bucket", "")),
        key=params.get("Key"),
        prefix=params.get("Prefix"),
        version_id=params.get("VersionId"),
        input_type=config.input_type if config else None,
        transformation=(config.transformation if config else None) or "NONE",
        manifest_type=config.manifest_type if config else None,
        csv_header_location=(config.csv_header_location if config else None) or "FIRST_ROW",
        csv_headers=tuple(config.csv_headers) if config and config.csv_headers else None,
        csv_delimiter=(config.csv_delimiter if config else None) or "COMMA",
        items_pointer=config.items_pointer if config else None,
        max_items=max_items,
    )


def _max_items(literal: Any, path: str | None, data: Any, context: Any, variables: Any) -> int | None:
    if path is None:
        return int(literal) if isinstance(literal, int) else None
    value = dataflow.select(path, data, context, variables, "MaxItemsPath")
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise StatesError(
            ErrorName.RUNTIME,
            f'The MaxItemsPath field refers to value "{dataflow.compact(value)}" which is not a valid integer: {path}',
        )
    if value < 0:
        raise StatesError(ErrorName.ITEM_READER_FAILED, "field MaxItems must be positive")
    return int(value)


def override_spec(manifest: str | Path, base: ReaderSpec | None) -> tuple[ReaderSpec, Storage | None]:
    """A reader for ``--manifest``: an S3 object or prefix, or a local file (read through a LocalStorage)."""
    text = str(manifest)
    storage: Storage | None = None
    if "://" in text:
        bucket, key = parse_s3_uri(text)
    else:
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise StatesError(ErrorName.ITEM_READER_FAILED, f"manifest file not found: {text}")
        from .storage.local import LocalStorage

        storage = LocalStorage(str(path.parent.parent))
        bucket, key = path.parent.name, path.name
    if key == "" or key.endswith("/"):
        spec = ReaderSpec(resource=LIST_OBJECTS, bucket=bucket, prefix=key)
        if base is not None and base.transformation == "LOAD_AND_FLATTEN":
            spec = replace(spec, transformation=base.transformation, input_type=base.input_type)
        return spec, storage
    guessed = input_type_of(key)
    if base is not None and base.resource == GET_OBJECT and (base.input_type == guessed or guessed is None):
        return replace(base, bucket=bucket, key=key, version_id=None), storage
    if guessed is None:
        raise StatesError(
            ErrorName.ITEM_READER_FAILED,
            f"cannot tell the format of manifest {text!r}: "
            "name it .json, .jsonl, .csv or .parquet (optionally .gz/.zst)",
        )
    return ReaderSpec(resource=GET_OBJECT, bucket=bucket, key=key, input_type=guessed), storage


def state_items(state: MapState, data: Any, context: Any, variables: Mapping[str, Any] | None) -> list[Any]:
    """Items taken from the Map's input through ItemsPath (an object iterates as Key/Value pairs)."""
    items = dataflow.select(state.items_path or "$", data, context, variables, "ItemsPath")
    if isinstance(items, dict):
        return [{"Key": k, "Value": v} for k, v in items.items()]
    if not isinstance(items, list):
        raise StatesError(
            ErrorName.RUNTIME,
            f"Map state input must be an array but was: {dataflow.compact(items)} (ItemsPath {state.items_path})",
        )
    return items


class ReadToTheEnd:
    """A manifest with no items left: a redrive whose Map Run already read its whole source.

    Its unfinished children run again from their stored inputs; nothing is read. It is an iterable,
    not a list, so it is never mistaken for a source of 0 items.
    """

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __repr__(self) -> str:
        return "ReadToTheEnd()"


def open_source(
    state: MapState,
    data: Any,
    context: Any,
    variables: Mapping[str, Any] | None,
    *,
    manifest: str | Path | Iterable[Any] | None,
    start: int,
    language: str = "JSONPath",
    storage: Storage | None = None,
    position: str | None = None,
) -> Iterator[Item]:
    """The Map's items from index ``start`` on, lazily, from ``storage`` (the backend's; default: the environment's).

    ``position`` is an :attr:`~dmap.readers.ItemStream.position` of the same ItemReader at index
    ``start``: the reader resumes there (a seek, a ``StartAfter``) instead of reading up to ``start``.
    A position this reader cannot use (another kind of source, another index) is ignored.
    Readers return an :class:`~dmap.readers.ItemStream` (whose marks give positions); the other
    sources a plain iterator.
    """
    if manifest is not None and not isinstance(manifest, str | Path):
        return _enumerate(manifest, start, STATE_DATA)
    base = reader_spec(state, data, context, variables)
    if manifest is not None:
        base, local = override_spec(manifest, base)
        storage = local or storage
    if base is None:
        if language == "JSONata":
            from .interpreter.jsonata_flow import map_items

            return _enumerate(map_items(state, data, context, dict(variables or {})), start, STATE_DATA)
        return _enumerate(state_items(state, data, context, variables), start, STATE_DATA)
    if position is not None:
        try:
            return open_items(base, storage or get_storage(), position=position, start=start)
        except ConfigurationError:
            logger.warning("reader position %r does not fit this ItemReader: reading up to item %d", position, start)
    return open_items(base, storage or get_storage(), start=start)


def _enumerate(items: Iterable[Any], start: int, source: str) -> Iterator[Item]:
    for index, value in enumerate(items):
        if index >= start:
            yield Item(index, value, source)

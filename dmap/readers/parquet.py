"""Parquet objects as items (``InputType: PARQUET``): one item per row, read batch by batch.

This module owns turning Parquet rows into JSON values with pyarrow (the optional ``parquet``
extra, imported only when a Parquet object is read). AWS documents no type mapping; dmap's
(DESIGN §3): integers and floats → numbers (NaN and infinities → the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``, which JSON cannot hold as numbers), strings, booleans and null as
themselves, timestamps/dates/times → ISO-8601 strings (``2024-01-02T03:04:05.123456789``, an
offset ``+01:00`` or ``Z`` for zoned timestamps), durations → ISO-8601 durations (``PT1.5S``),
decimals → strings (exact), binary → base64 strings, lists → arrays, structs and maps → objects.

The reader needs a seekable stream (the footer is at the end): dmap's S3 streams seek with HTTP
Range requests. Only one batch of rows is in memory at a time (pyarrow reads one row group at a time).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, BinaryIO

from . import reader_failed

BATCH_ROWS = 8192
_OFFSET = re.compile(r"([+-]\d\d)(\d\d)$")
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}

Fixer = Callable[[Any], Any]


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise reader_failed(
            "Reading InputType PARQUET needs pyarrow, which is not installed: pip install 'dmap[parquet]'."
        ) from exc
    return pyarrow


def _iso_timestamp(value: Any) -> Any:
    if value is None:
        return None
    text = str(value).replace(" ", "T", 1)
    return _OFFSET.sub(r"\1:\2", text)


def _float(value: Any) -> Any:
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _binary(value: Any) -> Any:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _duration(unit: str) -> Fixer:
    digits = _UNIT_DIGITS.get(unit, 0)

    def fix(value: Any) -> Any:
        if value is None:
            return None
        seconds = Decimal(int(value)).scaleb(-digits)
        return f"PT{seconds.normalize():f}S"

    return fix


def _target(pa: Any, t: Any) -> Any:
    """The type a column is cast to before ``to_pylist`` (what Python cannot represent, as text)."""
    types = pa.types
    if types.is_timestamp(t) or types.is_date(t) or types.is_time(t) or types.is_decimal(t):
        return pa.string()
    if types.is_duration(t):
        return pa.int64()
    if types.is_dictionary(t):
        return _target(pa, t.value_type)
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        return pa.list_(_target(pa, t.value_type))
    if types.is_struct(t):
        return pa.struct([pa.field(t.field(i).name, _target(pa, t.field(i).type)) for i in range(t.num_fields)])
    if types.is_map(t):
        return pa.map_(_target(pa, t.key_type), _target(pa, t.item_type))
    return t


def _fixer(pa: Any, t: Any) -> Fixer | None:  # noqa: C901 - one branch per Arrow type family
    """A per-value conversion to finish what the cast left (None when values are already JSON)."""
    types = pa.types
    if types.is_timestamp(t):
        return _iso_timestamp
    if types.is_duration(t):
        return _duration(t.unit)
    if types.is_binary(t) or types.is_large_binary(t) or types.is_fixed_size_binary(t):
        return _binary
    if types.is_floating(t):
        return _float
    if types.is_dictionary(t):
        return _fixer(pa, t.value_type)
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        child = _fixer(pa, t.value_type)
        if child is None:
            return None
        return lambda v: None if v is None else [child(x) for x in v]
    if types.is_struct(t):
        fields = [(t.field(i).name, _fixer(pa, t.field(i).type)) for i in range(t.num_fields)]
        if all(f is None for _, f in fields):
            return None
        return lambda v: None if v is None else {k: (f(v[k]) if f else v[k]) for k, f in fields}
    if types.is_map(t):
        key_fix = _fixer(pa, t.key_type) or (lambda k: k)
        item_fix = _fixer(pa, t.item_type) or (lambda x: x)
        return lambda v: None if v is None else {_key(key_fix(k)): item_fix(x) for k, x in v}
    if types.is_interval(t):
        return lambda v: None if v is None else str(v)
    return None


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def iter_parquet(
    stream: BinaryIO,
    uri: str,
    skip: int = 0,
    *,
    at: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet object as JSON objects, from row ``skip`` on (or from the position ``at``).

    Args:
        stream: The object, seekable.
        uri: ``S3://bucket/key``, named in failure causes.
        skip: Rows to pass over first; whole row groups are skipped without being read. Ignored with ``at``.
        at: ``{"g": row group, "r": rows of it already read}`` from an earlier ``where``: the rows from there.
        where: Updated with ``g`` and ``r`` (the position after the row) before each row is yielded.

    Raises:
        StatesError: ``States.ItemReaderFailed`` if pyarrow is missing or the object is not valid Parquet.
    """
    pa = _pyarrow()
    try:
        yield from _rows(pa, stream, skip, at, where)
    except (pa.ArrowException, OSError, ValueError, EOFError) as exc:
        raise reader_failed(f"The Parquet object {uri} cannot be read: {exc}") from exc


def _rows(
    pa: Any, stream: BinaryIO, skip: int, at: dict[str, Any] | None, where: dict[str, Any] | None
) -> Iterator[dict[str, Any]]:
    parquet_file = pa.parquet.ParquetFile(stream)
    schema = parquet_file.schema_arrow
    names = list(schema.names)
    plans = [(_target(pa, field.type), _fixer(pa, field.type), field.type) for field in schema]
    first_group = 0
    if at is not None:
        first_group, skip = int(at["g"]), int(at["r"])
    else:
        while first_group < parquet_file.num_row_groups:
            rows = parquet_file.metadata.row_group(first_group).num_rows
            if skip < rows:
                break
            skip -= rows
            first_group += 1
    # One row group at a time, so each row's position is (its group, rows of the group read).
    for group in range(first_group, parquet_file.num_row_groups):
        done = 0
        for row in _group_rows(pa, parquet_file, group, names, plans, skip):
            done += 1
            if where is not None:
                where["g"], where["r"] = group, skip + done
            yield row
        skip = 0


def _group_rows(
    pa: Any, parquet_file: Any, group: int, names: list[str], plans: list[Any], skip: int
) -> Iterator[dict[str, Any]]:
    if skip >= parquet_file.metadata.row_group(group).num_rows:
        return
    for batch in parquet_file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
        if skip:
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch, skip = batch.slice(skip), 0
        columns = []
        for column, (target, fix, original) in zip(batch.columns, plans, strict=True):
            if target != original:
                column = column.cast(target)
            values = column.to_pylist()
            columns.append(values if fix is None else [fix(v) for v in values])
        if not columns:  # a file with rows but no columns: one empty object per row
            yield from ({} for _ in range(batch.num_rows))
        for values in zip(*columns, strict=True):
            yield dict(zip(names, values, strict=True))

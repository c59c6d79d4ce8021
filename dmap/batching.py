"""ItemBatcher: group selected items into child inputs ``{"BatchInput"?, "Items": [...]}``.

Bytes are counted as dmap documents (DESIGN §3): the UTF-8 size of the compact JSON of the whole
child input — envelope, ``BatchInput`` and items — so a batch never exceeds what a child may
receive. Inputs are assembled from each item's JSON text once, never re-serialized.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .asl.model import MapState
from .errors import ErrorName, StatesError
from .interpreter import dataflow

MAX_BATCH_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """A resolved ItemBatcher: limits and the BatchInput JSON text (or None)."""

    max_items: int | None
    max_bytes: int
    batch_input: str | None


@dataclass(frozen=True, slots=True)
class ChildInput:
    """One child's input: its first item index, how many items it covers, its JSON text."""

    first: int
    items: int
    text: str


def resolve(
    state: MapState, data: Any, context: Any, variables: Mapping[str, Any] | None, limit: int
) -> BatchSpec | None:
    """The Map's ItemBatcher with paths and templates evaluated, or None without batching."""
    batcher = state.item_batcher
    if batcher is None:
        return None
    max_items = _positive(
        batcher.max_items_per_batch, batcher.max_items_per_batch_path, "MaxItemsPerBatch", data, context, variables
    )
    max_bytes = _positive(
        batcher.max_input_bytes_per_batch,
        batcher.max_input_bytes_per_batch_path,
        "MaxInputBytesPerBatch",
        data,
        context,
        variables,
    )
    batch_input = None
    if batcher.batch_input is not None:
        batch_input = dataflow.compact(dataflow.template(batcher.batch_input, data, context, variables))
    return BatchSpec(max_items, min(max_bytes or limit, limit, MAX_BATCH_BYTES), batch_input)


def _positive(literal: Any, path: str | None, field: str, data: Any, context: Any, variables: Any) -> int | None:
    if path is not None:
        value = dataflow.select(path, data, context, variables, f"{field}Path")
        if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer() or value < 1:
            raise StatesError(
                ErrorName.RUNTIME,
                f'The {field}Path field refers to value "{dataflow.compact(value)}" '
                f"which is not a valid positive integer: {path}",
            )
        return int(value)
    return int(literal) if isinstance(literal, int) else None


def single(items: Iterable[tuple[int, str]]) -> Iterator[ChildInput]:
    """No batcher: one child per item."""
    for index, text in items:
        yield ChildInput(index, 1, text)


def batches(items: Iterable[tuple[int, str]], spec: BatchSpec) -> Iterator[ChildInput]:
    """Group ``(index, item_json)`` pairs into batches under ``spec``'s item and byte limits.

    An item too large to fit even alone becomes a batch of one; the coordinator fails that child
    with ``States.DataLimitExceeded`` rather than dropping the item.
    """
    head = '{"BatchInput":' + spec.batch_input + ',"Items":[' if spec.batch_input is not None else '{"Items":['
    base = len(head.encode("utf-8")) + 2  # "]}"
    parts: list[str] = []
    first = 0
    size = base
    for index, text in items:
        item_bytes = len(text.encode("utf-8")) + (1 if parts else 0)
        full = spec.max_items is not None and len(parts) >= spec.max_items
        if parts and (full or size + item_bytes > spec.max_bytes):
            yield ChildInput(first, len(parts), head + ",".join(parts) + "]}")
            parts, size = [], base
            item_bytes -= 1
        if not parts:
            first = index
        parts.append(text)
        size += item_bytes
    if parts:
        yield ChildInput(first, len(parts), head + ",".join(parts) + "]}")

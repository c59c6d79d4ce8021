"""ResultWriter records: what one child execution becomes in a result file or in the inline array.

This module owns the *shape* of results: the AWS record fields for ``Transformation: NONE``, the
``COMPACT`` and ``FLATTEN`` transformations, the deterministic child execution names, and the
compact UTF-8 JSON encoding every result file uses. It is pure (no I/O): the S3 files, their
rollover and the manifest are in :mod:`dmap.writers.s3`.

Input is one *child record* per child execution, as the coordinator collects them::

    {"Child": n, "Index": first_item_index, "Items": k, "Status": "SUCCEEDED|FAILED|TIMED_OUT|ABORTED|PENDING",
     "Input": "<json text>", "Output": "<json text>", "Error": str, "Cause": str,
     "StartDate": "2025-02-04T01:49:50.099Z", "StopDate": "...", "Attempts": n, "Worker": "host:pid"}

dmap's decisions where AWS is silent (reference, Addendum §3): a failed, timed-out or aborted
record carries AWS's execution metadata with ``Error``/``Cause`` in place of ``Output``, and
``RedriveStatus: REDRIVABLE_BY_MAP_RUN`` without a ``RedriveStatusReason`` (the API gives a reason
only for ``NOT_REDRIVABLE``); a PENDING record is ``{"Input", "InputDetails", "Status": "PENDING"}``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

OUTPUT_TYPES = ("JSON", "JSONL")
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")

#: The result file set each child status is written to (AWS: FAILED_n also holds timed-out and aborted).
FILE_GROUPS: dict[str, str] = {
    "SUCCEEDED": "SUCCEEDED",
    "FAILED": "FAILED",
    "TIMED_OUT": "FAILED",
    "ABORTED": "FAILED",
    "PENDING": "PENDING",
}

# A fixed namespace so that child names depend only on the Map Run id and the child number: a
# resumed or redriven run writes the same names. uuid3 because AWS's child names are version-3 UUIDs.
_CHILD_NAMESPACE = uuid.UUID("61aa9d84-d306-4079-b29a-e9c1f1f64c48")
_CHILD_MD5 = hashlib.md5(_CHILD_NAMESPACE.bytes, usedforsecurity=False)  # uuid3's hash, the namespace fed once

_SUCCEEDED_REASON = "Execution is SUCCEEDED and cannot be redriven"


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """A resolved ``ResultWriter``: ``Parameters``/``Arguments`` already evaluated to values.

    Attributes:
        bucket: The destination bucket, or None when only ``WriterConfig`` is given (inline output).
        prefix: The key prefix (``Prefix``); None or ``""`` writes under ``<map-run-id>/`` at the root.
        output_type: ``JSON`` (one array per file) or ``JSONL`` (one record per line).
        transformation: ``NONE`` (records with metadata), ``COMPACT`` (outputs) or ``FLATTEN``
            (outputs, arrays concatenated one level).

    Raises:
        ConfigurationError: For an unknown output type or transformation.
    """

    bucket: str | None = None
    prefix: str | None = None
    output_type: str = "JSON"
    transformation: str = "NONE"

    def __post_init__(self) -> None:
        if self.output_type not in OUTPUT_TYPES:
            raise ConfigurationError(f"WriterConfig.OutputType must be one of {OUTPUT_TYPES}, got {self.output_type!r}")
        if self.transformation not in TRANSFORMATIONS:
            raise ConfigurationError(
                f"WriterConfig.Transformation must be one of {TRANSFORMATIONS}, got {self.transformation!r}"
            )


@dataclass(frozen=True, slots=True)
class RecordContext:
    """The Map Run facts every ``NONE`` record carries.

    Attributes:
        map_run_id: The Map Run's UUID (the last part of its ARN); seeds the child names.
        state_machine_arn: The children's state machine ARN (``…:stateMachine:<sm>/<label>``).
        execution_arn_prefix: A child's ARN without its name (``…:execution:<sm>/<label>:``).
        redrive_count: How many times the Map Run was redriven.
    """

    map_run_id: str
    state_machine_arn: str
    execution_arn_prefix: str
    redrive_count: int = 0


def child_execution_name(map_run_id: str, child: int) -> str:
    """The name of child execution ``child`` of a Map Run: a UUID, the same on every call.

    Args:
        map_run_id: The Map Run's UUID.
        child: The child number (0, 1, 2, ... in reading order).

    Returns:
        A version-3 UUID string, like AWS's child names (``da4e9fc7-abab-3b27-…``).
    """
    # uuid.uuid3 without its UUID object: every child is named, and the object costs more than the hash.
    digest = _CHILD_MD5.copy()
    digest.update(f"{map_run_id}/{child}".encode())
    raw = bytearray(digest.digest())
    raw[6] = (raw[6] & 0x0F) | 0x30  # version 3
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def encode_json(value: Any) -> bytes:
    """Compact JSON of ``value`` as UTF-8 bytes (the unit of every size limit)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (e.g. "\ud800" in a child's output) has no UTF-8 form: keep it \u-escaped.
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def none_record(record: dict[str, Any], context: RecordContext) -> dict[str, Any]:
    """The ``Transformation: NONE`` record of one child, with AWS's fields in AWS's (alphabetical) order.

    Args:
        record: A child record (see the module docstring).
        context: The Map Run's ARNs and redrive count.

    Returns:
        The record as AWS writes it to ``SUCCEEDED_n``/``FAILED_n`` (or dmap's PENDING shape).

    Raises:
        ValueError: If ``record["Status"]`` is not a status a result file holds.
    """
    status = record["Status"]
    if status not in FILE_GROUPS:
        raise ValueError(f"child {record.get('Child')} has status {status!r}, which no result file holds")
    if status == "PENDING":
        return {"Input": record["Input"], "InputDetails": {"Included": True}, "Status": "PENDING"}
    name = child_execution_name(context.map_run_id, int(record["Child"]))
    out: dict[str, Any] = {}
    if status != "SUCCEEDED":
        for key in ("Cause", "Error"):
            if record.get(key) is not None:
                out[key] = record[key]
    out["ExecutionArn"] = context.execution_arn_prefix + name
    out["Input"] = record["Input"]
    out["InputDetails"] = {"Included": True}
    out["Name"] = name
    if status == "SUCCEEDED":
        out["Output"] = record.get("Output", "null")
        out["OutputDetails"] = {"Included": True}
    out["RedriveCount"] = context.redrive_count
    if status == "SUCCEEDED":
        out["RedriveStatus"] = "NOT_REDRIVABLE"
        out["RedriveStatusReason"] = _SUCCEEDED_REASON
    else:
        out["RedriveStatus"] = "REDRIVABLE_BY_MAP_RUN"
    if record.get("StartDate") is not None:
        out["StartDate"] = record["StartDate"]
    out["StateMachineArn"] = context.state_machine_arn
    out["Status"] = status
    if record.get("StopDate") is not None:
        out["StopDate"] = record["StopDate"]
    return out


def transform_output(record: dict[str, Any], transformation: str, *, context: RecordContext) -> list[Any]:
    """The values one child contributes to a result file (or to the inline array).

    Args:
        record: A child record (see the module docstring).
        transformation: ``NONE``, ``COMPACT`` or ``FLATTEN``.
        context: The Map Run's ARNs and redrive count, for ``NONE`` records.

    Returns:
        One value, except with ``FLATTEN`` when a successful child returned an array: then its
        elements (none for an empty array). Unsuccessful children always give their ``NONE``
        record, whatever the transformation (AWS).

    Raises:
        ValueError: For an unknown status or transformation.
    """
    if transformation not in TRANSFORMATIONS:
        raise ValueError(f"unknown transformation {transformation!r}")
    if transformation == "NONE" or record.get("Status") != "SUCCEEDED":
        return [none_record(record, context)]
    output = json.loads(record.get("Output", "null"))
    if transformation == "FLATTEN" and isinstance(output, list):
        return output
    return [output]


def apply_writer_config(
    records: Iterable[dict[str, Any]], spec: WriterSpec, *, context: RecordContext
) -> Iterator[Any]:
    """The inline Map output of a ``ResultWriter`` with ``WriterConfig`` and no ``Resource``.

    Args:
        records: Child records in child (item-index) order.
        spec: The resolved ResultWriter; only ``transformation`` matters here.
        context: The Map Run's ARNs and redrive count, for ``NONE`` records.

    Yields:
        The elements of the Map state's output array, lazily, one child at a time.
    """
    for record in records:
        yield from transform_output(record, spec.transformation, context=context)

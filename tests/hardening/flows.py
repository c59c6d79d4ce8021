"""Definitions the hardening tests run: a DISTRIBUTED Map over an ItemReader or the state input.

Only builders of definition dicts; no dmap behaviour and no test logic.
"""

from __future__ import annotations

from typing import Any

GET_OBJECT = "arn:aws:states:::s3:getObject"
PUT_OBJECT = "arn:aws:states:::s3:putObject"


def processor(resource: str = "HardeningEcho", **task: Any) -> dict[str, Any]:
    """A DISTRIBUTED ItemProcessor of one Task state calling ``resource``."""
    return {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": resource, **task, "End": True}},
    }


def distributed_map(
    *,
    reader: dict[str, Any] | None = None,
    resource: str = "HardeningEcho",
    writer: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A definition whose only state is a DISTRIBUTED Map (``fields`` are more Map fields)."""
    state: dict[str, Any] = {"Type": "Map", "ItemProcessor": processor(resource), "End": True, **fields}
    if reader is not None:
        state["ItemReader"] = reader
    if writer is not None:
        state["ResultWriter"] = writer
    return {"StartAt": "Fan", "States": {"Fan": state}}


def object_reader(bucket: str, key: str, input_type: str, **config: Any) -> dict[str, Any]:
    """An ItemReader of one object (``s3:getObject``) with ``ReaderConfig.InputType``."""
    return {
        "Resource": GET_OBJECT,
        "ReaderConfig": {"InputType": input_type, **config},
        "Parameters": {"Bucket": bucket, "Key": key},
    }


def result_writer(bucket: str, prefix: str) -> dict[str, Any]:
    """A ResultWriter exporting to ``bucket``/``prefix``."""
    return {"Resource": PUT_OBJECT, "Parameters": {"Bucket": bucket, "Prefix": prefix}}

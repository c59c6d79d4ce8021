"""The workflow every fault scenario runs: a DISTRIBUTED Map over a JSONL object, results exported.

One shape for all scenarios: the ItemReader reads ``s3://<bucket>/items.jsonl`` (one ``{"i": n, ...}``
per line), the ItemSelector hands ``{"v": item, "ns", "sleep_ms"}`` to ``FaultWork``, and the
ResultWriter writes ``SUCCEEDED_n``/``FAILED_n``/``PENDING_n`` + ``manifest.json`` under
``s3://<bucket>/out/<map-run-id>/``. Owns only definitions and item files, no checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ITEMS_KEY = "items.jsonl"
RESULTS_PREFIX = "out"
MAP_STATE = "Fan"


def fault_map(
    bucket: str,
    *,
    max_concurrency: int = 0,
    tolerated_count: int | None = None,
    timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """A state machine whose DISTRIBUTED Map runs ``FaultWork`` once per line of ``items.jsonl``."""
    task: dict[str, Any] = {"Type": "Task", "Resource": "FaultWork", "End": True}
    if timeout_seconds is not None:
        task["TimeoutSeconds"] = timeout_seconds
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"},
            "Parameters": {"Bucket": bucket, "Key": ITEMS_KEY},
        },
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "ns.$": "$.ns", "sleep_ms.$": "$.sleep_ms"},
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": task},
        },
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": bucket, "Prefix": RESULTS_PREFIX},
        },
        "End": True,
    }
    if tolerated_count is not None:
        state["ToleratedFailureCount"] = tolerated_count
    return {"StartAt": MAP_STATE, "States": {MAP_STATE: state}}


def fault_input(ns: str, *, sleep_ms: float = 0) -> dict[str, Any]:
    """The execution input: the test's counter namespace and the per-item sleep."""
    return {"ns": ns, "sleep_ms": sleep_ms}


def items_jsonl(count: int, special: Mapping[int, Mapping[str, Any]] | None = None) -> bytes:
    """``count`` JSON lines ``{"i": n}``; ``special`` adds fields (``hang``, ``oom``...) to some of them."""
    extra = special or {}
    lines = (json.dumps({"i": i, **extra.get(i, {})}, separators=(",", ":")) for i in range(count))
    return ("\n".join(lines) + "\n").encode("utf-8")


def expected_output(index: int) -> dict[str, int]:
    """What ``FaultWork`` returns for item ``index``."""
    return {"i": index, "double": 2 * index}

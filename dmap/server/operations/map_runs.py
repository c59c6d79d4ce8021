"""Map Run operations: DescribeMapRun, ListMapRuns and UpdateMapRun, over :mod:`dmap.control`."""

from __future__ import annotations

from typing import Any

from ... import control
from ...errors import ConfigurationError, InvalidStateError
from ...records import MapRun
from .. import arns, shapes
from ..paging import cursor, page_size, token
from ..protocol import ApiError, Call, operation
from .executions import execution_arn

UPDATABLE = ("maxConcurrency", "toleratedFailurePercentage", "toleratedFailureCount")
"""What UpdateMapRun changes (AWS's parameter names)."""


def map_run_arn(call: Call, body: dict[str, Any]) -> str:
    """The journal's ARN of the Map Run a request names."""
    return call.arn(body, "mapRunArn", "mapRun")


def describe(map_run: MapRun) -> dict[str, Any]:
    """DescribeMapRun's response: AWS's fields, its dates as epoch seconds."""
    out = map_run.describe()
    out["startDate"] = arns.epoch(map_run.start_date)
    if map_run.stop_date:
        out["stopDate"] = arns.epoch(map_run.stop_date)
    else:
        out.pop("stopDate", None)
    out["toleratedFailurePercentage"] = float(map_run.tolerated_failure_percentage)
    return shapes.conform("DescribeMapRun", out)


@operation("DescribeMapRun")
def describe_map_run(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """A Map Run with its item and child execution counts (live while RUNNING)."""
    return describe(control.describe_map_run(map_run_arn(call, body), backend=call.backend))


@operation("ListMapRuns")
def list_map_runs(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """The Map Runs of an execution in the order they started, a page at a time."""
    arn = execution_arn(call, body)
    limit, start = page_size(body), int(cursor("ListMapRuns", body) or 0)
    runs = control.list_map_runs(arn, backend=call.backend)
    shown = runs[start : start + limit]
    items = []
    for run in shown:
        item: dict[str, Any] = {
            "executionArn": run.execution_arn,
            "mapRunArn": run.map_run_arn,
            "stateMachineArn": run.state_machine_arn,
            "startDate": arns.epoch(run.start_date),
        }
        if run.stop_date:
            item["stopDate"] = arns.epoch(run.stop_date)
        items.append(item)
    out: dict[str, Any] = {"mapRuns": items}
    if start + limit < len(runs):
        out["nextToken"] = token("ListMapRuns", start + limit)
    return out


@operation("UpdateMapRun")
def update_map_run(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Change a RUNNING Map Run's concurrency or tolerance; it takes effect at once."""
    arn = map_run_arn(call, body)
    if all(body.get(field) is None for field in UPDATABLE):  # in the API's words, not the Python API's
        raise ApiError("ValidationException", f"at least one of {', '.join(UPDATABLE)} must be given")
    try:
        control.update_map_run(
            arn,
            max_concurrency=body.get("maxConcurrency"),
            tolerated_failure_count=body.get("toleratedFailureCount"),
            tolerated_failure_percentage=body.get("toleratedFailurePercentage"),
            backend=call.backend,
        )
    except (ConfigurationError, InvalidStateError) as exc:
        raise ApiError("ValidationException", str(exc)) from None
    return {}

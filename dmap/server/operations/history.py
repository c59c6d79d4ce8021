"""GetExecutionHistory: an execution's top-level events, as botocore's ``GetExecutionHistoryOutput`` has them.

A thin adapter over :func:`dmap.get_execution_history` (the CLI and the Python API read the same
events): ``reverseOrder``, ``maxResults`` (0 = 100, at most 1000), ``nextToken`` and
``includeExecutionData``; timestamps as epoch seconds (AWS's JSON protocol); ARNs inside events in
the caller's region and account.
"""

from __future__ import annotations

from typing import Any

from ... import control
from ...errors import ConfigurationError, NotFoundError
from ...interpreter.context import REGION
from ..paging import page_size
from ..protocol import ApiError, Call, operation


@operation("GetExecutionHistory")
def get_execution_history(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """One page of an execution's history events."""
    arn = call.arn(body, "executionArn", "execution", "express")
    include = body.get("includeExecutionData")
    try:
        page = control.get_execution_history(
            arn,
            reverse_order=bool(body.get("reverseOrder", False)),
            max_results=page_size(body),
            next_token=body.get("nextToken"),
            include_execution_data=include is not False,
            backend=call.backend,
        )
    except NotFoundError:
        raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{body['executionArn']}'") from None
    except ConfigurationError:
        raise ApiError("InvalidToken", f"Invalid Token: '{body.get('nextToken')}'") from None
    out: dict[str, Any] = {"events": [_wire(event, call) for event in page]}
    if page.next_token is not None:
        out["nextToken"] = page.next_token
    return out


def _wire(event: dict[str, Any], call: Call) -> dict[str, Any]:
    """An event as the JSON protocol sends it: epoch seconds, ARNs and TaskScheduled's region the caller's."""
    shaped = dict(event)
    shaped["timestamp"] = round(event["timestamp"].timestamp(), 3)
    scheduled = event.get("taskScheduledEventDetails")
    if scheduled is not None and scheduled.get("region") == REGION:
        # The journal's region: the caller sees its own, as in every ARN of the response.
        shaped["taskScheduledEventDetails"] = {**scheduled, "region": call.region}
    run = event.get("mapRunStartedEventDetails")
    if run is not None and isinstance(run.get("mapRunArn"), str):
        shaped["mapRunStartedEventDetails"] = {**run, "mapRunArn": call.external(run["mapRunArn"])}
    return shaped

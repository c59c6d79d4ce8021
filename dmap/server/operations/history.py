"""GetExecutionHistory: an execution's top-level events, as botocore's ``GetExecutionHistoryOutput`` has them.

A thin adapter over :func:`dmap.get_execution_history` (the CLI and the Python API read the same
events): ``reverseOrder``, ``maxResults`` (0 = 100, at most 1000), ``nextToken`` and
``includeExecutionData``; timestamps as epoch seconds (AWS's JSON protocol); ARNs inside events in
the caller's region and account.
"""

from __future__ import annotations

import re
from typing import Any

from ... import control
from ...errors import ConfigurationError, NotFoundError
from ...interpreter.context import ACCOUNT, REGION
from ..protocol import ApiError, Call, operation

_INTERNAL = f"arn:aws:states:{REGION}:{ACCOUNT}:"
_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:states:[^:]*:[^:]*:(execution|express):(.+)$")
_MOST = 1000


def _execution_arn(body: dict[str, Any]) -> str:
    """The journal's ARN of the requested execution (any region and account, as the other operations take it)."""
    value = body.get("executionArn")
    if not isinstance(value, str) or not value:
        raise ApiError(
            "ValidationException",
            "1 validation error detected: Value null at 'executionArn' failed to satisfy constraint: "
            "Member must not be null",
        )
    found = _ARN.match(value)
    if found is None:
        raise ApiError("InvalidArn", f"Invalid Arn: 'Invalid ARN prefix: {value}'")
    return f"{_INTERNAL}{found.group(1)}:{found.group(2)}"


def _page_size(body: dict[str, Any]) -> int:
    value = body.get("maxResults") or 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MOST:
        raise ApiError(
            "ValidationException",
            f"1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value less than or equal to {_MOST}",
        )
    return value


@operation("GetExecutionHistory")
def get_execution_history(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """One page of an execution's history events."""
    arn = _execution_arn(body)
    include = body.get("includeExecutionData")
    try:
        page = control.get_execution_history(
            arn,
            reverse_order=bool(body.get("reverseOrder", False)),
            max_results=_page_size(body),
            next_token=body.get("nextToken"),
            include_execution_data=include is not False,
            backend=call.backend,
        )
    except NotFoundError:
        raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{body['executionArn']}'") from None
    except ConfigurationError:
        raise ApiError("InvalidToken", f"Invalid Token: '{body.get('nextToken')}'") from None
    external = f"arn:aws:states:{call.region}:{call.settings.account_id}:"
    out: dict[str, Any] = {"events": [_wire(event, external) for event in page]}
    if page.next_token is not None:
        out["nextToken"] = page.next_token
    return out


def _wire(event: dict[str, Any], external: str) -> dict[str, Any]:
    """An event as the JSON protocol sends it: epoch-second timestamp, ARNs in the caller's region."""
    shaped = dict(event)
    shaped["timestamp"] = round(event["timestamp"].timestamp(), 3)
    run = event.get("mapRunStartedEventDetails")
    if run is not None and isinstance(run.get("mapRunArn"), str):
        shaped["mapRunStartedEventDetails"] = {**run, "mapRunArn": run["mapRunArn"].replace(_INTERNAL, external, 1)}
    return shaped

"""Helpers of the integration tests: small definitions, and the cause text of a failed execution."""

from __future__ import annotations

import json
from typing import Any


def task(resource: str, parameters: Any, **fields: Any) -> dict[str, Any]:
    """A Task state calling ``resource`` with ``parameters``."""
    return {"Type": "Task", "Resource": resource, "Parameters": parameters, **fields}


def chain(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A definition running ``states`` in order (states that already have Next/End keep them)."""
    named = dict(states)
    names = list(named)
    for name, following in zip(names, [*names[1:], None], strict=True):
        state = named[name]
        if "Next" in state or "End" in state or state["Type"] in ("Succeed", "Fail"):
            continue
        named[name] = {**state, "End": True} if following is None else {**state, "Next": following}
    return {"StartAt": names[0], "States": named}


def cause_of(execution: Any) -> str:
    """The cause text of a failed execution.

    A handler's exception is reported Lambda-style (the text under ``errorMessage``) until the
    interpreter passes an integration's ASL error through as is; both read the same here.
    """
    cause = str(execution.cause or "")
    prefix, brace, rest = cause.partition("{")  # States.Runtime causes start with "An error occurred while..."
    try:
        wrapped = json.loads(brace + rest)
    except ValueError:
        return cause
    if isinstance(wrapped, dict) and "errorMessage" in wrapped and "errorType" in wrapped:
        return prefix + str(wrapped["errorMessage"])
    return cause

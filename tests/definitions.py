"""State machine definitions the tests (and benchmarks) share: a DISTRIBUTED Map and its child states."""

from __future__ import annotations

from typing import Any


def pass_state() -> dict[str, Any]:
    """A Pass state that ends its branch."""
    return {"Type": "Pass", "End": True}


def map_state(states: dict[str, Any] | None = None, execution_type: str = "STANDARD", **fields: Any) -> dict[str, Any]:
    """A DISTRIBUTED Map state (with ``fields``, e.g. ``ItemsPath``) whose children run ``states``.

    ``states`` (default one Pass state ``P``) start at their first entry; the Map ends the execution.
    """
    children = states if states is not None else {"P": pass_state()}
    return {
        "Type": "Map",
        **fields,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
            "StartAt": next(iter(children)),
            "States": children,
        },
        "End": True,
    }


def distributed_map(
    states: dict[str, Any] | None = None, *, name: str = "M", execution_type: str = "STANDARD", **fields: Any
) -> dict[str, Any]:
    """A definition whose one state, ``name``, is :func:`map_state` (``states``, ``execution_type``, ``fields``)."""
    return {"StartAt": name, "States": {name: map_state(states, execution_type, **fields)}}

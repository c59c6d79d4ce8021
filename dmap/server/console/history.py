"""An execution's history events and the states each path of its workflow reached.

Reads a page of events with ``dmap.control.get_execution_history`` (AWS-shaped event dicts, the
``next_token`` of the next page) and derives, from those events and the Map Runs, what the
execution page shows beside each state of the definition. Nothing here renders HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ... import control


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history events (AWS's shapes) and the token of the next page (None: no more)."""

    events: list[dict[str, Any]]
    next_token: str | None


def history_page(
    arn: str, *, backend: Any, reverse: bool = False, limit: int = 100, next_token: str | None = None
) -> HistoryPage:
    """A page of the execution's history events, oldest first unless ``reverse``.

    Raises:
        NotFoundError: No execution has this ARN.
        ConfigurationError: ``next_token`` is not a token of this history in this order.
    """
    events = control.get_execution_history(
        arn, reverse_order=reverse, max_results=limit, next_token=next_token, backend=backend
    )
    return HistoryPage(list(events), events.next_token)


@dataclass(slots=True)
class StateView:
    """One state of the definition as the execution page lists it.

    Attributes:
        name: The state's name.
        type: Its ``Type``.
        reached: ``succeeded``, ``failed``, ``entered`` (still in it) or ``""`` (not reached, or not known).
        map_run: The Map Run ARN of a DISTRIBUTED Map state that ran, if any.
        branches: The states of each branch (Parallel) or of the item processor (Map), one list per path.
    """

    name: str
    type: str
    reached: str = ""
    map_run: str | None = None
    branches: list[list[StateView]] = field(default_factory=list)


def state_views(definition: dict[str, Any], events: list[dict[str, Any]], execution: Any) -> list[StateView]:
    """The states of ``definition`` (nested paths included) with what the execution's events and records say."""
    reached = _reached(events)
    runs = {m.state_name: m for m in getattr(execution, "map_runs", [])}
    top = _views(definition.get("States") or {}, reached)
    for view in top:
        run = runs.get(view.name)
        if run is not None:
            view.map_run = run.map_run_arn
            if not view.reached:
                view.reached = {"SUCCEEDED": "succeeded", "RUNNING": "entered"}.get(str(run.status), "failed")
    stopped_at = getattr(execution, "resume_state", None)
    if stopped_at and str(getattr(execution, "status", "")) != "SUCCEEDED":
        for view in top:
            if view.name == stopped_at and view.reached != "succeeded":
                view.reached = "failed" if str(execution.status) != "RUNNING" else "entered"
    return top


def _views(states: dict[str, Any], reached: dict[str, str]) -> list[StateView]:
    out = []
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        view = StateView(name, str(state.get("Type", "")), reached.get(name, ""))
        for branch in state.get("Branches") or []:
            view.branches.append(_views(branch.get("States") or {}, reached))
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if isinstance(processor, dict):
            view.branches.append(_views(processor.get("States") or {}, reached))
        out.append(view)
    return out


def _reached(events: list[dict[str, Any]]) -> dict[str, str]:
    """State name -> how far it got, from ``*StateEntered``/``*StateExited`` events and the execution's end."""
    out: dict[str, str] = {}
    for event in events:
        kind = str(event.get("type", ""))
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails") or {}
        name = details.get("name")
        if name is None:
            continue
        if kind.endswith("StateEntered"):
            out.setdefault(name, "entered")
        elif kind.endswith("StateExited") and out.get(name) != "failed":
            out[name] = "succeeded"
    ended = {"ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
    if any(e.get("type") in ended for e in events):  # the states it was still in are where it stopped
        for name, how in out.items():
            if how == "entered":
                out[name] = "failed"
    return out

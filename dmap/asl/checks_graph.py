"""Graph checks of one (sub-)state machine: StartAt, state names, Next/End, transition targets, reachability.

Each ``States`` object is its own scope (the top level, a Parallel branch, a Map's ItemProcessor):
a transition may only name a state of the same scope. What a state does with its fields (paths,
Retry, Map options) is checked elsewhere; nesting is walked by ``checks.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .checks_common import (
    EXCLUSIVE,
    FALLIBLE,
    FLOWING,
    MISSING,
    MISSING_TARGET,
    NO_TERMINAL,
    SCHEMA,
    UNREACHABLE,
    Loc,
    Report,
    as_mapping,
    did_you_mean,
    names_list,
)
from .diagnostics import pointer

MAX_STATE_NAME = 80


def check_machine(report: Report, machine: Mapping[str, Any], loc: Loc, where: Mapping[str, Loc]) -> None:
    """Check the graph of one ``{StartAt, States}`` object.

    Args:
        report: Where diagnostics go.
        machine: The raw machine (top level, branch or ItemProcessor).
        loc: Its location.
        where: Every state name of the whole definition and the location of its ``States`` object, so a
            transition to a state of another scope can say where that state lives.
    """
    if "StartAt" not in machine:
        report.error(MISSING, "'StartAt' is missing: name the state to run first", (*loc, "StartAt"))
    if "States" not in machine:
        report.error(MISSING, "'States' is missing: a state machine needs at least one state", (*loc, "States"))
        return
    states = as_mapping(machine.get("States"))
    if states is None:
        return
    if not states:
        report.error(SCHEMA, "'States' is empty: add at least one state", (*loc, "States"))
        return
    for name, state in states.items():
        if len(name) > MAX_STATE_NAME:
            report.error(
                SCHEMA,
                f"state name is {len(name)} characters long; the limit is {MAX_STATE_NAME}",
                (*loc, "States", name),
            )
        body = as_mapping(state)
        if body is not None:
            _check_next_end(report, body, (*loc, "States", name))
    for target, at in _transitions(states, loc):
        if target not in states:
            report.error(MISSING_TARGET, _missing_message(target, list(states), where, loc), at)
    _check_reachability(report, machine.get("StartAt"), states, loc, where)


def _check_next_end(report: Report, body: Mapping[str, Any], loc: Loc) -> None:
    kind = body.get("Type")
    if kind in ("Choice", "Succeed", "Fail"):
        hint = " (a Choice goes on through Choices[].Next and Default)" if kind == "Choice" else " (it ends by itself)"
        for name in ("Next", "End"):
            if name in body:
                report.error(SCHEMA, f"a {kind} state can't have '{name}'{hint}: remove it", (*loc, name))
        return
    if kind not in FLOWING:
        return
    if "End" in body:
        end = body["End"]
        if end is True:
            if "Next" in body:
                report.error(EXCLUSIVE, "'Next' and 'End' can't be used together: keep one of them", (*loc, "End"))
        elif isinstance(end, bool):
            report.error(
                SCHEMA, "'End' must be true; to go on to another state, remove 'End' and set 'Next'", (*loc, "End")
            )
        return
    if "Next" not in body:
        report.error(MISSING, "the state needs 'Next' (the state to run after it) or '\"End\": true'", loc)


def _transitions(states: Mapping[str, Any], loc: Loc) -> Iterator[tuple[str, Loc]]:
    """Every (target, location) pair of every state in ``states``."""
    for name, state in states.items():
        body = as_mapping(state)
        if body is not None:
            yield from _targets(body, (*loc, "States", name))


def _targets(body: Mapping[str, Any], loc: Loc) -> Iterator[tuple[str, Loc]]:
    """The transitions of one state: Next, Choice rules and Default, Catch[].Next (strings only)."""
    kind = body.get("Type")
    if kind == "Choice":
        choices = body.get("Choices")
        if isinstance(choices, list):
            for i, rule in enumerate(choices):
                rule_body = as_mapping(rule)
                if rule_body is not None and isinstance(rule_body.get("Next"), str):
                    yield rule_body["Next"], (*loc, "Choices", i, "Next")
        if isinstance(body.get("Default"), str):
            yield body["Default"], (*loc, "Default")
        return
    if kind in ("Succeed", "Fail"):
        return
    if isinstance(body.get("Next"), str):
        yield body["Next"], (*loc, "Next")
    catch = body.get("Catch")
    if kind in FALLIBLE and isinstance(catch, list):
        for i, catcher in enumerate(catch):
            catcher_body = as_mapping(catcher)
            if catcher_body is not None and isinstance(catcher_body.get("Next"), str):
                yield catcher_body["Next"], (*loc, "Catch", i, "Next")


def _missing_message(target: str, existing: list[str], where: Mapping[str, Loc], loc: Loc) -> str:
    message = f"there is no state named '{target}' in this States object; its states are {names_list(existing)}"
    elsewhere = where.get(target)
    if elsewhere is not None and elsewhere != (*loc, "States"):
        message += (
            f". '{target}' is defined at {pointer(*elsewhere)}, in another scope: a transition can only name "
            "a state of its own States object (a Parallel branch or Map ItemProcessor is closed)"
        )
    return message + did_you_mean(target, existing)


def _check_reachability(
    report: Report, start: Any, states: Mapping[str, Any], loc: Loc, where: Mapping[str, Loc]
) -> None:
    if not isinstance(start, str):
        return
    if start not in states:
        report.error(MISSING_TARGET, _missing_message(start, list(states), where, loc), (*loc, "StartAt"))
        _check_terminal(report, states.keys(), states, loc)
        return
    seen = {start}
    todo = [start]
    while todo:
        body = as_mapping(states[todo.pop()])
        if body is None:
            continue
        for target, _ in _targets(body, loc):
            if target in states and target not in seen:
                seen.add(target)
                todo.append(target)
    for name in states:
        if name not in seen:
            report.error(
                UNREACHABLE,
                f"state '{name}' can't be reached from StartAt '{start}': no Next, Default, Choice rule or Catch "
                "leads to it. Link it into the workflow or delete it",
                (*loc, "States", name),
            )
    _check_terminal(report, seen, states, loc)


def _check_terminal(report: Report, names: Any, states: Mapping[str, Any], loc: Loc) -> None:
    for name in names:
        body = as_mapping(states[name])
        if body is not None and (body.get("Type") in ("Succeed", "Fail") or body.get("End") is True):
            return
    report.error(
        NO_TERMINAL,
        "no state that ends the workflow can be reached: give one state '\"End\": true', or add a Succeed or "
        "Fail state, so executions can finish",
        (*loc, "States"),
    )

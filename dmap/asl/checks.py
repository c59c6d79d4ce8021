"""The semantic checks of a definition: every rule the pydantic schema cannot express, located by JSON pointer.

Owns the walk over the raw definition (the top level, Parallel branches, Map ItemProcessors) and
hands each machine and state to the check modules: ``checks_graph`` (StartAt, Next/End,
transitions, reachability), ``checks_state`` (query-language fields, JSONata strings, Assign,
Wait/Fail/Task rules; Retry/Catch through ``checks_retry``), ``checks_choice`` (Choice rules),
``checks_map`` (Map modes, ItemReader, ItemBatcher, ResultWriter, Label) and ``checks_paths``
(paths, intrinsics, payload templates). It does not own JSON types or unknown fields: the
pydantic models in ``model.py`` report those, and ``dmap.asl.validate`` merges both lists. (A few
rules, such as retrier value ranges, are checked by both; the check's message is the teaching one.)

The checks run over the raw JSON so that they report even when the schema fails elsewhere; every
check tolerates wrong types by skipping (the schema reports them), and none raises.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import checks_choice, checks_graph, checks_map, checks_paths, checks_resource, checks_state
from .checks_common import DUPLICATE_LABEL, DUPLICATE_STATE, JSONATA, JSONPATH, Loc, Report, StateCtx, as_mapping
from .diagnostics import Diagnostic, pointer

__all__ = ["check_definition"]

logger = logging.getLogger(__name__)

QUERY_LANGUAGE = "QueryLanguage"
MISPLACED_QUERY_LANGUAGE = "MISPLACED_QUERY_LANGUAGE"


@dataclass
class _Walk:
    """What the walk shares across scopes: the report, the top-level language, names and labels seen."""

    report: Report
    top_language: str
    where: dict[str, Loc]
    labels: dict[str, Loc] = field(default_factory=dict)
    names: dict[str, Loc] = field(default_factory=dict)


def check_definition(raw: Mapping[str, Any]) -> list[Diagnostic]:
    """Run every semantic check on a raw definition.

    Args:
        raw: The definition as parsed JSON (any shape: wrong types are skipped, never raised on).

    Returns:
        All diagnostics found, ERRORs and WARNINGs, in walk order.
    """
    report = Report()
    if not isinstance(raw, Mapping):
        return []
    try:
        misplaced = _misplaced_language(raw)
        language = raw.get("QueryLanguage", misplaced)  # the language meant, so its states are checked in it
        top = JSONATA if language == JSONATA else JSONPATH
        walk = _Walk(report, top, {name: loc for loc, name in _all_names(raw, ())})
        _machine(walk, raw, (), in_express=False)
    except Exception:  # a bug in a check must not hide the other diagnostics or crash validate()
        logger.exception("semantic checks stopped early; diagnostics so far are returned")
    return report.items


def _misplaced_language(machine: Mapping[str, Any]) -> Any:
    """The value of a ``QueryLanguage`` written inside ``States`` (where it reads as a state), else None."""
    states = as_mapping(machine.get("States"))
    value = states.get(QUERY_LANGUAGE) if states is not None else None
    return value if isinstance(value, str) else None


def _machine(walk: _Walk, machine: Mapping[str, Any], loc: Loc, *, in_express: bool) -> None:
    states = as_mapping(machine.get("States"))
    misplaced = _misplaced_language(machine)
    if states is not None and misplaced is not None:
        walk.report.error(
            MISPLACED_QUERY_LANGUAGE,
            f"QueryLanguage belongs at the top level or inside a state, not in States (where it reads as a state "
            f'named QueryLanguage): move "QueryLanguage": {json.dumps(misplaced)} next to StartAt',
            (*loc, "States", QUERY_LANGUAGE),
        )
        # One error, not a cascade: the graph checks would call it an unreachable state.
        states = {name: state for name, state in states.items() if name != QUERY_LANGUAGE}
        machine = {**machine, "States": states}
    checks_graph.check_machine(walk.report, machine, loc, walk.where)
    if states is None:
        return
    # The states are checked in the language the misplaced field meant, so its fields raise nothing more.
    scope_language = misplaced if misplaced in (JSONPATH, JSONATA) else walk.top_language
    for name, state in states.items():
        body = as_mapping(state)
        if body is None:
            continue
        state_loc = (*loc, "States", name)
        _unique_name(walk, name, state_loc)
        language = body.get("QueryLanguage")
        ctx = StateCtx(name, body, state_loc, language if language in (JSONPATH, JSONATA) else scope_language)
        _state(walk, ctx, in_express=in_express)


def _state(walk: _Walk, ctx: StateCtx, *, in_express: bool) -> None:
    report = walk.report
    checks_state.check_state(report, ctx, walk.top_language)
    checks_paths.check_state_paths(report, ctx)
    checks_resource.check_task_resource(report, ctx)
    if ctx.type == "Choice":
        checks_choice.check_choice(report, ctx)
    if ctx.type == "Parallel" and isinstance(ctx.body.get("Branches"), list):
        for i, branch in enumerate(ctx.body["Branches"]):
            branch_body = as_mapping(branch)
            if branch_body is not None:
                _machine(walk, branch_body, (*ctx.loc, "Branches", i), in_express=in_express)
    if ctx.type == "Map":
        child_express = checks_map.check_map(report, ctx, in_express=in_express)
        _unique_label(walk, ctx)
        for key in ("ItemProcessor", "Iterator"):
            processor = as_mapping(ctx.body.get(key))
            if processor is not None:
                _machine(walk, processor, (*ctx.loc, key), in_express=child_express)


def _unique_name(walk: _Walk, name: str, loc: Loc) -> None:
    first = walk.names.setdefault(name, loc)
    if first != loc:
        walk.report.error(
            DUPLICATE_STATE,
            f"a state named '{name}' is already defined at {pointer(*first)}: state names must be unique in "
            "the whole definition, including Parallel branches and Map ItemProcessors. Rename one of them",
            loc,
        )


def _unique_label(walk: _Walk, ctx: StateCtx) -> None:
    label = ctx.body.get("Label")
    if not isinstance(label, str) or not label:
        return
    loc = (*ctx.loc, "Label")
    first = walk.labels.setdefault(label, loc)
    if first != loc:
        walk.report.error(
            DUPLICATE_LABEL,
            f"the Map Label '{label}' is already used at {pointer(*first)}: labels name Map Runs and must be "
            "unique in the definition. Choose another label",
            loc,
        )


def _all_names(machine: Mapping[str, Any], loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every state name of the definition with the location of the States object that holds it."""
    states = as_mapping(machine.get("States"))
    if states is None:
        return
    for name, state in states.items():
        yield (*loc, "States"), name
        body = as_mapping(state)
        if body is None:
            continue
        branches = body.get("Branches")
        if body.get("Type") == "Parallel" and isinstance(branches, list):
            for i, branch in enumerate(branches):
                branch_body = as_mapping(branch)
                if branch_body is not None:
                    yield from _all_names(branch_body, (*loc, "States", name, "Branches", i))
        for key in ("ItemProcessor", "Iterator"):
            processor = as_mapping(body.get(key)) if body.get("Type") == "Map" else None
            if processor is not None:
                yield from _all_names(processor, (*loc, "States", name, key))

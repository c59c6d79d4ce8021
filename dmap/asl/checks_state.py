"""Per-state checks: query-language fields, JSONata strings, Assign names, and Wait/Fail/Task rules.

Owns the rules that relate a state's own fields to each other, and runs ``checks_retry`` on its
Retry/Catch. It does not own transitions (``checks_graph``), Choice rules (``checks_choice``),
Map options (``checks_map``) or path and payload-template syntax (``checks_paths``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from . import checks_retry
from .checks_common import (
    EXCLUSIVE,
    INVALID_JSONATA,
    INVALID_VARIABLE,
    JSONATA,
    JSONPATH,
    MISSING,
    SCHEMA,
    WRONG_LANGUAGE,
    Loc,
    Report,
    StateCtx,
    as_mapping,
    exclusive,
    is_int,
    is_timestamp,
    jsonata_body,
    present,
)

MAX_VARIABLE_NAME = 80
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: JSONPath-only state fields and what a JSONata state uses instead.
JSONPATH_ONLY: dict[str, str] = {
    "InputPath": "read the input as $states.input inside Arguments or Output",
    "Parameters": "use Arguments (ItemSelector on a Map)",
    "ResultSelector": "use Output with $states.result",
    "ResultPath": "use Output (or Assign) with $states.result",
    "OutputPath": "use Output",
    "ItemsPath": "use Items with a {% %} expression",
    "Result": "use Output",
    "SecondsPath": "use Seconds with a {% %} expression",
    "TimestampPath": "use Timestamp with a {% %} expression",
    "TimeoutSecondsPath": "use TimeoutSeconds with a {% %} expression",
    "HeartbeatSecondsPath": "use HeartbeatSeconds with a {% %} expression",
    "MaxConcurrencyPath": "use MaxConcurrency with a {% %} expression",
    "ToleratedFailureCountPath": "use ToleratedFailureCount with a {% %} expression",
    "ToleratedFailurePercentagePath": "use ToleratedFailurePercentage with a {% %} expression",
    "ErrorPath": "use Error with a {% %} expression",
    "CausePath": "use Cause with a {% %} expression",
}
#: JSONata-only state fields and what a JSONPath state uses instead.
JSONATA_ONLY: dict[str, str] = {
    "Arguments": "use Parameters",
    "Output": "use ResultSelector, ResultPath and OutputPath",
    "Items": "use ItemsPath",
}
#: Nested objects whose own fields depend on the language: (container, field) -> hint.
_NESTED_JSONPATH_ONLY: dict[tuple[str, str], str] = {
    ("ItemReader", "Parameters"): "use Arguments",
    ("ResultWriter", "Parameters"): "use Arguments",
    ("ItemBatcher", "MaxItemsPerBatchPath"): "use MaxItemsPerBatch with a {% %} expression",
    ("ItemBatcher", "MaxInputBytesPerBatchPath"): "use MaxInputBytesPerBatch with a {% %} expression",
}
_NESTED_JSONATA_ONLY: dict[tuple[str, str], str] = {
    ("ItemReader", "Arguments"): "use Parameters",
    ("ResultWriter", "Arguments"): "use Parameters",
}
# State fields that are never JSONata: nested machines (checked as their own scopes) and free-text comments.
_NOT_EXPRESSIONS = frozenset({"ItemProcessor", "Iterator", "Branches", "Comment"})


def check_state(report: Report, ctx: StateCtx, top_language: str) -> None:
    """Run the per-state checks on one state.

    Args:
        report: Where diagnostics go.
        ctx: The state.
        top_language: The machine's top-level QueryLanguage (a JSONata machine can't hold JSONPath states).
    """
    _check_language(report, ctx, top_language)
    if ctx.jsonata:
        _check_jsonata_strings(report, ctx.body, ctx.loc)
    _check_assign(report, ctx)
    checks_retry.check_retry_catch(report, ctx)
    if ctx.type == "Wait":
        _check_wait(report, ctx)
    elif ctx.type == "Fail":
        exclusive(report, ctx.body, ctx.loc, "Error", "ErrorPath")
        exclusive(report, ctx.body, ctx.loc, "Cause", "CausePath")
    elif ctx.type == "Task":
        _check_task(report, ctx)


def _check_language(report: Report, ctx: StateCtx, top_language: str) -> None:
    body, loc = ctx.body, ctx.loc
    if top_language == JSONATA and body.get("QueryLanguage") == JSONPATH:
        report.error(
            WRONG_LANGUAGE,
            "this state is JSONPath but the state machine's top-level QueryLanguage is JSONata, and a JSONata "
            "machine can't go back to JSONPath states. Convert the state to JSONata, or make the top level "
            "JSONPath (JSONPath machines may hold JSONata states)",
            (*loc, "QueryLanguage"),
        )
    forbidden, other = (JSONPATH_ONLY, JSONPATH) if ctx.jsonata else (JSONATA_ONLY, JSONATA)
    nested = _NESTED_JSONPATH_ONLY if ctx.jsonata else _NESTED_JSONATA_ONLY
    for name in body:
        if name in forbidden and not (name == "Result" and ctx.type != "Pass"):
            report.error(WRONG_LANGUAGE, _language_message(name, other, ctx.language, forbidden[name]), (*loc, name))
    for (container, name), hint in nested.items():
        inner = as_mapping(body.get(container))
        if inner is not None and name in inner:
            report.error(WRONG_LANGUAGE, _language_message(name, other, ctx.language, hint), (*loc, container, name))
    reader = as_mapping(body.get("ItemReader"))
    config = as_mapping(reader.get("ReaderConfig")) if reader is not None else None
    if ctx.jsonata and config is not None and "MaxItemsPath" in config:
        hint = "use MaxItems with a {% %} expression"
        report.error(
            WRONG_LANGUAGE,
            _language_message("MaxItemsPath", JSONPATH, JSONATA, hint),
            (*loc, "ItemReader", "ReaderConfig", "MaxItemsPath"),
        )
    catch = body.get("Catch")
    if isinstance(catch, list):
        bad = "ResultPath" if ctx.jsonata else "Output"
        hint = "use Output (or Assign) with $states.errorOutput" if ctx.jsonata else "use ResultPath"
        for i, catcher in enumerate(catch):
            catcher_body = as_mapping(catcher)
            if catcher_body is not None and bad in catcher_body:
                report.error(
                    WRONG_LANGUAGE,
                    _language_message(bad, other, ctx.language, hint),
                    (*loc, "Catch", i, bad),
                )


def _language_message(name: str, owner: str, language: str, hint: str) -> str:
    return f"'{name}' is a {owner} field, and this state uses {language}: {hint}, or set QueryLanguage to {owner}"


def _strings(value: Any, loc: Loc) -> Iterator[tuple[str, Loc]]:
    """Every string inside ``value`` (a JSON value), with its location."""
    if isinstance(value, str):
        yield value, loc
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*loc, i))


def _expression_strings(body: Mapping[str, Any], loc: Loc) -> Iterator[tuple[str, Loc]]:
    """The strings of a state that JSONata may evaluate: not comments, not nested machines."""
    for key, value in body.items():
        if key in _NOT_EXPRESSIONS:
            continue
        if key in ("Retry", "Catch", "Choices") and isinstance(value, list):
            for i, entry in enumerate(value):
                entry_body = as_mapping(entry)
                for name, item in (entry_body or {}).items():
                    if name != "Comment":
                        yield from _strings(item, (*loc, key, i, name))
            continue
        yield from _strings(value, (*loc, key))


def _check_jsonata_strings(report: Report, body: Mapping[str, Any], loc: Loc) -> None:
    for text, at in _expression_strings(body, loc):
        if not text.startswith("{%"):
            continue
        expression = jsonata_body(text)
        if expression is None:
            report.error(
                INVALID_JSONATA,
                "this string starts with '{%' but does not end with '%}': a JSONata expression is written "
                '"{% expression %}" with nothing before or after the braces',
                at,
            )
            continue
        problem = jsonata_syntax_error(expression)
        if problem:
            report.error(INVALID_JSONATA, f"invalid JSONata expression {text!r}: {problem}", at)


@lru_cache(maxsize=1024)
def jsonata_syntax_error(expression: str) -> str | None:
    """The parser's message if ``expression`` (the text inside ``{% %}``) is not valid JSONata, else None."""
    if not expression.strip():
        return "the expression is empty"
    import jsonata

    try:
        jsonata.Jsonata(expression)
    except Exception as exc:  # jsonata-python raises JException; be safe with any parser failure
        return str(exc) or type(exc).__name__
    return None


def _check_assign(report: Report, ctx: StateCtx) -> None:
    body, loc = ctx.body, ctx.loc
    if "Assign" in body and ctx.type in ("Succeed", "Fail"):
        report.error(
            SCHEMA,
            f"a {ctx.type} state can't assign variables: move the Assign to the state before it",
            (*loc, "Assign"),
        )
    targets: list[tuple[Any, Loc]] = [(body.get("Assign"), (*loc, "Assign"))]
    for container in ("Catch", "Choices"):
        entries = body.get(container)
        if isinstance(entries, list):
            for i, entry in enumerate(entries):
                entry_body = as_mapping(entry)
                if entry_body is not None:
                    targets.append((entry_body.get("Assign"), (*loc, container, i, "Assign")))
    for assign, at in targets:
        assign_body = as_mapping(assign)
        if assign_body is None:
            continue
        for key in assign_body:
            _check_variable_name(report, key, ctx.jsonata, (*at, key))


def _check_variable_name(report: Report, key: str, jsonata: bool, loc: Loc) -> None:
    name = key[:-2] if key.endswith(".$") and not jsonata else key
    if name == "states":
        problem = "'states' is reserved (it is $states in JSONata)"
    elif len(name) > MAX_VARIABLE_NAME:
        problem = f"it is {len(name)} characters long; the limit is {MAX_VARIABLE_NAME}"
    elif not _VARIABLE_NAME.match(name):
        problem = "a name starts with a letter or '_' and has only letters, digits and '_'"
        if jsonata and key.endswith(".$"):
            problem += " (JSONata states don't use '.$' keys: write the value as \"{% expression %}\")"
    else:
        return
    report.error(INVALID_VARIABLE, f"invalid variable name '{name}': {problem}", loc)


def _check_wait(report: Report, ctx: StateCtx) -> None:
    found = present(ctx.body, "Seconds", "Timestamp", "SecondsPath", "TimestampPath")
    if not found:
        report.error(MISSING, "a Wait state needs one of Seconds, Timestamp, SecondsPath or TimestampPath", ctx.loc)
    elif len(found) > 1:
        report.error(
            EXCLUSIVE,
            f"a Wait state takes exactly one of Seconds, Timestamp, SecondsPath, TimestampPath; it has "
            f"{', '.join(found)}",
            (*ctx.loc, found[1]),
        )
    stamp = ctx.body.get("Timestamp")
    if isinstance(stamp, str) and jsonata_body(stamp) is None and not (ctx.jsonata and stamp.startswith("{%")):
        if not is_timestamp(stamp):
            report.error(
                SCHEMA,
                f'Timestamp {stamp!r} is not an ISO-8601 timestamp such as "2016-03-14T01:59:00Z"',
                (*ctx.loc, "Timestamp"),
            )


def _check_task(report: Report, ctx: StateCtx) -> None:
    body = ctx.body
    exclusive(report, body, ctx.loc, "TimeoutSeconds", "TimeoutSecondsPath")
    exclusive(report, body, ctx.loc, "HeartbeatSeconds", "HeartbeatSecondsPath")
    timeout, heartbeat = body.get("TimeoutSeconds"), body.get("HeartbeatSeconds")
    if is_int(timeout) and is_int(heartbeat) and heartbeat >= timeout:
        report.error(
            SCHEMA,
            f"HeartbeatSeconds ({heartbeat}) must be smaller than TimeoutSeconds ({timeout})",
            (*ctx.loc, "HeartbeatSeconds"),
        )

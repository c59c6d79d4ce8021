"""JSONata states (``QueryLanguage: JSONata``): Arguments, Output, Assign, Items, Condition, expression fields.

One runner per state type, with AWS's JSONata data flow: no InputPath/Parameters/ResultSelector/
ResultPath/OutputPath; ``$states.input`` is the raw state input, ``$states.result`` the Task/Parallel/
Map result, ``$states.errorOutput`` the error a Catch caught; ``Output`` defaults to the result
(Task, Parallel, Map) or the input (Pass, Choice, Wait, Succeed); ``Assign`` is evaluated with the
values at state entry, in parallel with ``Output``, and applied after the state. It also gives the
DISTRIBUTED Map coordinator the JSONata versions of Items, ItemSelector and the numeric Map fields
(variable size limits are in ``variables.py``).

Not here: evaluating expressions (``dmap.asl.jsonata``), invoking tasks and running branches
(``states.py``), Retry/Catch (``executor.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..asl import jsonata
from ..asl.model import (
    Catcher,
    ChoiceState,
    FailState,
    MapState,
    ParallelState,
    PassState,
    SucceedState,
    TaskState,
    WaitState,
)
from ..errors import ErrorName, StatesError
from . import callbacks, dataflow, mapfields
from .choice import parse_timestamp
from .executor import Env, Executor
from .states import invoke, map_started, run_branches, run_distributed, sleep_seconds, wait_until
from .variables import check_assignments

Runner = Callable[[Executor, Any, Any, Env], tuple[Any, str | None]]

_MAX_SECONDS = 99_999_999


# --- shared steps -------------------------------------------------------------------------------


def _states(raw: Any, context: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"input": raw, "context": context, **extra}


def _value(value: Any, field: str, states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    return jsonata.resolve(value, states=states, variables=variables, field=field)


def _given(model: Any, name: str) -> bool:
    """True if the definition wrote the field (``"Output": null`` included)."""
    return name in model.model_fields_set


def _output(model: Any, default: Any, states: Mapping[str, Any], env: Env, prefix: str = "") -> Any:
    if not _given(model, "output"):
        return default
    return _value(model.output, f"{prefix}Output", states, env.variables)


def _assign(model: Any, states: Mapping[str, Any], env: Env, prefix: str = "") -> dict[str, Any]:
    if not model.assign:
        return {}
    assignments: dict[str, Any] = _value(dict(model.assign), f"{prefix}Assign", states, env.variables)
    check_assignments(assignments, env.variables, env.name)
    return assignments


def _finish(ex: Executor, model: Any, default: Any, states: Mapping[str, Any], env: Env) -> tuple[Any, dict[str, Any]]:
    """Assign and Output, both from the values at state entry (``$states``, the variables before this state)."""
    assignments = _assign(model, states, env)
    output = ex.check_size(_output(model, default, states, env), env)
    return output, assignments


def _integer(value: Any, field: str, states: Mapping[str, Any], env: Env, low: int, high: int) -> int | None:
    """An integer field given literally or as an expression (``TimeoutSeconds``, ``Seconds``...)."""
    if value is None:
        return None
    result = _value(value, field, states, env.variables)
    if isinstance(result, bool) or not isinstance(result, int | float) or not float(result).is_integer():
        raise jsonata.unexpected_type(value, field, "integer", result)
    if not low <= result <= high:
        raise StatesError(
            ErrorName.QUERY_EVALUATION_ERROR,
            f"The value of the field '{field}' must be between {low} and {high}, but was: {dataflow.compact(result)}",
        )
    return int(result)


# --- the runners --------------------------------------------------------------------------------


def run_pass(ex: Executor, state: PassState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Pass``: Output (default: the input) and Assign."""
    output, assignments = _finish(ex, state, raw, _states(raw, env.context), env)
    env.variables.update(assignments)
    return output, state.next


def run_task(ex: Executor, state: TaskState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Task``: Arguments (default: the input) to the handler; Output (default: the result) and Assign."""

    def body() -> tuple[Any, dict[str, Any]]:
        callbacks.prepare(ex, state, env)  # $states.context.Task.Token, before Arguments read it
        states = _states(raw, env.context)
        args = _value(state.arguments, "Arguments", states, env.variables) if _given(state, "arguments") else raw
        timeout = _integer(state.timeout_seconds, "TimeoutSeconds", states, env, 1, _MAX_SECONDS)
        heartbeat = _integer(state.heartbeat_seconds, "HeartbeatSeconds", states, env, 1, _MAX_SECONDS)
        seconds = None if timeout is None else float(timeout)
        beat = None if heartbeat is None else float(heartbeat)
        if callbacks.handles(state.resource):
            result = ex.check_size(callbacks.run(ex, state, raw, args, env, timeout=seconds, heartbeat=beat), env)
        else:
            result = invoke(ex, state, args, env, timeout=seconds, heartbeat=beat, raw=raw)
        return _finish(ex, state, result, {**states, "result": result}, env)

    return ex.with_retry(state, raw, env, body)


def run_choice(ex: Executor, state: ChoiceState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Choice``: the first rule whose Condition is true; its Assign/Output, or the state's on Default."""
    states = _states(raw, env.context)
    for index, rule in enumerate(state.choices):
        field = f"Choices[{index}]/Condition"
        condition = _value(rule.condition, field, states, env.variables)
        if not isinstance(condition, bool):
            raise jsonata.unexpected_type(rule.condition, field, "boolean", condition)
        if condition:
            prefix = f"Choices[{index}]/"
            assignments = _assign(rule, states, env, prefix)
            output = ex.check_size(_output(rule, raw, states, env, prefix), env)
            env.variables.update(assignments)
            return output, rule.next
    if state.default is None:
        raise StatesError(ErrorName.NO_CHOICE_MATCHED, f"No Matches! in Choice state '{env.name}'")
    output, assignments = _finish(ex, state, raw, states, env)
    env.variables.update(assignments)
    return output, state.default


def run_wait(ex: Executor, state: WaitState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Wait``: Seconds or Timestamp (literal or expression); then Output and Assign."""
    states = _states(raw, env.context)
    if state.timestamp is not None:
        moment = _value(state.timestamp, "Timestamp", states, env.variables)
        if not isinstance(moment, str):
            raise jsonata.unexpected_type(state.timestamp, "Timestamp", "string", moment)
        if parse_timestamp(moment) is None:
            raise StatesError(
                ErrorName.QUERY_EVALUATION_ERROR,
                f"The value of the field 'Timestamp' is not a valid RFC 3339 timestamp: {dataflow.compact(moment)}",
            )
        wait_until(ex, moment, f"Invalid Timestamp: {moment}")
    else:
        seconds = _integer(state.seconds, "Seconds", states, env, 0, _MAX_SECONDS)
        if seconds:
            sleep_seconds(ex, seconds)
    output, assignments = _finish(ex, state, raw, states, env)
    env.variables.update(assignments)
    return output, state.next


def run_succeed(ex: Executor, state: SucceedState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Succeed``: Output (default: the input); ends the workflow."""
    return ex.check_size(_output(state, raw, _states(raw, env.context), env), env), None


def run_fail(ex: Executor, state: FailState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Fail``: raise Error and Cause (literal strings or expressions evaluating to strings)."""
    states = _states(raw, env.context)
    parts: list[str] = []
    for field, value in (("Error", state.error), ("Cause", state.cause)):
        text = _value(value, field, states, env.variables)
        if text is not None and not isinstance(text, str):
            raise jsonata.unexpected_type(value, field, "string", text)
        parts.append(text or "")
    raise StatesError(parts[0], parts[1])


def run_parallel(ex: Executor, state: ParallelState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Parallel``: every branch on Arguments (default: the input); Output (default: the result) and Assign."""

    def body() -> tuple[Any, dict[str, Any]]:
        states = _states(raw, env.context)
        args = _value(state.arguments, "Arguments", states, env.variables) if _given(state, "arguments") else raw
        jobs = [(b, args) for b in state.branches]
        result = ex.check_size(run_branches(ex, jobs, env, len(state.branches), kind="Parallel"), env)
        return _finish(ex, state, result, {**states, "result": result}, env)

    return ex.with_retry(state, raw, env, body)


def run_map(ex: Executor, state: MapState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Map``: Items (default: the input) through ItemSelector, inline here or DISTRIBUTED via the coordinator."""

    def body() -> tuple[Any, dict[str, Any]]:
        states = _states(raw, env.context)
        if state.distributed:
            result = run_distributed(ex, state, raw, env)
        else:
            items = map_items(state, raw, env.context, env.variables)
            limit = max_concurrency(state, raw, env.context, env.variables)
            map_started(ex, env, len(items))
            jobs = [
                (state.processor, select_item(state, raw, env.context, env.variables, i, item, None, None))
                for i, item in enumerate(items)
            ]
            result = run_branches(
                ex, jobs, env, limit or mapfields.INLINE_DEFAULT_CONCURRENCY, kind="Map", lanes=limit or len(jobs)
            )
        result = ex.check_size(result, env)
        return _finish(ex, state, result, {**states, "result": result}, env)

    return ex.with_retry(state, raw, env, body)


def caught(catcher: Catcher, raw: Any, error_output: Any, env: Env) -> tuple[Any, dict[str, Any]]:
    """A JSONata Catch: its Output (default: the error output) and Assign, with ``$states.errorOutput``.

    The assignments are for the scope of the state that caught (the executor stores them there).
    """
    states = _states(raw, env.context, errorOutput=error_output)
    assignments = _assign(catcher, states, env, "Catch/")
    output = _output(catcher, error_output, states, env, "Catch/")
    return output, assignments


# --- Map fields (also used by the DISTRIBUTED coordinator) --------------------------------------


def map_items(state: MapState, data: Any, context: dict[str, Any], variables: Mapping[str, Any]) -> list[Any]:
    """The items of a JSONata Map: ``Items`` (a literal array, or an expression evaluating to one), else the input.

    Raises:
        StatesError: ``States.QueryEvaluationError`` when the items are not an array (AWS's causes).
    """
    if state.items is None:
        items = data
    else:
        items = _value(state.items, "Items", _states(data, context), variables)
        if not isinstance(items, list) and jsonata.is_expression(state.items):
            raise jsonata.unexpected_type(state.items, "Items", "array", items)
    if not isinstance(items, list):
        raise StatesError(
            ErrorName.QUERY_EVALUATION_ERROR, f"Map state input must be an array but was: {dataflow.compact(items)}"
        )
    return items


def select_item(
    state: MapState,
    data: Any,
    context: dict[str, Any],
    variables: Mapping[str, Any],
    index: int,
    value: Any,
    source: str | None,
    key: str | None,
) -> Any:
    """One item's input: ``ItemSelector`` with ``$states.context.Map.Item.{Index,Value,Source,Key}``, else the item."""
    if state.item_selector is None:
        return value
    item: dict[str, Any] = {"Index": index, "Value": value}
    if source is not None:
        item["Source"] = source
    if key is not None:
        item["Key"] = key
    states = _states(data, {**context, "Map": {"Item": item}})
    return _value(state.item_selector, "ItemSelector", states, variables)


def evaluate_field(value: Any, field: str, data: Any, context: dict[str, Any], variables: Mapping[str, Any]) -> Any:
    """Any other Map field written with expressions (``ItemReader/Arguments``, ``ItemBatcher/BatchInput``...)."""
    return _value(value, field, _states(data, context), variables)


def max_concurrency(state: MapState, data: Any, context: dict[str, Any], variables: Mapping[str, Any]) -> int:
    """``MaxConcurrency`` (literal or expression; 0 = no limit)."""
    return _map_integer(state.max_concurrency, "MaxConcurrency", data, context, variables)


def tolerated_failure_count(state: MapState, data: Any, context: dict[str, Any], variables: Mapping[str, Any]) -> int:
    """``ToleratedFailureCount`` (literal or expression; default 0)."""
    return _map_integer(state.tolerated_failure_count, "ToleratedFailureCount", data, context, variables)


def tolerated_failure_percentage(
    state: MapState, data: Any, context: dict[str, Any], variables: Mapping[str, Any]
) -> float:
    """``ToleratedFailurePercentage`` (literal or expression, 0-100; default 0)."""
    template = state.tolerated_failure_percentage
    if template is None:
        return 0.0
    value = _value(template, "ToleratedFailurePercentage", _states(data, context), variables)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise jsonata.unexpected_type(template, "ToleratedFailurePercentage", "number", value)
    if not 0 <= value <= 100:
        raise StatesError(ErrorName.QUERY_EVALUATION_ERROR, "ToleratedFailurePercentage must be between 0 and 100.")
    return float(value)


def _map_integer(template: Any, field: str, data: Any, context: dict[str, Any], variables: Mapping[str, Any]) -> int:
    if template is None:
        return 0
    value = _value(template, field, _states(data, context), variables)
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise jsonata.unexpected_type(template, field, "integer", value)
    if value < 0:
        raise StatesError(ErrorName.QUERY_EVALUATION_ERROR, f"{field} cannot be negative.")
    return int(value)


RUNNERS: dict[str, Runner] = {
    "Pass": run_pass,
    "Task": run_task,
    "Choice": run_choice,
    "Wait": run_wait,
    "Succeed": run_succeed,
    "Fail": run_fail,
    "Parallel": run_parallel,
    "Map": run_map,
}

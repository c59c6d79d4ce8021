"""One state run on its own, as AWS's TestState runs it: its output, its next state, and how it got there.

The state runs on the local interpreter in this process: a Task calls the handler registered here,
a Wait returns without sleeping (on a clock that only pretends to). Retry and Catch are not
looped: an error a retrier matches (with retries left, given ``retrier_retry_count`` already
made) ends the test ``RETRIABLE``; one a catcher matches ends it ``CAUGHT_ERROR`` with the
catcher's output and next state; anything else is ``FAILED``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..asl.model import PassState, StateMachine, TaskState
from ..config import DEFAULT_PAYLOAD_LIMIT
from ..errors import StatesError
from . import dataflow, retry
from .context import ExecutionInfo, FakeClock, Runtime
from .executor import Env, Executor
from .history import Chain

UNSUPPORTED = ("Map", "Parallel")
"""State types TestState does not run here (AWS runs them only with a mock)."""


@dataclass(slots=True)
class StateTest:
    """How one state ended (TestState's response, before it is shaped for the API).

    Attributes:
        status: ``SUCCEEDED``, ``FAILED``, ``RETRIABLE`` or ``CAUGHT_ERROR``.
        output: The state's output (SUCCEEDED and CAUGHT_ERROR).
        next_state: The state it goes to (None at an end, on FAILED or RETRIABLE).
        error: The error name (every status but SUCCEEDED).
        cause: The cause.
        inspection: The data at each step of the state's input and output processing, by AWS's
            ``inspectionData`` names (``input``, ``afterInputPath``, ``afterParameters``, ``result``,
            ``afterResultSelector``, ``afterResultPath``, ``variables``, ``errorDetails``).
    """

    status: str
    output: Any = None
    next_state: str | None = None
    error: str | None = None
    cause: str | None = None
    inspection: dict[str, Any] = field(default_factory=dict)


def run_state(
    machine: StateMachine,
    name: str,
    value: Any,
    *,
    variables: dict[str, Any] | None = None,
    retrier_retry_count: int = 0,
    payload_limit: int | None = None,
) -> StateTest:
    """Run state ``name`` of ``machine`` once on ``value`` (a JSON value) and report how it ended.

    Raises:
        KeyError: ``machine`` has no state ``name``.
        ValueError: The state is a Map or a Parallel state.
    """
    state = machine.states[name]
    if state.type in UNSUPPORTED:
        raise ValueError(f"a {state.type} state")
    runtime = Runtime(clock=FakeClock(datetime.now(UTC)), payload_limit=payload_limit or DEFAULT_PAYLOAD_LIMIT)
    info = ExecutionInfo(name=str(uuid.uuid4()), state_machine_name="TestState", input=value)
    executor = Executor(runtime, info, language=machine.query_language or "JSONPath")
    env = Env(
        name=name,
        context={**executor.base_context, "State": {"Name": name, "EnteredTime": info.start_time, "RetryCount": 0}},
        variables=dict(variables or {}),
        language=state.query_language or machine.query_language or "JSONPath",
        entered_event=executor.history.add(Chain(), f"{state.type}StateEntered", "stateEnteredEventDetails", None),
    )
    inspection: dict[str, Any] = {"input": value}
    handled = state.model_copy(update={"retry": [], "catch": []}) if isinstance(state, TaskState) else state
    try:
        if env.language == "JSONPath" and isinstance(handled, PassState | TaskState):
            output, next_state = _jsonpath(executor, handled, value, env, inspection)
        else:
            from .states import RUNNERS

            output, next_state = RUNNERS[handled.type](executor, handled, value, env)
    except StatesError as exc:
        return _failed(executor, state, value, env.runtime_error(exc), env, retrier_retry_count, inspection)
    if env.variables:
        inspection["variables"] = env.variables
    return StateTest("SUCCEEDED", output=output, next_state=next_state, inspection=inspection)


def _jsonpath(
    ex: Executor, state: PassState | TaskState, raw: Any, env: Env, inspection: dict[str, Any]
) -> tuple[Any, str | None]:
    """Pass and Task in JSONPath, step by step (each step's data is what DEBUG inspection shows)."""
    from .states import invoke

    data = dataflow.input_path(state.input_path, raw, env.context, env.variables)
    inspection["afterInputPath"] = data
    args = data if state.parameters is None else dataflow.template(state.parameters, data, env.context, env.variables)
    inspection["afterParameters"] = args
    if isinstance(state, PassState):
        result = state.result if "result" in state.model_fields_set else args
    else:
        # Literal timeouts hold (a TimeoutSecondsPath is not evaluated here).
        timeout = state.timeout_seconds if isinstance(state.timeout_seconds, int) else None
        heartbeat = state.heartbeat_seconds if isinstance(state.heartbeat_seconds, int) else None
        result = invoke(ex, state, args, env, timeout=timeout, heartbeat=heartbeat)
        inspection["result"] = result
    assignments = _assignments(state, result, env)
    if isinstance(state, TaskState) and state.result_selector is not None:
        result = dataflow.template(state.result_selector, result, env.context, env.variables)
    inspection["afterResultSelector"] = result
    combined = dataflow.result_path(state.result_path, raw, result)
    inspection["afterResultPath"] = combined
    output = dataflow.output_path(state.output_path, combined, env.context, env.variables)
    ex.check_size(output, env)
    env.variables.update(assignments)
    return output, state.next


def _assignments(state: PassState | TaskState, result: Any, env: Env) -> dict[str, Any]:
    if not state.assign:
        return {}
    from .variables import check_assignments

    found = dataflow.template(dict(state.assign), result, env.context, env.variables)
    assignments = dict(found) if isinstance(found, dict) else {}
    check_assignments(assignments, env.variables, env.name)
    return assignments


def _failed(
    ex: Executor, state: Any, raw: Any, error: StatesError, env: Env, retries_made: int, inspection: dict[str, Any]
) -> StateTest:
    """RETRIABLE, CAUGHT_ERROR or FAILED: what the state's Retry and Catch make of ``error``."""
    retriers, catchers = getattr(state, "retry", None) or [], getattr(state, "catch", None) or []
    index = retry.find_retrier(retriers, error.name)
    if index is not None and retries_made < retriers[index].max_attempts:
        delay = retry.backoff_seconds(retriers[index], retries_made)
        inspection["errorDetails"] = {"retryIndex": index, "retryBackoffIntervalSeconds": int(delay)}
        return StateTest("RETRIABLE", error=error.name, cause=error.cause, inspection=inspection)
    catcher = retry.find_catcher(catchers, error.name)
    if catcher is not None:
        output = ex.caught(catcher, raw, error, env)
        inspection["errorDetails"] = {"catchIndex": catchers.index(catcher)}
        if env.variables:
            inspection["variables"] = env.variables
        return StateTest(
            "CAUGHT_ERROR",
            output=output,
            next_state=catcher.next,
            error=error.name,
            cause=error.cause,
            inspection=inspection,
        )
    return StateTest("FAILED", error=error.name, cause=error.cause, inspection=inspection)

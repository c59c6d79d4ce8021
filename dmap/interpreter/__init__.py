"""The ASL interpreter: runs ONE workflow execution in-process and returns its result.

It serves the top level of :func:`dmap.run`, inline Maps, Parallel branches and every distributed
child alike. It is synchronous and knows nothing of Redis, Celery or S3: DISTRIBUTED Maps are
handed to ``Runtime.distributed_map``, the host's coordinator.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ..asl.model import Branch, StateMachine
from ..errors import ErrorName, StatesError
from . import dataflow
from .context import ExecutionInfo, FakeClock, MapInvocation, Runtime, SystemClock, iso_now
from .executor import Aborted, Executor
from .history import Chain, History, error_details, payload
from .tasks import Registry, TaskContext, registry, task

__all__ = [
    "ExecutionInfo",
    "ExecutionResult",
    "FakeClock",
    "MapInvocation",
    "Registry",
    "Runtime",
    "SystemClock",
    "TaskContext",
    "execute",
    "registry",
    "task",
]


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """How an execution ended.

    Attributes:
        status: ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT`` or ``ABORTED``.
        output: The final output (SUCCEEDED only).
        error: The error name (FAILED/TIMED_OUT), None when the Fail state gave none.
        cause: The cause string, None when none was given.
        position: Where a failed/aborted execution stopped: (state name, its input, the variables) —
            what a redrive restarts from.
        output_json: The output as compact JSON (SUCCEEDED only): made anyway to check its size,
            kept so a host that stores it does not serialize it again.
    """

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    position: tuple[str, Any, dict[str, Any]] | None = None
    output_json: str | None = None


def execute(
    machine: StateMachine | Branch,
    input: Any = None,
    *,
    runtime: Runtime | None = None,
    info: ExecutionInfo | None = None,
    language: str | None = None,
    start_at: str | None = None,
    variables: dict[str, Any] | None = None,
) -> ExecutionResult:
    """Run a state machine (or a Map's ItemProcessor) on ``input``.

    Args:
        machine: A loaded :class:`StateMachine`, or a :class:`Branch` (a child workflow).
        input: The execution input (JSON value); ``{}`` when None.
        runtime: Handlers, clock, limits and hooks; defaults to the global registry and the real clock.
        info: ``$$.Execution``/``$$.StateMachine`` data; generated when None.
        language: The inherited query language (a child of a JSONata machine).
        start_at: Start from this state instead of ``StartAt`` (a redrive).
        variables: The variables at ``start_at`` (a redrive).

    Returns:
        The :class:`ExecutionResult`. Failures are results, never exceptions.
    """
    runtime = runtime or Runtime()
    if isinstance(machine, StateMachine) and machine.timeout_seconds and runtime.deadline is None:
        import time
        from dataclasses import replace

        runtime = replace(runtime, deadline=time.monotonic() + machine.timeout_seconds)
    value = {} if input is None else input
    info = info or ExecutionInfo(name=str(uuid.uuid4()), state_machine_name="dmap", input=value, start_time=iso_now())
    branch = machine.as_branch() if isinstance(machine, StateMachine) else machine
    history = runtime.history or History()
    chain = _open_history(history, value, info, start_at)
    executor = Executor(runtime, info, language=branch.query_language or language or "JSONPath", history=history)
    try:
        output = executor.run_branch(branch, value, variables, start_at=start_at, checkpoint=True, chain=chain)
        text = dataflow.compact(output)
        if len(text.encode("utf-8")) > runtime.payload_limit:
            executor.check_size(output, _top_env(executor.position[0] if executor.position else branch.start_at))
    except Aborted:
        reason = runtime.stop_reason() if runtime.stop_reason is not None else None
        error, cause = reason if reason is not None else ("States.Aborted", "The execution was stopped")
        _close_history(history, chain, "ExecutionAborted", None, error, cause)
        return ExecutionResult("ABORTED", error=error, cause=cause, position=executor.position)
    except StatesError as exc:
        status = "TIMED_OUT" if exc.name == ErrorName.TIMEOUT.value and "execution timed out" in exc.cause else "FAILED"
        kind = "ExecutionTimedOut" if status == "TIMED_OUT" else "ExecutionFailed"
        _close_history(history, chain, kind, None, exc.name, exc.cause)
        return ExecutionResult(status, error=exc.name or None, cause=exc.cause or None, position=executor.position)
    _close_history(history, chain, "ExecutionSucceeded", output, None, None)
    return ExecutionResult("SUCCEEDED", output=output, output_json=text)


def _open_history(history: History, value: Any, info: ExecutionInfo, start_at: str | None) -> Chain:
    """The top-level chain: after ExecutionStarted, or after the events already stored (a redrive, a resume)."""
    if start_at is not None and history.next_id > 1:  # the host numbered from its stored events
        return Chain(history.next_id - 1)
    chain = Chain()
    details = None
    if history.recording:
        text, sizes = payload(value)
        details = {"input": text, "inputDetails": sizes, "roleArn": info.context_object()["Execution"]["RoleArn"]}
    history.add(chain, "ExecutionStarted", "executionStartedEventDetails", details, update=False)
    return chain


def _close_history(
    history: History, chain: Chain, kind: str, output: Any, error: str | None, cause: str | None
) -> None:
    """The execution's last event."""
    key = kind[0].lower() + kind[1:] + "EventDetails"
    details = None
    if history.recording:
        if kind == "ExecutionSucceeded":
            text, sizes = payload(output)
            details = {"output": text, "outputDetails": sizes}
        else:
            details = error_details(error, cause)
    history.add(chain, kind, key, details)


def _top_env(state_name: str) -> Any:
    from .executor import Env

    return Env(name=state_name, context={}, variables={}, language="JSONPath", entered_event=0)

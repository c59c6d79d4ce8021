"""One function per state type (JSONPath). Each takes the raw state input and returns ``(output, next)``.

JSONata states are delegated to ``jsonata_flow``; both share the Task invocation, the branch
runner and the executor's Retry/Catch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import datetime
from threading import Event
from typing import Any

from .. import integrations, telemetry
from ..asl.model import (
    Branch,
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
from . import callbacks, choice, dataflow, mapfields
from . import history as events
from .context import MapInvocation
from .executor import Aborted, Env, Executor
from .history import Chain
from .tasks import (
    LAMBDA_INVOKE,
    TaskContext,
    call_handler,
    marshal_json,
    new_request_id,
    unresolved,
    wrap_lambda_result,
)
from .variables import check_assignments

Runner = Callable[[Executor, Any, Any, Env], tuple[Any, str | None]]


def _jsonata(kind: str) -> Runner:
    from . import jsonata_flow

    runner: Runner = jsonata_flow.RUNNERS[kind]
    return runner


def _assign(assign: Mapping[str, Any] | None, value: Any, env: Env) -> dict[str, Any]:
    if not assign:
        return {}
    result = dataflow.template(dict(assign), value, env.context, env.variables)
    assignments = dict(result) if isinstance(result, Mapping) else {}
    check_assignments(assignments, env.variables, env.name)
    return assignments


def _finish(state: Any, raw: Any, result: Any, env: Env) -> tuple[Any, dict[str, Any]]:
    """Assign (on the raw result, as AWS) -> ResultSelector -> ResultPath -> OutputPath for Task, Parallel, Map."""
    assignments = _assign(state.assign, result, env)
    if state.result_selector is not None:
        result = dataflow.template(state.result_selector, result, env.context, env.variables)
    combined = dataflow.result_path(state.result_path, raw, result)
    return dataflow.output_path(state.output_path, combined, env.context, env.variables), assignments


def _arguments(state: TaskState | ParallelState, raw: Any, env: Env) -> tuple[Any, Any]:
    """InputPath, then Parameters: the state's effective input and what it hands on."""
    data = dataflow.input_path(state.input_path, raw, env.context, env.variables)
    if state.parameters is None:
        return data, data
    return data, dataflow.template(state.parameters, data, env.context, env.variables)


def run_pass(ex: Executor, state: PassState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Pass``: Result (or Parameters, or the input) placed by ResultPath."""
    if env.language == "JSONata":
        return _jsonata("Pass")(ex, state, raw, env)
    data = dataflow.input_path(state.input_path, raw, env.context, env.variables)
    if state.parameters is not None:
        data = dataflow.template(state.parameters, data, env.context, env.variables)
    result = state.result if "result" in state.model_fields_set else data
    env.variables.update(_assign(state.assign, result, env))
    combined = dataflow.result_path(state.result_path, raw, result)
    output = dataflow.output_path(state.output_path, combined, env.context, env.variables)
    if state.parameters is not None or "result" in state.model_fields_set:  # what can grow the data
        ex.check_size(output, env)
    return output, state.next


def run_task(ex: Executor, state: TaskState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Task``: call the resolved handler under Retry/Catch."""
    if env.language == "JSONata":
        return _jsonata("Task")(ex, state, raw, env)

    def body() -> tuple[Any, dict[str, Any]]:
        callbacks.prepare(ex, state, env)  # $$.Task.Token, before Parameters read it
        data, args = _arguments(state, raw, env)
        timeout = _seconds(state.timeout_seconds, state.timeout_seconds_path, "TimeoutSecondsPath", data, env)
        heartbeat = _seconds(state.heartbeat_seconds, state.heartbeat_seconds_path, "HeartbeatSecondsPath", data, env)
        if callbacks.handles(state.resource):
            result = callbacks.run(ex, state, raw, args, env, timeout=timeout, heartbeat=heartbeat)
            return _finish(state, raw, ex.check_size(result, env), env)
        result = invoke(ex, state, args, env, timeout=timeout, heartbeat=heartbeat, raw=raw)
        return _finish(state, raw, result, env)

    return ex.with_retry(state, raw, env, body)


def invoke(
    ex: Executor,
    state: TaskState,
    args: Any,
    env: Env,
    *,
    timeout: float | None,
    heartbeat: float | None,
    quiet: bool = False,
    raw: Any = None,
) -> Any:
    """Resolve the Task's resource against the registry and call it; the raw result (wrapped for lambda:invoke).

    ``quiet``: the call is part of another Task's invocation (a ``.waitForTaskToken`` Lambda call), which
    records the history events. ``raw`` is the state's raw input: when the state runs at the top level
    of its execution, a long wait for rate-limit tokens may park the execution there (``Runtime.flow``).
    """
    registry = ex.runtime.registry
    wrap = state.resource == LAMBDA_INVOKE
    if wrap:
        function = args.get("FunctionName") if isinstance(args, Mapping) else None
        payload = args.get("Payload") if isinstance(args, Mapping) else None
        found = registry.lookup(function) if isinstance(function, str) else None
    elif integrations.is_integration(state.resource):
        function, payload = state.resource, args
        handler = integrations.resolve(state.resource)
        if handler is None:
            raise StatesError(ErrorName.TASK_FAILED, integrations.disabled_reason(state.resource))
        found = (state.resource, handler)
    else:
        function, payload = None, args
        found = registry.lookup(state.resource)
    if found is None:
        raise unresolved(state.resource, function, registry.names(), state=env.name)
    name, handler = found
    context = TaskContext(
        function_name=name,
        state_name=env.name,
        execution_arn=ex.info.execution_arn,
        aws_request_id=new_request_id(),
        item_index=ex.runtime.item_index,
    )
    # A quiet call numbers nothing in the execution's history: the Task around it records the events.
    history, chain = (events.History(), Chain()) if quiet else (ex.history, env.chain)
    task = events.TaskEvents(history, chain, state.resource, ex.info.execution_arn)
    task.scheduled(args, timeout, heartbeat)
    flow = ex.runtime.flow
    if flow is not None and flow.active():  # shared rate limits (dmap.flow): wait for a token of the called service
        flow.before_call(state.resource, function, payload, callbacks.park_point(ex, state, env, raw))
    # The handler's own copy: its mutations never leak into the state (a str or a number cannot mutate).
    event = payload if isinstance(payload, str | int | float | None) else dataflow.parse(dataflow.compact(payload))
    remaining = None if ex.runtime.deadline is None else max(0.001, ex.runtime.deadline - time.monotonic())
    bound = timeout if remaining is None or (timeout is not None and timeout <= remaining) else remaining
    try:
        if telemetry.tracer() is None:
            result, text = marshal_json(call_handler(handler, event, context, timeout=bound, heartbeat=heartbeat))
        else:
            with telemetry.handler_span(name, env.name, context.item_index):
                result = call_handler(handler, event, context, timeout=bound, heartbeat=heartbeat)
            result, text = marshal_json(result)
    except StatesError as exc:
        task.ended(exc)
        if exc.name == ErrorName.TIMEOUT.value and bound is not timeout:  # the execution's deadline, not the Task's
            ex._check_alive()
        raise
    if wrap:
        wrapped = wrap_lambda_result(result, request_id=context.aws_request_id, function=function)
        task.succeeded(wrapped)
        return ex.check_size(wrapped, env)
    task.succeeded(result)
    return ex.check_size(result, env, text)


def _seconds(literal: Any, path: str | None, field: str, data: Any, env: Env) -> float | None:
    if path is not None:
        value = dataflow.select(path, data, env.context, env.variables, field)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise StatesError(
                ErrorName.RUNTIME, f"The {field} field refers to value {value!r}, not a positive integer: {path}"
            )
        return float(value)
    return float(literal) if isinstance(literal, int | float) else None


def run_choice(ex: Executor, state: ChoiceState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Choice``: the Next of the first matching rule, else Default, else ``States.NoChoiceMatched``."""
    if env.language == "JSONata":
        return _jsonata("Choice")(ex, state, raw, env)
    data = dataflow.input_path(state.input_path, raw, env.context, env.variables)
    target = next((r for r in state.choices if choice.evaluate(r, data, env.context, env.variables)), None)
    if target is None and state.default is None:
        raise StatesError(ErrorName.NO_CHOICE_MATCHED, f"No Matches! in Choice state '{env.name}'")
    # A matching rule assigns its own variables; the state-level Assign applies when Default is taken.
    env.variables.update(_assign(target.assign if target is not None else state.assign, data, env))
    output = dataflow.output_path(state.output_path, data, env.context, env.variables)
    return output, target.next if target is not None else state.default


def run_wait(ex: Executor, state: WaitState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Wait``: by Seconds, SecondsPath, Timestamp or TimestampPath."""
    if env.language == "JSONata":
        return _jsonata("Wait")(ex, state, raw, env)
    data = dataflow.input_path(state.input_path, raw, env.context, env.variables)
    if state.seconds_path is not None:
        sleep_seconds(ex, wait_seconds_from_path(state.seconds_path, data, env))
    elif state.timestamp_path is not None:
        value = dataflow.select(state.timestamp_path, data, env.context, env.variables, "TimestampPath")
        wait_until(
            ex,
            value,
            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time "
            f"format string: {state.timestamp_path} == {value}",
        )
    elif state.timestamp is not None:
        wait_until(ex, state.timestamp, f"Invalid Timestamp: {state.timestamp}")
    elif isinstance(state.seconds, int):
        sleep_seconds(ex, state.seconds)
    env.variables.update(_assign(state.assign, data, env))
    return dataflow.output_path(state.output_path, data, env.context, env.variables), state.next


def wait_seconds_from_path(path: str, data: Any, env: Env) -> int:
    """``SecondsPath``'s value, checked as AWS does."""
    value = dataflow.select(path, data, env.context, env.variables, "SecondsPath")
    shown = dataflow.compact(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise StatesError(
            ErrorName.RUNTIME, f"The SecondsPath parameter cannot be parsed as a long value: {path} == {shown}"
        )
    if value < 0:
        raise StatesError(
            ErrorName.RUNTIME, f"The SecondsPath parameter references a negative value: {path} == {shown}"
        )
    return int(value)


def sleep_seconds(ex: Executor, seconds: float) -> None:
    """Sleep on the runtime's clock, in slices when the execution can be aborted meanwhile."""
    if ex.runtime.should_abort is None:
        ex.runtime.clock.sleep(seconds)
        return
    remaining = float(seconds)
    while remaining > 0:
        ex.runtime.clock.sleep(min(1.0, remaining))
        remaining -= 1.0
        ex._check_alive()


def wait_until(ex: Executor, value: Any, message: str) -> None:
    """Sleep until an RFC 3339 timestamp (no sleep if it is past)."""
    moment = choice.parse_timestamp(value)
    if moment is None:
        raise StatesError(ErrorName.RUNTIME, message)
    now: datetime = ex.runtime.clock.now()
    sleep_seconds(ex, max(0.0, (moment - now).total_seconds()))


def run_succeed(ex: Executor, state: SucceedState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Succeed``: InputPath then OutputPath; ends the workflow."""
    if env.language == "JSONata":
        return _jsonata("Succeed")(ex, state, raw, env)
    data = dataflow.input_path(state.input_path, raw, env.context, env.variables)
    return dataflow.output_path(state.output_path, data, env.context, env.variables), None


def run_fail(ex: Executor, state: FailState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Fail``: raise the state's error and cause (literal, path or intrinsic)."""
    if env.language == "JSONata":
        return _jsonata("Fail")(ex, state, raw, env)
    error = dataflow.string_or_path(state.error, state.error_path, raw, env.context, env.variables)
    cause = dataflow.string_or_path(state.cause, state.cause_path, raw, env.context, env.variables)
    raise StatesError(error or "", cause or "")


def run_parallel(ex: Executor, state: ParallelState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Parallel``: every branch on the same input; the result is their outputs in branch order."""
    if env.language == "JSONata":
        return _jsonata("Parallel")(ex, state, raw, env)

    def body() -> tuple[Any, dict[str, Any]]:
        data, args = _arguments(state, raw, env)
        result = run_branches(ex, [(b, args) for b in state.branches], env, len(state.branches), kind="Parallel")
        return _finish(state, raw, ex.check_size(result, env), env)

    return ex.with_retry(state, raw, env, body)


def run_map(ex: Executor, state: MapState, raw: Any, env: Env) -> tuple[Any, str | None]:
    """``Map``: inline iterations here; DISTRIBUTED ones through the runtime's coordinator."""
    if env.language == "JSONata":
        return _jsonata("Map")(ex, state, raw, env)

    def body() -> tuple[Any, dict[str, Any]]:
        data = dataflow.input_path(state.input_path, raw, env.context, env.variables)
        if state.distributed:
            result = run_distributed(ex, state, data, env)
        else:
            items = map_items(state, data, env)
            limit = mapfields.max_concurrency(state, data, env.context, env.variables)
            map_started(ex, env, len(items))
            jobs = [(state.processor, _item_input(state, data, i, item, env)) for i, item in enumerate(items)]
            result = run_branches(
                ex, jobs, env, limit or mapfields.INLINE_DEFAULT_CONCURRENCY, kind="Map", lanes=limit or len(jobs)
            )
        return _finish(state, raw, ex.check_size(result, env), env)

    return ex.with_retry(state, raw, env, body)


def map_items(state: MapState, data: Any, env: Env) -> list[Any]:
    """The items of a JSONPath Map: ItemsPath's array (an object iterates as ``{"Key", "Value"}`` pairs)."""
    items = dataflow.select(state.items_path or "$", data, env.context, env.variables, "ItemsPath")
    if isinstance(items, dict):
        return [_Pair(k, v) for k, v in items.items()]
    if not isinstance(items, list):
        raise StatesError(
            ErrorName.RUNTIME,
            f"Map state input must be an array but was: {dataflow.compact(items)} (ItemsPath {state.items_path})",
        )
    return items


class _Pair(dict[str, Any]):
    """A key/value pair of an object the Map iterates: ``{"Key", "Value"}`` as the item itself."""

    def __init__(self, key: str, value: Any) -> None:
        super().__init__(Key=key, Value=value)


def _item_input(state: MapState, data: Any, index: int, item: Any, env: Env) -> Any:
    if state.selector is None:
        return dict(item) if isinstance(item, _Pair) else item
    # AWS: over an object, $$.Map.Item.Key is the key and $$.Map.Item.Value the bare value.
    entry = {"Index": index, "Key": item["Key"], "Value": item["Value"]} if isinstance(item, _Pair) else None
    context = {**env.context, "Map": {"Item": entry or {"Index": index, "Value": item}}}
    return dataflow.template(state.selector, data, context, env.variables)


def run_distributed(ex: Executor, state: MapState, data: Any, env: Env) -> Any:
    """Hand a DISTRIBUTED Map to the runtime's coordinator."""
    if ex.runtime.distributed_map is None:
        raise StatesError(ErrorName.RUNTIME, f"The DISTRIBUTED Map '{env.name}' cannot run here: no backend was given")
    history, chain = ex.history, env.chain
    if env.language == "JSONata":
        from . import jsonata_flow

        jsonata_flow.max_concurrency(state, data, env.context, env.variables)  # AWS checks it before MapStateStarted
    else:
        mapfields.max_concurrency(state, data, env.context, env.variables)
    map_started(ex, env, _distributed_length(state, data, env) if history.recording else 0)
    run_started: list[int] = []

    def started(arn: str) -> None:
        details = {"mapRunArn": arn} if history.recording else None
        run_started.append(history.add(chain, "MapRunStarted", "mapRunStartedEventDetails", details))

    invocation = MapInvocation(
        env.name, state, data, env.context, dict(env.variables), env.language, env.entered_event, started
    )
    try:
        result = ex.runtime.distributed_map(invocation)
    except StatesError as exc:
        if run_started:
            details = events.error_details(exc.name, exc.cause) if history.recording else None
            history.add(chain, "MapRunFailed", "mapRunFailedEventDetails", details)
            env.child_failed = True
        raise
    # AWS (since late 2024): MapStateExited points to MapRunStarted; MapRunSucceeded and MapStateSucceeded chain aside.
    run = chain.fork()
    history.add(run, "MapRunSucceeded")
    history.add(run, "MapStateSucceeded", update=False)
    return result


def map_started(ex: Executor, env: Env, length: int) -> None:
    """The MapStateStarted event of a Map state (after its items and MaxConcurrency are known)."""
    details = {"length": length} if ex.history.recording else None
    ex.history.add(env.chain, "MapStateStarted", "mapStateStartedEventDetails", details)


def _distributed_length(state: MapState, data: Any, env: Env) -> int:
    """The ``length`` of a DISTRIBUTED Map's MapStateStarted: its items from the input, 0 with an ItemReader."""
    if state.item_reader is not None:
        return 0
    try:
        if env.language == "JSONata":
            from . import jsonata_flow

            return len(jsonata_flow.map_items(state, data, env.context, env.variables))
        return len(map_items(state, data, env))
    except StatesError:
        return 0  # the coordinator reports the error itself


def run_branches(
    ex: Executor, jobs: list[tuple[Branch, Any]], env: Env, concurrency: int, *, kind: str = "Parallel", lanes: int = 0
) -> list[Any]:
    """Run branches (Parallel) or iterations (inline Map), in threads when they can block; outputs in order.

    The first failure cancels the rest (they stop before their next state) and is raised. ``kind``
    names the state type for the history events; ``lanes`` is how many iterations AWS runs at once
    (its MaxConcurrency, or all): iteration ``i`` continues lane ``i % lanes``'s event chain.
    """
    history, parent = ex.history, env.chain
    if kind == "Parallel":
        history.add(parent, "ParallelStateStarted")
    if not jobs:
        history.add(parent, f"{kind}StateSucceeded", update=False)
        return []
    chains = [parent.fork() for _ in range(max(1, min(lanes, len(jobs))) if kind == "Map" else len(jobs))]
    run = _iteration if kind == "Map" else _branch
    cancel = Event()
    distinct = {id(branch): branch for branch, _ in jobs}.values()
    succeeded = False
    try:
        if concurrency <= 1 or len(jobs) == 1 or not any(_blocks(branch) for branch in distinct):
            outputs = [run(ex, env, i, b, value, chains, len(jobs), cancel) for i, (b, value) in enumerate(jobs)]
            succeeded = True
            return outputs
        with ThreadPoolExecutor(max_workers=min(concurrency, len(jobs)), thread_name_prefix="dmap-branch") as pool:
            futures = [
                pool.submit(run, ex, env, i, b, value, chains, len(jobs), cancel) for i, (b, value) in enumerate(jobs)
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                cancel.set()
                for f in futures:
                    f.cancel()
                raise failed.exception()  # type: ignore[misc]
            outputs = [f.result() for f in futures]
            succeeded = True
            return outputs
    except StatesError:
        env.child_failed = True
        raise
    finally:
        for chain in chains:
            parent.join(chain)
        if succeeded:
            history.add(parent, f"{kind}StateSucceeded", update=False)


def _branch(
    ex: Executor, env: Env, index: int, branch: Branch, value: Any, chains: list[Chain], count: int, cancel: Event
) -> Any:
    """One Parallel branch, on its own event chain."""
    return ex.run_branch(branch, value, dict(env.variables), env.language, cancel, chain=chains[index])


def _iteration(
    ex: Executor, env: Env, index: int, branch: Branch, value: Any, chains: list[Chain], count: int, cancel: Event
) -> Any:
    """One inline Map iteration with its MapIteration* events, continuing its lane's chain."""
    history = ex.history
    lane = chains[index % len(chains)]
    job = lane.fork()
    details = {"index": index, "name": env.name} if history.recording else None
    history.add(job, "MapIterationStarted", "mapIterationStartedEventDetails", details)
    try:
        output = ex.run_branch(branch, value, dict(env.variables), env.language, cancel, chain=job)
    except StatesError:
        history.add(job, "MapIterationFailed", "mapIterationFailedEventDetails", details, update=False)
        lane.join(job)
        raise
    except Aborted:
        history.add(job, "MapIterationAborted", "mapIterationAbortedEventDetails", details, update=False)
        lane.join(job)
        raise
    history.add(job, "MapIterationSucceeded", "mapIterationSucceededEventDetails", details, update=False)
    lane.join(job)
    if index >= count - len(chains):  # the lane's last iteration: what follows points to its final event
        lane.source = job.last
    return output


def _blocks(branch: Branch) -> bool:
    """True if a branch can block (Task, Wait, or nested concurrency), so threads pay off."""
    for state in branch.states.values():
        if isinstance(state, TaskState | WaitState):
            return True
        if isinstance(state, ParallelState) and any(_blocks(b) for b in state.branches):
            return True
        if isinstance(state, MapState) and (state.distributed or _blocks(state.processor)):
            return True
    return False


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

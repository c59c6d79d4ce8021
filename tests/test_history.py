"""Execution histories: the events of Task, Parallel and Distributed Map states, paging, bounds, both stores.

The shapes of Pass, Choice, Wait, Fail, Succeed and inline Map histories are checked against what
AWS recorded by the conformance corpus (tests/conformance); these cover what the corpus has none of.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.errors import ConfigurationError, NotFoundError
from tests.definitions import distributed_map, pass_state

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:history-double"


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    engine = LocalBackend(Settings())
    yield engine
    engine.close()


@pytest.fixture(autouse=True)
def handlers() -> Iterator[None]:
    calls: list[int] = []

    @dmap.task("history-double")
    def double(event: Any, context: dmap.TaskContext) -> Any:
        return {"n": event["n"] * 2}

    @dmap.task("history-flaky")
    def flaky(event: Any, context: dmap.TaskContext) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first call fails")
        return "ok"

    yield
    for name in ("history-double", "history-flaky"):
        dmap.interpreter.registry.unregister(name)


def history(definition: dict[str, Any], backend: Any, value: Any = None) -> list[dict[str, Any]]:
    execution = dmap.run(definition, input=value, backend=backend, name=f"h-{uuid.uuid4().hex[:8]}")
    return list(dmap.get_execution_history(execution.execution_arn, backend=backend, max_results=1000))


def links(events: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    return [(e["id"], e["previousEventId"], e["type"]) for e in events]


def test_a_lambda_function_task_records_the_lambda_events_with_input_and_output(backend: LocalBackend) -> None:
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FUNCTION, "End": True}}}
    events = history(definition, backend, {"n": 2})
    assert links(events) == [
        (1, 0, "ExecutionStarted"),
        (2, 0, "TaskStateEntered"),
        (3, 2, "LambdaFunctionScheduled"),
        (4, 3, "LambdaFunctionStarted"),
        (5, 4, "LambdaFunctionSucceeded"),
        (6, 5, "TaskStateExited"),
        (7, 6, "ExecutionSucceeded"),
    ]
    scheduled = events[2]["lambdaFunctionScheduledEventDetails"]
    assert scheduled["resource"] == FUNCTION and json.loads(scheduled["input"]) == {"n": 2}
    assert json.loads(events[4]["lambdaFunctionSucceededEventDetails"]["output"]) == {"n": 4}
    assert "lambdaFunctionStartedEventDetails" not in events[3]  # botocore's HistoryEvent has no such member


def test_lambda_invoke_records_task_events_and_a_retry_schedules_again_after_the_failure(
    backend: LocalBackend,
) -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "history-flaky", "Payload": {"x": 1}},
                "Retry": [
                    {"ErrorEquals": ["ValueError"], "IntervalSeconds": 1, "MaxAttempts": 1, "JitterStrategy": "FULL"}
                ],
                "TimeoutSeconds": 30,
                "End": True,
            }
        },
    }
    events = history(definition, backend)
    assert links(events) == [
        (1, 0, "ExecutionStarted"),
        (2, 0, "TaskStateEntered"),
        (3, 2, "TaskScheduled"),
        (4, 3, "TaskStarted"),
        (5, 4, "TaskFailed"),
        (6, 5, "TaskScheduled"),
        (7, 6, "TaskStarted"),
        (8, 7, "TaskSucceeded"),
        (9, 8, "TaskStateExited"),
        (10, 9, "ExecutionSucceeded"),
    ]
    scheduled = events[2]["taskScheduledEventDetails"]
    assert (scheduled["resourceType"], scheduled["resource"], scheduled["timeoutInSeconds"]) == ("lambda", "invoke", 30)
    assert json.loads(scheduled["parameters"]) == {"FunctionName": "history-flaky", "Payload": {"x": 1}}
    failed = events[4]["taskFailedEventDetails"]
    assert failed["error"] == "ValueError" and json.loads(failed["cause"])["errorMessage"] == "first call fails"
    assert json.loads(events[7]["taskSucceededEventDetails"]["output"])["Payload"] == "ok"


def test_a_caught_task_failure_exits_the_state_from_its_failed_event(
    backend: LocalBackend,
) -> None:
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Next": "T"},
            "T": {
                "Type": "Task",
                "Resource": "history-flaky",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Bad"}],
                "End": True,
            },
            "Bad": {"Type": "Pass", "Parameters": {"n.$": "States.StringToJson($.Cause)"}, "End": True},
        },
    }
    types = links(history(definition, backend))
    assert types[4:9] == [
        (5, 4, "LambdaFunctionScheduled"),
        (6, 5, "LambdaFunctionStarted"),
        (7, 6, "LambdaFunctionFailed"),
        (8, 7, "TaskStateExited"),
        (9, 8, "PassStateEntered"),
    ]


def test_a_cause_quotes_the_id_of_the_failing_states_entered_event_inside_a_map_iteration(
    backend: LocalBackend,
) -> None:
    inner = {"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$", "End": True}}}
    definition = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": inner, "End": True}},
    }
    execution = dmap.run(definition, input=[0, -1], backend=backend)
    events = dmap.get_execution_history(execution.execution_arn, backend=backend)
    entered = [e["id"] for e in events if e["type"] == "WaitStateEntered"]
    assert execution.cause == (
        f"An error occurred while executing the state 'W' (entered at the event id #{entered[1]}). "
        "The SecondsPath parameter references a negative value: $ == -1"
    )
    assert [e["type"] for e in events][-4:] == [
        "WaitStateEntered",
        "MapIterationFailed",
        "MapStateFailed",
        "ExecutionFailed",
    ]


def test_parallel_branches_chain_from_parallel_state_started_and_the_state_exits_after_the_last(
    backend: LocalBackend,
) -> None:
    branches = [{"StartAt": name, "States": {name: {"Type": "Pass", "End": True}}} for name in ("B1", "B2")]
    definition = {"StartAt": "Par", "States": {"Par": {"Type": "Parallel", "Branches": branches, "End": True}}}
    assert links(history(definition, backend, {"v": 1})) == [
        (1, 0, "ExecutionStarted"),
        (2, 0, "ParallelStateEntered"),
        (3, 2, "ParallelStateStarted"),
        (4, 3, "PassStateEntered"),
        (5, 4, "PassStateExited"),
        (6, 3, "PassStateEntered"),
        (7, 6, "PassStateExited"),
        (8, 7, "ParallelStateSucceeded"),
        (9, 7, "ParallelStateExited"),
        (10, 9, "ExecutionSucceeded"),
    ]


def test_a_distributed_map_shows_its_map_run_not_its_children(backend: LocalBackend) -> None:
    definition = distributed_map({"C": pass_state()})
    events = history(definition, backend, [1, 2, 3])
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
        "MapRunSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]
    arn = events[3]["mapRunStartedEventDetails"]["mapRunArn"]
    assert dmap.describe_map_run(arn, backend=backend).item_counts["succeeded"] == 3
    assert events[2]["mapStateStartedEventDetails"] == {"length": 3}


def test_pages_reverse_order_and_leaving_out_execution_data(backend: LocalBackend) -> None:
    states = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(9)}
    states["S9"] = {"Type": "Pass", "End": True}
    execution = dmap.run({"StartAt": "S0", "States": states}, input={"secret": 1}, backend=backend)
    arn = execution.execution_arn
    seen: list[int] = []
    token = None
    while True:
        page = dmap.get_execution_history(arn, backend=backend, max_results=7, reverse_order=True, next_token=token)
        seen.extend(e["id"] for e in page)
        token = page.next_token
        if token is None:
            break
    assert seen == list(range(22, 0, -1))
    bare = dmap.get_execution_history(arn, backend=backend, include_execution_data=False)
    assert "secret" not in json.dumps([{k: v for k, v in e.items() if k != "timestamp"} for e in bare])
    assert bare[1]["stateEnteredEventDetails"] == {"name": "S0"}
    with pytest.raises(ConfigurationError):
        dmap.get_execution_history(arn, backend=backend, max_results=7, next_token=page.next_token or "bogus")
    with pytest.raises(NotFoundError):
        dmap.get_execution_history(arn + "-missing", backend=backend)


def test_a_history_past_its_bound_drops_the_middle_and_keeps_how_it_ended() -> None:
    engine = LocalBackend(Settings(history_max_events=5))
    try:
        states = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(4)}
        states["S4"] = {"Type": "Fail", "Error": "Done"}
        execution = dmap.run({"StartAt": "S0", "States": states}, backend=engine)
        page = dmap.get_execution_history(execution.execution_arn, backend=engine)
    finally:
        engine.close()
    assert [e["id"] for e in page] == [1, 2, 3, 4, 11]
    assert page[-1]["type"] == "ExecutionFailed" and page[-1]["previousEventId"] == 10
    assert page.dropped == 6


def test_a_distributed_child_records_nothing() -> None:
    from dmap.interpreter import Runtime, execute
    from dmap.interpreter.history import History

    definition = dmap.load({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    assert Runtime().history is None  # what child.py builds: numbering only
    recorded: list[dict[str, Any]] = []
    execute(definition, {}, runtime=Runtime(history=History(recorded.append)))
    assert [e["type"] for e in recorded] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]


def test_the_celery_backend_keeps_histories_in_redis_with_a_retention(redis_url: str, real_redis: Any) -> None:
    from dmap.backends.celery import CeleryBackend

    engine = CeleryBackend(Settings(redis_url=redis_url, broker_url=redis_url, retention_days=1))
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FUNCTION, "End": True}}}
    execution = dmap.run(definition, input={"n": 5}, backend=engine, name="in-redis")
    key = f"dmap:j:h:{execution.execution_arn}"
    assert real_redis.llen(key) == 7
    assert 0 < real_redis.ttl(key) <= 86400
    page = dmap.get_execution_history(execution.execution_arn, backend=engine, max_results=3, reverse_order=True)
    assert [e["type"] for e in page] == ["ExecutionSucceeded", "TaskStateExited", "LambdaFunctionSucceeded"]
    rest = dmap.get_execution_history(
        execution.execution_arn, backend=engine, max_results=3, reverse_order=True, next_token=page.next_token
    )
    assert [e["id"] for e in rest] == [4, 3, 2]


def test_a_redrive_goes_on_numbering_after_an_execution_redriven_event(backend: LocalBackend) -> None:
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Next": "T"}, "T": {"Type": "Task", "Resource": "history-flaky", "End": True}},
    }
    execution = dmap.run(definition, backend=backend)
    assert execution.status == "FAILED"
    dmap.redrive_execution(execution.execution_arn, backend=backend)
    events = dmap.get_execution_history(execution.execution_arn, backend=backend)
    assert links(events)[6:] == [
        (7, 6, "LambdaFunctionFailed"),
        (8, 7, "ExecutionFailed"),
        (9, 8, "ExecutionRedriven"),
        (10, 9, "TaskStateEntered"),
        (11, 10, "LambdaFunctionScheduled"),
        (12, 11, "LambdaFunctionStarted"),
        (13, 12, "LambdaFunctionSucceeded"),
        (14, 13, "TaskStateExited"),
        (15, 14, "ExecutionSucceeded"),
    ]
    assert events[8]["executionRedrivenEventDetails"] == {"redriveCount": 1}


def test_the_memory_store_forgets_the_oldest_histories_past_its_total_bound() -> None:
    from dmap.history import MemoryHistoryStore
    from dmap.interpreter.history import Chain, History

    store = MemoryHistoryStore(max_total_bytes=2500)
    for name in ("a", "b", "c"):
        recorder, first = store.recorder(name, fresh=True)
        history = History(recorder, first_id=first)
        for _ in range(8):  # about 134 bytes each: two histories fit, three do not
            history.add(Chain(), "PassStateEntered", "stateEnteredEventDetails", {"name": name, "input": "{}"})
    assert [len(store.events(n, 0, 100)) for n in ("a", "b", "c")] == [0, 8, 8]

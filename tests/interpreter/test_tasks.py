"""Task states: how a Resource resolves to a registered handler, what the handler sees, and how it fails.

Reference: DESIGN §2 (resolution, ``lambda:invoke`` wrapping, Lambda-style errors) and
aws-distributed-map.md §2/§6.6 (``States.Timeout``, ``States.HeartbeatTimeout``). Timeouts use a
real clock (a handler thread is what times out), so each costs about a second; handlers that are
abandoned stop on ``context.cancelled`` so no thread outlives its test by long.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any

import pytest

from dmap.interpreter import Registry, TaskContext, task
from dmap.interpreter.tasks import check_resources

from .support import Harness, machine, single

LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"
INVOKE = "arn:aws:states:::lambda:invoke"


def _echo(event: Any, context: TaskContext) -> Any:
    return {"got": event}


def _wait_until_cancelled(context: TaskContext, limit: float = 5.0) -> None:
    """Block like a hung handler, but let the thread end once the interpreter gives up on it."""
    end = time.monotonic() + limit
    while not context.cancelled and time.monotonic() < end:
        time.sleep(0.01)


@pytest.mark.parametrize(
    "resource",
    [
        "Echo",
        LAMBDA_ARN.format("Echo"),
        LAMBDA_ARN.format("Echo") + ":prod",
        LAMBDA_ARN.format("Echo") + ":7",
    ],
    ids=["bare name", "lambda arn", "arn with alias", "arn with version"],
)
def test_a_task_resource_resolves_to_the_handler_registered_under_the_function_name(
    sfn: Harness, resource: str
) -> None:
    sfn.task("Echo")(_echo)
    result = sfn.run(single({"Type": "Task", "Resource": resource}), {"n": 1})
    assert (result.status, result.output) == ("SUCCEEDED", {"got": {"n": 1}})


def test_a_handler_registered_under_a_full_arn_is_preferred_for_that_arn(sfn: Harness) -> None:
    sfn.task("Echo")(lambda event, context: "by name")
    sfn.task(LAMBDA_ARN.format("Echo") + ":prod")(lambda event, context: "by qualified arn")
    prod = sfn.run(single({"Type": "Task", "Resource": LAMBDA_ARN.format("Echo") + ":prod"}), {})
    other = sfn.run(single({"Type": "Task", "Resource": LAMBDA_ARN.format("Echo") + ":dev"}), {})
    assert (prod.output, other.output) == ("by qualified arn", "by name")


def test_lambda_invoke_calls_the_function_name_with_the_payload_and_wraps_the_result(sfn: Harness) -> None:
    sfn.task("Echo")(_echo)
    definition = single(
        {"Type": "Task", "Resource": INVOKE, "Parameters": {"FunctionName": "Echo", "Payload": {"v.$": "$.v"}}}
    )
    result = sfn.run(definition, {"v": 3})
    assert list(result.output) == ["ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"]
    assert (result.output["ExecutedVersion"], result.output["Payload"], result.output["StatusCode"]) == (
        "$LATEST",
        {"got": {"v": 3}},
        200,
    )


def test_lambda_invoke_accepts_a_function_arn_and_a_dynamic_function_name(sfn: Harness) -> None:
    sfn.task("Echo")(_echo)
    by_arn = single(
        {"Type": "Task", "Resource": INVOKE, "Parameters": {"FunctionName": LAMBDA_ARN.format("Echo"), "Payload": 1}}
    )
    dynamic = single({"Type": "Task", "Resource": INVOKE, "Parameters": {"FunctionName.$": "$.fn", "Payload": 2}})
    assert sfn.run(by_arn, {}).output["Payload"] == {"got": 1}
    assert sfn.run(dynamic, {"fn": "Echo"}).output["Payload"] == {"got": 2}


def test_lambda_invoke_with_a_dynamic_unregistered_function_fails_the_task_listing_the_handlers(
    sfn: Harness,
) -> None:
    sfn.task("Echo")(_echo)
    definition = single({"Type": "Task", "Resource": INVOKE, "Parameters": {"FunctionName.$": "$.fn"}})
    result = sfn.run(definition, {"fn": "Ghost"})
    assert (result.status, result.error) == ("FAILED", "States.TaskFailed")
    assert "Ghost" in (result.cause or "") and "Echo" in (result.cause or "")


def test_lambda_invoke_result_selector_reads_the_payload(sfn: Harness) -> None:
    sfn.task("Echo")(_echo)
    definition = single(
        {
            "Type": "Task",
            "Resource": INVOKE,
            "Parameters": {"FunctionName": "Echo", "Payload.$": "$"},
            "ResultSelector": {"body.$": "$.Payload.got", "code.$": "$.StatusCode"},
            "ResultPath": "$.result",
        }
    )
    assert sfn.run(definition, {"a": 1}).output == {"a": 1, "result": {"body": {"a": 1}, "code": 200}}


def test_task_data_flow_runs_input_path_parameters_selector_result_path_output_path(sfn: Harness) -> None:
    seen: list[Any] = []

    @sfn.task("Double")
    def double(event: Any, context: TaskContext) -> Any:
        seen.append(event)
        return {"value": event["n"] * 2, "noise": "x"}

    definition = single(
        {
            "Type": "Task",
            "Resource": "Double",
            "InputPath": "$.job",
            "Parameters": {"n.$": "$.n", "tag": "t"},
            "ResultSelector": {"doubled.$": "$.value"},
            "ResultPath": "$.job.out",
            "OutputPath": "$.job",
        }
    )
    result = sfn.run(definition, {"job": {"n": 21}, "other": True})
    assert seen == [{"n": 21, "tag": "t"}]
    assert result.output == {"n": 21, "out": {"doubled": 42}}


def test_a_handler_receives_a_lambda_style_context(sfn: Harness) -> None:
    seen: list[TaskContext] = []
    sfn.task("Ctx")(lambda event, context: seen.append(context))
    result = sfn.run(machine(("Work", {"Type": "Task", "Resource": LAMBDA_ARN.format("Ctx"), "End": True})), {})
    assert result.status == "SUCCEEDED"
    (context,) = seen
    assert context.function_name == "Ctx"
    assert context.state_name == "Work"
    assert context.execution_arn.startswith("arn:aws:states:")
    assert context.aws_request_id
    assert context.get_remaining_time_in_millis() > 0


def test_each_invocation_gets_its_own_request_id(sfn: Harness) -> None:
    ids: list[str] = []
    sfn.task("Id")(lambda event, context: ids.append(context.aws_request_id))
    definition = machine(
        ("A", {"Type": "Task", "Resource": "Id", "ResultPath": None, "Next": "B"}),
        ("B", {"Type": "Task", "Resource": "Id", "ResultPath": None, "End": True}),
    )
    sfn.run(definition, {})
    assert len(ids) == 2 and ids[0] != ids[1]


def test_a_handler_exception_becomes_its_class_name_with_a_lambda_style_cause(sfn: Harness) -> None:
    class PaymentDeclined(Exception):
        pass

    @sfn.task("Pay")
    def pay(event: Any, context: TaskContext) -> Any:
        raise PaymentDeclined("card 4242 declined")

    result = sfn.run(single({"Type": "Task", "Resource": "Pay"}), {})
    assert (result.status, result.error) == ("FAILED", "PaymentDeclined")
    cause = json.loads(result.cause or "")
    assert cause["errorMessage"] == "card 4242 declined"
    assert cause["errorType"] == "PaymentDeclined"
    assert isinstance(cause["stackTrace"], list) and cause["stackTrace"]
    assert any("raise PaymentDeclined" in line for line in cause["stackTrace"])


def test_a_handler_exception_with_a_timeout_set_is_reported_the_same_way(sfn: Harness) -> None:
    sfn.task("Bad")(lambda event, context: 1 / 0)
    result = sfn.run(single({"Type": "Task", "Resource": "Bad", "TimeoutSeconds": 30}), {})
    assert result.error == "ZeroDivisionError"
    assert json.loads(result.cause or "")["errorType"] == "ZeroDivisionError"


@pytest.mark.parametrize("limits", [{}, {"TimeoutSeconds": 30}], ids=["in the caller thread", "in a worker thread"])
def test_a_handler_calling_sys_exit_fails_the_task_without_ending_the_process(
    sfn: Harness, limits: dict[str, Any]
) -> None:
    sfn.task("Quit")(lambda event, context: sys.exit(3))
    result = sfn.run(single({"Type": "Task", "Resource": "Quit", **limits}), {})
    assert (result.status, result.error) == ("FAILED", "SystemExit")
    assert json.loads(result.cause or "")["errorType"] == "SystemExit"


def test_a_handler_exit_can_be_caught_like_any_error(sfn: Harness) -> None:
    sfn.task("Quit")(lambda event, context: sys.exit("bye"))
    definition = machine(
        (
            "T",
            {
                "Type": "Task",
                "Resource": "Quit",
                "End": True,
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After"}],
            },
        ),
        ("After", {"Type": "Pass", "Parameters": {"error.$": "$.Error"}, "End": True}),
    )
    assert sfn.run(definition, {}).output == {"error": "SystemExit"}


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, b"bytes", {1, 2}, {"nested": {"bad": float("-inf")}}, object()],
    ids=["nan", "infinity", "bytes", "set", "nested infinity", "object"],
)
def test_a_handler_returning_something_that_is_not_json_fails_with_runtime_marshal_error(
    sfn: Harness, value: Any
) -> None:
    sfn.task("Odd")(lambda event, context: value)
    result = sfn.run(single({"Type": "Task", "Resource": "Odd"}), {})
    assert (result.status, result.error) == ("FAILED", "Runtime.MarshalError")
    cause = json.loads(result.cause or "")
    assert cause["errorType"] == "Runtime.MarshalError"
    assert cause["errorMessage"].startswith("Unable to marshal response")


def test_a_handler_returning_a_circular_object_fails_with_runtime_marshal_error(sfn: Harness) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    sfn.task("Loop")(lambda event, context: circular)
    result = sfn.run(single({"Type": "Task", "Resource": "Loop"}), {})
    assert (result.status, result.error) == ("FAILED", "Runtime.MarshalError")


def test_a_marshal_error_can_be_caught(sfn: Harness) -> None:
    sfn.task("Odd")(lambda event, context: b"\x00")
    definition = machine(
        ("T", {"Type": "Task", "Resource": "Odd", "End": True,
               "Catch": [{"ErrorEquals": ["Runtime.MarshalError"], "ResultPath": "$.err", "Next": "Ok"}]}),
        ("Ok", {"Type": "Succeed"}),
    )  # fmt: skip
    result = sfn.run(definition, {"a": 1})
    assert result.output["a"] == 1 and result.output["err"]["Error"] == "Runtime.MarshalError"


def test_a_handler_mutating_its_event_does_not_change_the_state_data(sfn: Harness) -> None:
    @sfn.task("Mutate")
    def mutate(event: Any, context: TaskContext) -> Any:
        event["leaked"] = True
        return "ok"

    given = {"a": 1}
    definition = machine(
        ("T", {"Type": "Task", "Resource": "Mutate", "ResultPath": "$.r", "Next": "Check"}),
        ("Check", {"Type": "Pass", "Parameters": {"input.$": "$$.Execution.Input", "now.$": "$"}, "End": True}),
    )
    result = sfn.run(definition, given)
    assert given == {"a": 1}
    assert result.output == {"input": {"a": 1}, "now": {"a": 1, "r": "ok"}}


def test_a_handler_result_is_passed_on_as_json_with_arrays_and_string_keys(sfn: Harness) -> None:
    sfn.task("Tuple")(lambda event, context: {"pair": (1, 2), 3: "three"})
    definition = machine(
        ("T", {"Type": "Task", "Resource": "Tuple", "Next": "Read"}),
        ("Read", {"Type": "Pass", "Parameters": {"first.$": "$.pair[0]", "all.$": "$"}, "End": True}),
    )
    result = sfn.run(definition, {})
    assert result.output == {"first": 1, "all": {"pair": [1, 2], "3": "three"}}


def test_heartbeat_seconds_path_to_a_non_positive_number_is_a_runtime_error(sfn: Harness) -> None:
    calls: list[Any] = []
    sfn.task("Never")(lambda event, context: calls.append(event))
    result = sfn.run(single({"Type": "Task", "Resource": "Never", "HeartbeatSecondsPath": "$.h"}), {"h": 0})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "HeartbeatSecondsPath" in (result.cause or "")
    assert calls == []


def test_runtime_error_causes_count_history_events_like_aws(sfn: Harness) -> None:
    sfn.task("Echo")(_echo)
    definition = machine(
        ("Call", {"Type": "Task", "Resource": "Echo", "Next": "Look"}),  # events 2-6: entered, 3 task events, exited
        ("Look", {"Type": "Pass", "InputPath": "$.missing", "End": True}),  # entered at #7
    )
    result = sfn.run(definition, {})
    assert (result.cause or "").startswith(
        "An error occurred while executing the state 'Look' (entered at the event id #7)."
    )


def test_a_task_over_its_timeout_fails_with_states_timeout_and_the_handler_is_told(sfn: Harness) -> None:
    stopped = threading.Event()

    @sfn.task("Hang")
    def hang(event: Any, context: TaskContext) -> Any:
        _wait_until_cancelled(context)
        if context.cancelled:
            stopped.set()

    result = sfn.run(machine(("Slow", {"Type": "Task", "Resource": "Hang", "TimeoutSeconds": 1, "End": True})), {})
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert "Slow" in (result.cause or "")
    assert stopped.wait(5)


def test_timeout_seconds_path_reads_the_timeout_from_the_input(sfn: Harness) -> None:
    sfn.task("Hang")(lambda event, context: _wait_until_cancelled(context))
    sfn.task("Quick")(lambda event, context: context.get_remaining_time_in_millis())
    hang = sfn.run(single({"Type": "Task", "Resource": "Hang", "TimeoutSecondsPath": "$.t"}), {"t": 1})
    quick = sfn.run(single({"Type": "Task", "Resource": "Quick", "TimeoutSecondsPath": "$.t"}), {"t": 60})
    assert hang.error == "States.Timeout"
    assert quick.status == "SUCCEEDED" and 50_000 < quick.output <= 60_000


@pytest.mark.parametrize("value", [0, -5, "ten", None], ids=["zero", "negative", "string", "null"])
def test_timeout_seconds_path_to_a_non_positive_number_is_a_runtime_error(sfn: Harness, value: Any) -> None:
    calls: list[Any] = []
    sfn.task("Never")(lambda event, context: calls.append(event))
    result = sfn.run(single({"Type": "Task", "Resource": "Never", "TimeoutSecondsPath": "$.t"}), {"t": value})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "TimeoutSecondsPath" in (result.cause or "")
    assert calls == []


def test_a_handler_that_stops_heartbeating_fails_with_states_heartbeat_timeout(sfn: Harness) -> None:
    sfn.task("Silent")(lambda event, context: _wait_until_cancelled(context))
    definition = single({"Type": "Task", "Resource": "Silent", "HeartbeatSeconds": 1, "TimeoutSeconds": 30})
    result = sfn.run(definition, {})
    assert (result.status, result.error) == ("FAILED", "States.HeartbeatTimeout")


def test_a_handler_that_heartbeats_outlives_its_heartbeat_interval(sfn: Harness) -> None:
    @sfn.task("Chatty")
    def chatty(event: Any, context: TaskContext) -> Any:
        end = time.monotonic() + 1.6
        while time.monotonic() < end:
            context.heartbeat()
            time.sleep(0.1)
        return "alive"

    result = sfn.run(single({"Type": "Task", "Resource": "Chatty", "HeartbeatSeconds": 1}), {})
    assert (result.status, result.output) == ("SUCCEEDED", "alive")


def test_a_task_without_a_registered_handler_fails_at_run_time_listing_the_registered_ones(sfn: Harness) -> None:
    sfn.task("Known")(_echo)
    result = sfn.run(single({"Type": "Task", "Resource": LAMBDA_ARN.format("Unknown")}), {})
    assert (result.status, result.error) == ("FAILED", "States.TaskFailed")
    assert "Unknown" in (result.cause or "") and "Known" in (result.cause or "")


def test_the_registry_lists_sorted_names_and_forgets_unregistered_ones() -> None:
    registry = Registry()
    registry.register("b", _echo)
    registry.register("a", _echo)
    assert registry.names() == ["a", "b"] and list(registry) == ["a", "b"]
    registry.unregister("a")
    registry.unregister("never-registered")
    assert "a" not in registry and "b" in registry


def test_the_registry_looks_up_names_arns_and_qualified_arns() -> None:
    registry = Registry()
    registry.register("Fn", _echo)
    assert registry.lookup("Fn") == ("Fn", _echo)
    assert registry.lookup(LAMBDA_ARN.format("Fn")) == ("Fn", _echo)
    assert registry.lookup(LAMBDA_ARN.format("Fn") + ":live") == ("Fn", _echo)
    assert registry.lookup(LAMBDA_ARN.format("Other")) is None
    assert registry.lookup("arn:aws:lambda:us-east-1:123456789012:layer:Fn") is None


def test_the_task_decorator_registers_into_the_registry_it_is_given() -> None:
    registry = Registry()

    @task("Decorated", registry_=registry)
    def handler(event: Any, context: TaskContext) -> Any:
        return event

    assert registry.lookup("Decorated") == ("Decorated", handler)


def test_check_resources_reports_every_unresolved_task_with_its_location() -> None:
    registry = Registry()
    registry.register("Known", _echo)
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Inner", "States": {"Inner": {"Type": "Task", "Resource": "Ghost", "End": True}}}
                ],
                "Next": "Ok",
            },
            "Ok": {"Type": "Task", "Resource": LAMBDA_ARN.format("Known"), "Next": "Invoke"},
            "Invoke": {"Type": "Task", "Resource": INVOKE, "Parameters": {"FunctionName": "Phantom"}, "Next": "Dyn"},
            "Dyn": {"Type": "Task", "Resource": INVOKE, "Parameters": {"FunctionName.$": "$.f"}, "End": True},
        },
    }  # fmt: skip
    found = check_resources(definition, registry)
    assert {(d.code, d.location) for d in found} == {
        ("UNRESOLVED_RESOURCE", "/States/P/Branches/0/States/Inner/Resource"),
        ("UNRESOLVED_RESOURCE", "/States/Invoke/Resource"),
    }
    for diagnostic in found:
        assert "Known" in diagnostic.message
    assert any("'Phantom'" in d.message and "'Invoke'" in d.message for d in found)

"""The JSONata state runners: every field of every state type, Retry/Catch, the Map hooks, the conformance cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dmap.asl import load
from dmap.asl.model import MapState
from dmap.errors import StatesError
from dmap.interpreter import (
    ExecutionResult,
    FakeClock,
    MapInvocation,
    Registry,
    Runtime,
    TaskContext,
    execute,
    jsonata_flow,
)

CASES = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "cases"


def machine(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", "StartAt": start or next(iter(states)), "States": states}


def run(
    definition: dict[str, Any],
    input: Any = None,
    registry: Registry | None = None,
    clock: FakeClock | None = None,
    **runtime: Any,
) -> ExecutionResult:
    runtime_ = Runtime(registry=registry or Registry(), clock=clock or FakeClock(), **runtime)
    return execute(load(definition), {} if input is None else input, runtime=runtime_)


def handlers(**functions: Any) -> Registry:
    registry = Registry()
    for name, function in functions.items():
        registry.register(name, function)
    return registry


# --- Pass, Succeed, Fail ------------------------------------------------------------------------


def test_pass_output_defaults_to_the_input_and_may_be_any_json_value() -> None:
    assert run(machine({"P": {"Type": "Pass", "End": True}}), {"a": 1}).output == {"a": 1}
    assert run(machine({"P": {"Type": "Pass", "Output": 42, "End": True}}), {"a": 1}).output == 42
    assert run(machine({"P": {"Type": "Pass", "Output": None, "End": True}}), {"a": 1}).output is None
    shaped = {"Type": "Pass", "Output": {"sum": "{% $states.input.a + 1 %}", "lit": "x"}, "End": True}
    assert run(machine({"P": shaped}), {"a": 1}).output == {"sum": 2, "lit": "x"}


def test_succeed_output_is_evaluated() -> None:
    definition = machine({"S": {"Type": "Succeed", "Output": {"name": "{% $states.input.customer.name %}"}}})
    assert run(definition, {"customer": {"name": "Martha"}}).output == {"name": "Martha"}


def test_fail_error_and_cause_may_be_expressions() -> None:
    definition = machine({"F": {"Type": "Fail", "Error": "{% $states.input.e %}", "Cause": "{% 'because ' & $x %}"}})
    definition["States"] = {
        "Init": {"Type": "Pass", "Assign": {"x": "reasons"}, "Next": "F"},
        **definition["States"],
    }
    definition["StartAt"] = "Init"
    result = run(definition, {"e": "Oops"})
    assert (result.status, result.error, result.cause) == ("FAILED", "Oops", "because reasons")


def test_a_fail_field_that_is_not_a_string_is_a_query_evaluation_error() -> None:
    result = run(machine({"F": {"Type": "Fail", "Error": "{% 42 %}"}}))
    assert result.error == "States.QueryEvaluationError"
    assert result.cause is not None and "Expected 'string', but was 'number' for value: 42" in result.cause


def test_an_undefined_output_fails_the_state_with_aws_prefix() -> None:
    result = run(machine({"P": {"Type": "Pass", "Output": {"v": "{% $states.input.absent %}"}, "End": True}}))
    assert result.error == "States.QueryEvaluationError"
    assert result.cause == (
        "An error occurred while executing the state 'P' (entered at the event id #2). "
        "The JSONata expression '$states.input.absent' specified for the field 'Output/v' returned nothing (undefined)."
    )


# --- Task ---------------------------------------------------------------------------------------


def test_task_gets_arguments_and_output_defaults_to_the_result() -> None:
    seen: list[Any] = []

    def double(event: Any, context: TaskContext) -> Any:
        seen.append(event)
        return {"doubled": event["n"] * 2}

    task = {"Type": "Task", "Resource": "double", "Arguments": {"n": "{% $states.input.value %}"}, "End": True}
    result = run(machine({"T": task}), {"value": 21}, handlers(double=double))
    assert seen == [{"n": 21}]
    assert result.output == {"doubled": 42}


def test_task_without_arguments_receives_the_state_input() -> None:
    task = {"Type": "Task", "Resource": "echo", "Output": "{% $states.result.got %}", "End": True}
    result = run(machine({"T": task}), {"k": "v"}, handlers(echo=lambda event, context: {"got": event}))
    assert result.output == {"k": "v"}


def test_task_output_and_assign_see_the_result_and_the_input() -> None:
    task = {
        "Type": "Task",
        "Resource": "price",
        "Output": {"total": "{% $states.result.price * $states.input.qty %}"},
        "Assign": {"product": "{% $states.input.product %}", "price": "{% $states.result.price %}"},
        "Next": "Show",
    }
    show = {"Type": "Pass", "Output": {"product": "{% $product %}", "price": "{% $price %}"}, "End": True}
    result = run(
        machine({"T": task, "Show": show}), {"product": "p1", "qty": 3}, handlers(price=lambda e, c: {"price": 5})
    )
    assert result.output == {"product": "p1", "price": 5}


def test_task_timeout_seconds_may_be_an_expression() -> None:
    remaining: list[int] = []

    def measure(event: Any, context: TaskContext) -> int:
        remaining.append(context.get_remaining_time_in_millis())
        return 1

    task = {
        "Type": "Task",
        "Resource": "measure",
        "TimeoutSeconds": "{% $states.input.t %}",
        "HeartbeatSeconds": "{% $states.input.t - 1 %}",
        "End": True,
    }
    assert run(machine({"T": task}), {"t": 5}, handlers(measure=measure)).status == "SUCCEEDED"
    assert 0 < remaining[0] <= 5000


def test_a_timeout_expression_of_the_wrong_type_or_range_fails() -> None:
    task = {"Type": "Task", "Resource": "one", "TimeoutSeconds": "{% $states.input.t %}", "End": True}
    registry = handlers(one=lambda e, c: 1)
    wrong_type = run(machine({"T": task}), {"t": "soon"}, registry)
    assert wrong_type.error == "States.QueryEvaluationError"
    assert wrong_type.cause is not None and "Expected 'integer', but was 'string'" in wrong_type.cause
    assert run(machine({"T": task}), {"t": 0}, registry).error == "States.QueryEvaluationError"


def test_a_query_evaluation_error_in_a_task_can_be_retried_and_caught() -> None:
    calls: list[int] = []

    def count(event: Any, context: TaskContext) -> dict[str, Any]:
        calls.append(1)
        return {}

    task = {
        "Type": "Task",
        "Resource": "count",
        "Output": "{% $states.result.missing %}",
        "Retry": [{"ErrorEquals": ["States.QueryEvaluationError"], "MaxAttempts": 2, "IntervalSeconds": 1}],
        "Catch": [
            {
                "ErrorEquals": ["States.ALL"],
                "Output": {"error": "{% $states.errorOutput.Error %}", "input": "{% $states.input %}"},
                "Assign": {"failed": True},
                "Next": "Handled",
            }
        ],
        "End": True,
    }
    handled = {"Type": "Pass", "Output": {"out": "{% $states.input %}", "failed": "{% $failed %}"}, "End": True}
    clock = FakeClock()
    result = run(machine({"T": task, "Handled": handled}), {"x": 1}, handlers(count=count), clock)
    assert len(calls) == 3
    assert clock.sleeps == [1.0, 2.0]
    assert result.output == {"out": {"error": "States.QueryEvaluationError", "input": {"x": 1}}, "failed": True}


def test_catch_output_defaults_to_the_error_output() -> None:
    def boom(event: Any, context: TaskContext) -> Any:
        raise ValueError("bad")

    task = {"Type": "Task", "Resource": "boom", "Catch": [{"ErrorEquals": ["ValueError"], "Next": "Done"}], "End": True}
    result = run(machine({"T": task, "Done": {"Type": "Succeed"}}), {}, handlers(boom=boom))
    assert result.output["Error"] == "ValueError"
    assert json.loads(result.output["Cause"])["errorMessage"] == "bad"


# --- Choice -------------------------------------------------------------------------------------


def choice_machine() -> dict[str, Any]:
    return machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Condition": "{% $states.input.n > 10 %}",
                        "Assign": {"size": "big"},
                        "Output": {"rule": 0},
                        "Next": "End",
                    },
                    {"Condition": "{% $states.input.n > 5 %}", "Next": "End"},
                ],
                "Default": "End",
                "Assign": {"size": "small"},
                "Output": {"default": "{% $states.input.n %}"},
            },
            "End": {"Type": "Pass", "Output": {"in": "{% $states.input %}", "size": "{% $size %}"}, "End": True},
        }
    )


def test_choice_takes_the_first_true_condition_with_its_own_assign_and_output() -> None:
    assert run(choice_machine(), {"n": 11}).output == {"in": {"rule": 0}, "size": "big"}


def test_choice_rule_without_output_passes_the_input_and_skips_the_state_level_fields() -> None:
    result = run(choice_machine(), {"n": 6})
    assert (
        result.error == "States.QueryEvaluationError"
    )  # $size was never assigned: the state-level Assign is Default's
    assert result.cause is not None and "'$size' specified for the field 'Output/size'" in result.cause


def test_choice_default_uses_the_state_level_assign_and_output() -> None:
    assert run(choice_machine(), {"n": 1}).output == {"in": {"default": 1}, "size": "small"}


def test_choice_condition_must_be_boolean_and_a_missing_default_fails() -> None:
    not_boolean = machine(
        {
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% 1 %}", "Next": "P"}]},
            "P": {"Type": "Pass", "End": True},
        }
    )
    result = run(not_boolean)
    assert result.cause is not None and result.cause.endswith(
        "The JSONata expression '1' specified for the field 'Choices[0]/Condition' returned an unexpected result type. "
        "Expected 'boolean', but was 'number' for value: 1"
    )
    no_match = machine(
        {"C": {"Type": "Choice", "Choices": [{"Condition": False, "Next": "P"}]}, "P": {"Type": "Pass", "End": True}}
    )
    assert run(no_match).error == "States.NoChoiceMatched"


# --- Wait ---------------------------------------------------------------------------------------


def test_wait_seconds_and_timestamp_may_be_expressions() -> None:
    clock = FakeClock()
    seconds = {"Type": "Wait", "Seconds": "{% $states.input.s %}", "Output": "{% $states.input.s * 2 %}", "End": True}
    assert run(machine({"W": seconds}), {"s": 7}, clock=clock).output == 14
    assert clock.sleeps == [7.0]
    clock = FakeClock()
    until = {"Type": "Wait", "Timestamp": "{% $states.input.at %}", "End": True}
    assert run(machine({"W": until}), {"at": "2024-01-01T00:00:30Z"}, clock=clock).output == {
        "at": "2024-01-01T00:00:30Z"
    }
    assert clock.sleeps == [30.0]


def test_wait_rejects_a_negative_number_or_a_bad_timestamp() -> None:
    seconds = {"Type": "Wait", "Seconds": "{% -1 %}", "End": True}
    assert run(machine({"W": seconds})).error == "States.QueryEvaluationError"
    until = {"Type": "Wait", "Timestamp": "{% 'tomorrow' %}", "End": True}
    result = run(machine({"W": until}))
    assert result.error == "States.QueryEvaluationError"
    assert result.cause is not None and "not a valid RFC 3339 timestamp" in result.cause


# --- Parallel and Map ---------------------------------------------------------------------------


def test_parallel_runs_branches_on_the_arguments_and_outputs_their_results() -> None:
    def branch(name: str, out: Any) -> dict[str, Any]:
        return {"StartAt": name, "States": {name: {"Type": "Pass", "Output": out, "End": True}}}

    parallel = {
        "Type": "Parallel",
        "Arguments": {"id": "{% $states.input.orderId %}"},
        "Branches": [branch("A", {"order": "{% $states.input.id %}"}), branch("B", {"customer": "C-100"})],
        "Output": "{% $merge($states.result) %}",
        "End": True,
    }
    assert run(machine({"P": parallel}), {"orderId": "12345"}).output == {"order": "12345", "customer": "C-100"}


def map_state(**fields: Any) -> dict[str, Any]:
    processor = {
        "ProcessorConfig": {"Mode": "INLINE"},
        "StartAt": "I",
        "States": {
            "I": {"Type": "Pass", "Output": {"total": "{% $states.input.price * $states.input.qty %}"}, "End": True}
        },
    }
    return {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}


def distributed_map(**fields: Any) -> MapState:
    state = map_state(**fields)
    state["ItemProcessor"]["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    loaded = load(machine({"M": state})).states["M"]
    assert isinstance(loaded, MapState)
    return loaded


def test_map_items_expression_and_output() -> None:
    state = map_state(Items="{% $states.input.items %}", Output="{% $sum($states.result.total) %}")
    result = run(machine({"M": state}), {"items": [{"price": 2, "qty": 3}, {"price": 1, "qty": 4}]})
    assert result.output == 10


def test_map_items_may_be_a_literal_array_with_expressions() -> None:
    state = map_state(Items=[{"price": 1, "qty": "{% $states.input.q %}"}, {"price": 5, "qty": 1}], MaxConcurrency=1)
    assert run(machine({"M": state}), {"q": 3}).output == [{"total": 3}, {"total": 5}]


def test_map_item_selector_sees_the_item_index_value_and_the_input() -> None:
    state = map_state(
        ItemSelector={
            "price": "{% $states.context.Map.Item.Value %}",
            "qty": "{% $states.context.Map.Item.Index + $states.input.base %}",
        },
        Items="{% $states.input.prices %}",
        MaxConcurrency="{% $states.input.limit %}",
    )
    result = run(machine({"M": state}), {"prices": [10, 20], "base": 1, "limit": 2})
    assert result.output == [{"total": 10}, {"total": 40}]


def test_map_items_that_are_not_an_array_fail_as_aws_records() -> None:
    result = run(machine({"M": map_state(Items="{% $states.input.o %}")}), {"o": {"foo": "bar"}})
    assert result.error == "States.QueryEvaluationError"
    assert result.cause == (
        "An error occurred while executing the state 'M' (entered at the event id #2). "
        "The JSONata expression '$states.input.o' specified for the field 'Items' returned an unexpected result type. "
        "Expected 'array', but was 'object' for value: {\"foo\":\"bar\"}"
    )
    result = run(machine({"M": map_state()}), {"foo": "bar"})
    assert result.cause is not None and result.cause.endswith('Map state input must be an array but was: {"foo":"bar"}')


def test_a_distributed_map_is_handed_to_the_coordinator_with_the_raw_input() -> None:
    seen: list[MapInvocation] = []

    def coordinator(invocation: MapInvocation) -> Any:
        seen.append(invocation)
        return [1, 2]

    state = map_state(Output="{% $count($states.result) %}")
    state["ItemProcessor"]["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    result = run(machine({"M": state}), {"items": [1, 2]}, distributed_map=coordinator)
    assert result.output == 2
    assert seen[0].language == "JSONata" and seen[0].input == {"items": [1, 2]} and seen[0].state_name == "M"


def test_the_coordinator_hooks_evaluate_items_selector_and_numeric_fields() -> None:
    state = distributed_map(
        Items="{% $states.input.rows %}",
        ItemSelector={
            "row": "{% $states.context.Map.Item.Value %}",
            "key": "{% $states.context.Map.Item.Key %}",
            "src": "{% $states.context.Map.Item.Source %}",
            "v": "{% $v %}",
        },
        MaxConcurrency="{% $states.input.c %}",
        ToleratedFailureCount="{% $states.input.c * 2 %}",
        ToleratedFailurePercentage="{% 12.5 %}",
    )
    data, context, variables = {"rows": ["a", "b"], "c": 3}, {"Execution": {}}, {"v": 9}
    assert jsonata_flow.map_items(state, data, context, variables) == ["a", "b"]
    selected = jsonata_flow.select_item(state, data, context, variables, 4, "b", "s3://bucket/key", "k")
    assert selected == {"row": "b", "key": "k", "src": "s3://bucket/key", "v": 9}
    assert jsonata_flow.max_concurrency(state, data, context, variables) == 3
    assert jsonata_flow.tolerated_failure_count(state, data, context, variables) == 6
    assert jsonata_flow.tolerated_failure_percentage(state, data, context, variables) == 12.5
    assert jsonata_flow.evaluate_field(
        {"Bucket": "{% $states.input.c & '' %}"}, "ItemReader/Arguments", data, context, variables
    ) == {"Bucket": "3"}


def test_without_an_item_selector_the_item_is_passed_unchanged() -> None:
    state = distributed_map()
    assert jsonata_flow.select_item(state, [1], {}, {}, 0, {"x": 1}, "STATE_DATA", None) == {"x": 1}
    assert jsonata_flow.max_concurrency(state, [1], {}, {}) == 0
    assert jsonata_flow.tolerated_failure_percentage(state, [1], {}, {}) == 0.0


def test_negative_or_out_of_range_map_numbers_fail() -> None:
    state = distributed_map(MaxConcurrency="{% -1 %}", ToleratedFailurePercentage="{% 101 %}")
    with pytest.raises(StatesError, match="MaxConcurrency cannot be negative"):
        jsonata_flow.max_concurrency(state, [], {}, {})
    with pytest.raises(StatesError, match="between 0 and 100"):
        jsonata_flow.tolerated_failure_percentage(state, [], {}, {})


# --- the recorded AWS cases ---------------------------------------------------------------------


def _conformance() -> list[Any]:
    if not CASES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="conformance corpus absent"))]
    cases = [json.loads(p.read_text()) for p in sorted(CASES.glob("*.json"))]
    return [pytest.param(c, id=c["id"]) for c in cases if {"jsonata", "jsonata_ql"} & set(c["flags"])]


@pytest.mark.parametrize("case", _conformance())
def test_recorded_aws_jsonata_case(case: dict[str, Any]) -> None:
    from tests.conformance.runner import same

    result = run(case["definition"], case["input"])
    expected = case["expected"]
    assert result.status == expected["status"]
    if expected["status"] == "SUCCEEDED":
        assert same(result.output, expected.get("output"))
    else:
        assert (result.error or None) == (expected.get("error") or None)
        assert (result.cause or None) == (expected.get("cause") or None)

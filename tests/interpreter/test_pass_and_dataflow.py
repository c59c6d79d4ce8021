"""Pass and Succeed states, the JSONPath data flow (InputPath, Parameters, ResultPath, OutputPath) and ``$$``.

Reference: aws-distributed-map.md §6.3 — InputPath ``null`` gives ``{}``, ResultPath ``null`` keeps
the input and creates intervening objects, OutputPath ``null`` gives ``{}``; a path that matches
nothing is ``States.Runtime``.
"""

from __future__ import annotations

import copy
from typing import Any

from dmap.interpreter import ExecutionInfo

from .support import Harness, machine, single


def test_a_pass_state_without_fields_passes_its_input_through(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass"}), {"a": [1, 2]})
    assert (result.status, result.output) == ("SUCCEEDED", {"a": [1, 2]})


def test_an_execution_without_input_starts_from_an_empty_object(sfn: Harness) -> None:
    assert sfn.run(single({"Type": "Pass"})).output == {}


def test_a_pass_result_replaces_the_input_by_default(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": {"x": 1}}), {"a": 1})
    assert result.output == {"x": 1}


def test_a_pass_result_of_null_is_a_result(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": None}), {"a": 1})
    assert result.status == "SUCCEEDED"
    assert result.output is None


def test_a_pass_result_path_places_the_result_inside_the_input(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": "r", "ResultPath": "$.out"}), {"a": 1})
    assert result.output == {"a": 1, "out": "r"}


def test_a_result_path_creates_the_missing_intervening_objects(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": 7, "ResultPath": "$.a.b.c"}), {"a": {"keep": True}})
    assert result.output == {"a": {"keep": True, "b": {"c": 7}}}


def test_a_result_path_overwrites_an_existing_field(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": 2, "ResultPath": "$.n"}), {"n": 1, "m": 0})
    assert result.output == {"n": 2, "m": 0}


def test_a_null_result_path_discards_the_result_and_keeps_the_input(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": {"x": 1}, "ResultPath": None}), {"a": 1})
    assert result.output == {"a": 1}


def test_a_result_path_through_a_scalar_is_a_runtime_error(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": 1, "ResultPath": "$.a.b"}), {"a": "text"})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "$.a.b" in (result.cause or "")


def test_a_null_input_path_gives_the_state_an_empty_object(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "InputPath": None}), {"a": 1})
    assert result.output == {}


def test_a_null_output_path_gives_an_empty_object(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": {"x": 1}, "OutputPath": None}), {"a": 1})
    assert result.output == {}


def test_input_path_selects_and_output_path_narrows(sfn: Harness) -> None:
    definition = single(
        {"Type": "Pass", "InputPath": "$.order", "Parameters": {"id.$": "$.id", "k": "v"}, "OutputPath": "$.id"}
    )
    assert sfn.run(definition, {"order": {"id": 42}}).output == 42


def test_output_path_applies_after_result_path(sfn: Harness) -> None:
    definition = single({"Type": "Pass", "Result": {"deep": 3}, "ResultPath": "$.r", "OutputPath": "$.r.deep"})
    assert sfn.run(definition, {"a": 1}).output == 3


def test_an_input_path_that_matches_nothing_is_a_runtime_error_naming_the_path(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "InputPath": "$.missing"}), {"a": 1})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "$.missing" in (result.cause or "")
    assert "'S'" in (result.cause or "")


def test_parameters_build_a_payload_from_paths_intrinsics_and_constants(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Pass",
            "Parameters": {
                "constant": {"nested": [1, 2]},
                "picked.$": "$.a",
                "joined.$": "States.Format('{}-{}', $.a, $.b)",
                "everything.$": "$",
            },
        }
    )
    result = sfn.run(definition, {"a": "x", "b": 2})
    assert result.output == {
        "constant": {"nested": [1, 2]},
        "picked": "x",
        "joined": "x-2",
        "everything": {"a": "x", "b": 2},
    }


def test_pass_result_wins_over_parameters(sfn: Harness) -> None:
    definition = single({"Type": "Pass", "Parameters": {"p": 1}, "Result": {"r": 1}})
    assert sfn.run(definition, {}).output == {"r": 1}


def test_states_run_in_next_order_and_each_sees_the_previous_output(sfn: Harness) -> None:
    definition = machine(
        ("First", {"Type": "Pass", "Result": 1, "ResultPath": "$.first", "Next": "Second"}),
        ("Second", {"Type": "Pass", "Parameters": {"seen.$": "$.first"}, "ResultPath": "$.second", "End": True}),
    )
    assert sfn.run(definition, {}).output == {"first": 1, "second": {"seen": 1}}


def test_the_caller_s_input_is_never_modified(sfn: Harness) -> None:
    given = {"a": {"b": 1}}
    snapshot = copy.deepcopy(given)
    definition = machine(
        ("Add", {"Type": "Pass", "Result": 2, "ResultPath": "$.a.c", "Next": "Check"}),
        ("Check", {"Type": "Pass", "Parameters": {"original.$": "$$.Execution.Input", "now.$": "$"}, "End": True}),
    )
    result = sfn.run(definition, given)
    assert given == snapshot
    assert result.output == {"original": snapshot, "now": {"a": {"b": 1, "c": 2}}}


def test_succeed_applies_input_path_then_output_path(sfn: Harness) -> None:
    definition = single({"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"})
    assert sfn.run(definition, {"a": {"b": "done"}, "z": 0}).output == "done"


def test_succeed_ends_the_workflow_even_when_other_states_follow_in_the_definition(sfn: Harness) -> None:
    definition = machine(
        ("Start", {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Done"}],
                   "Default": "Later"}),
        ("Done", {"Type": "Succeed"}),
        ("Later", {"Type": "Pass", "Result": "later", "End": True}),
    )  # fmt: skip
    assert sfn.run(definition, {"go": True}).output == {"go": True}
    assert sfn.run(definition, {"go": False}).output == "later"


def _context(sfn: Harness, info: ExecutionInfo | None = None, input: Any = None) -> Any:
    definition = machine(("Look", {"Type": "Pass", "Parameters": {"ctx.$": "$$"}, "OutputPath": "$.ctx", "End": True}))
    result = sfn.run(definition, input if input is not None else {"in": 1}, info=info)
    assert result.status == "SUCCEEDED", result
    return result.output


def test_the_context_object_shows_the_execution_given_by_the_host(sfn: Harness) -> None:
    info = ExecutionInfo(
        name="run-7", state_machine_name="orders", input={"in": 1}, start_time="2024-05-06T07:08:09.010Z"
    )
    ctx = _context(sfn, info)
    assert ctx["Execution"]["Name"] == "run-7"
    assert ctx["Execution"]["Id"].endswith(":execution:orders:run-7")
    assert ctx["Execution"]["Id"].startswith("arn:aws:states:")
    assert ctx["Execution"]["Input"] == {"in": 1}
    assert ctx["Execution"]["StartTime"] == "2024-05-06T07:08:09.010Z"
    assert ctx["StateMachine"]["Name"] == "orders"
    assert ctx["StateMachine"]["Id"].endswith(":stateMachine:orders")
    assert ctx["State"]["Name"] == "Look"
    assert ctx["State"]["RetryCount"] == 0


def test_the_context_object_has_a_generated_execution_when_none_is_given(sfn: Harness) -> None:
    ctx = _context(sfn, input={"x": [1]})
    assert ctx["Execution"]["Name"]
    assert ctx["Execution"]["Id"].endswith(":" + ctx["Execution"]["Name"])
    assert ctx["Execution"]["Input"] == {"x": [1]}
    assert ctx["Execution"]["StartTime"].endswith("Z")


def test_the_context_state_name_follows_the_current_state(sfn: Harness) -> None:
    definition = machine(
        ("One", {"Type": "Pass", "Parameters": {"n.$": "$$.State.Name"}, "ResultPath": "$.one", "Next": "Two"}),
        ("Two", {"Type": "Pass", "Parameters": {"n.$": "$$.State.Name"}, "ResultPath": "$.two", "End": True}),
    )
    assert sfn.run(definition, {}).output == {"one": {"n": "One"}, "two": {"n": "Two"}}


def test_an_output_path_on_the_context_object_reads_the_context(sfn: Harness) -> None:
    info = ExecutionInfo(name="ctx-out", state_machine_name="sm", input={})
    result = sfn.run(single({"Type": "Pass", "OutputPath": "$$.Execution.Name"}), {}, info=info)
    assert result.output == "ctx-out"

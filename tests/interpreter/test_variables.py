"""Workflow variables: Assign evaluation order, scopes of Parallel branches, inline Map iterations and Catch, limits."""

from __future__ import annotations

from typing import Any

import pytest

from dmap.asl import load
from dmap.errors import StatesError
from dmap.interpreter import ExecutionResult, FakeClock, MapInvocation, Registry, Runtime, TaskContext, execute
from dmap.interpreter.variables import VARIABLE_LIMIT, VARIABLES_TOTAL_LIMIT, check_assignments


def run(
    definition: dict[str, Any], input: Any = None, registry: Registry | None = None, **runtime: Any
) -> ExecutionResult:
    runtime_ = Runtime(registry=registry or Registry(), clock=FakeClock(), **runtime)
    return execute(load(definition), {} if input is None else input, runtime=runtime_)


def jsonata(states: dict[str, Any], start: str) -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", "StartAt": start, "States": states}


def test_assign_uses_the_values_at_state_entry_and_applies_them_afterwards() -> None:
    definition = jsonata(
        {
            "Init": {"Type": "Pass", "Assign": {"x": 3, "a": 6}, "Next": "Swap"},
            "Swap": {
                "Type": "Pass",
                "Assign": {"x": "{% $a %}", "nextX": "{% $x %}"},
                "Output": {"seenX": "{% $x %}"},
                "Next": "Show",
            },
            "Show": {"Type": "Pass", "Output": {"x": "{% $x %}", "nextX": "{% $nextX %}", "in": "{% $states.input %}"}},
        },
        "Init",
    )
    definition["States"]["Show"]["End"] = True
    assert run(definition).output == {"x": 6, "nextX": 3, "in": {"seenX": 3}}


def test_a_variable_assigned_in_a_state_is_not_visible_in_that_state() -> None:
    definition = jsonata({"P": {"Type": "Pass", "Assign": {"v": 1}, "Output": "{% $v %}", "End": True}}, "P")
    result = run(definition)
    assert result.error == "States.QueryEvaluationError"
    assert result.cause is not None and "returned nothing (undefined)" in result.cause


def test_assigned_null_is_a_value() -> None:
    definition = jsonata(
        {
            "A": {"Type": "Pass", "Assign": {"v": None}, "Next": "B"},
            "B": {"Type": "Pass", "Output": {"v": "{% $v %}", "exists": "{% $exists($v) %}"}, "End": True},
        },
        "A",
    )
    assert run(definition).output == {"v": None, "exists": True}


def parallel_scope(language: str) -> dict[str, Any]:
    """Each branch reads the outer $outer and assigns its own $inner; the state after reads what it can."""
    if language == "JSONata":
        inner = {"Type": "Pass", "Assign": {"inner": "{% $outer & '-branch' %}"}}
        report = {"Type": "Pass", "Output": "{% $inner %}", "End": True}
        after = {"Type": "Pass", "Output": {"results": "{% $states.input %}", "outer": "{% $outer %}"}, "End": True}
        init = {"Type": "Pass", "Assign": {"outer": "o"}, "Next": "Par"}
    else:
        inner = {"Type": "Pass", "Assign": {"inner.$": "States.Format('{}-branch', $outer)"}}
        report = {"Type": "Pass", "Parameters": {"v.$": "$inner"}, "OutputPath": "$.v", "End": True}
        after = {"Type": "Pass", "Parameters": {"results.$": "$", "outer.$": "$outer"}, "End": True}
        init = {"Type": "Pass", "Assign": {"outer": "o"}, "Next": "Par"}

    def branch(suffix: str) -> dict[str, Any]:
        return {
            "StartAt": f"Set{suffix}",
            "States": {
                f"Set{suffix}": {**inner, "Next": f"Report{suffix}"},
                f"Report{suffix}": dict(report),
            },
        }

    return {
        "QueryLanguage": language,
        "StartAt": "Init",
        "States": {
            "Init": init,
            "Par": {"Type": "Parallel", "Branches": [branch("A"), branch("B")], "Next": "After"},
            "After": after,
        },
    }


@pytest.mark.parametrize("language", ["JSONata", "JSONPath"])
def test_parallel_branches_read_outer_variables_and_keep_their_own_assignments(language: str) -> None:
    result = run(parallel_scope(language))
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"results": ["o-branch", "o-branch"], "outer": "o"}


def test_variables_assigned_in_a_branch_do_not_leak_to_the_outer_scope() -> None:
    definition = parallel_scope("JSONata")
    definition["States"]["After"]["Output"] = "{% $inner %}"
    result = run(definition)
    assert result.error == "States.QueryEvaluationError"
    assert result.cause is not None and "'$inner'" in result.cause


def test_inline_map_iterations_have_private_scopes_that_start_from_the_outer_one() -> None:
    processor = {
        "ProcessorConfig": {"Mode": "INLINE"},
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"mine": "{% $states.input * $factor %}"}, "Next": "Report"},
            "Report": {"Type": "Pass", "Output": "{% $mine %}", "End": True},
        },
    }
    definition = jsonata(
        {
            "Init": {"Type": "Pass", "Assign": {"factor": 10}, "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": processor, "Next": "After"},
            "After": {
                "Type": "Pass",
                "Output": {"results": "{% $states.input %}", "leaked": "{% $exists($mine) %}"},
                "End": True,
            },
        },
        "Init",
    )
    assert run(definition, [1, 2, 3]).output == {"results": [10, 20, 30], "leaked": False}
    definition["States"]["After"]["Output"] = "{% $mine %}"
    assert run(definition, [1, 2, 3]).error == "States.QueryEvaluationError"


def test_an_iteration_reassigning_an_outer_name_changes_only_its_own_copy() -> None:
    processor = {
        "StartAt": "Bump",
        "States": {
            "Bump": {"Type": "Pass", "Assign": {"count": "{% $count + $states.input %}"}, "Next": "Read"},
            "Read": {"Type": "Pass", "Output": "{% $count %}", "End": True},
        },
    }
    definition = jsonata(
        {
            "Init": {"Type": "Pass", "Assign": {"count": 100}, "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": processor, "Next": "After"},
            "After": {"Type": "Pass", "Output": {"each": "{% $states.input %}", "count": "{% $count %}"}, "End": True},
        },
        "Init",
    )
    assert run(definition, [1, 2]).output == {"each": [101, 102], "count": 100}


def test_catch_assign_writes_the_scope_of_the_state_that_caught() -> None:
    def boom(event: Any, context: TaskContext) -> Any:
        raise RuntimeError("no")

    registry = Registry()
    registry.register("boom", boom)
    definition = jsonata(
        {
            "T": {
                "Type": "Task",
                "Resource": "boom",
                "Assign": {"never": 1},
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "Assign": {"why": "{% $states.errorOutput.Error %}"},
                        "Next": "After",
                    }
                ],
                "End": True,
            },
            "After": {"Type": "Pass", "Output": {"why": "{% $why %}", "never": "{% $exists($never) %}"}, "End": True},
        },
        "T",
    )
    # The Catch's Assign is applied; the failed state's own Assign is not.
    assert run(definition, {}, registry).output == {"why": "RuntimeError", "never": False}


def test_a_distributed_map_receives_a_copy_of_the_variables_for_its_item_selector() -> None:
    seen: list[MapInvocation] = []

    def coordinator(invocation: MapInvocation) -> Any:
        seen.append(invocation)
        invocation.variables["written"] = True  # a coordinator must not be able to change the parent scope
        return []

    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "I",
        "States": {"I": {"Type": "Pass", "End": True}},
    }
    definition = jsonata(
        {
            "Init": {"Type": "Pass", "Assign": {"v": 1}, "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": processor, "Next": "After"},
            "After": {"Type": "Pass", "Output": "{% $exists($written) %}", "End": True},
        },
        "Init",
    )
    assert run(definition, [1], distributed_map=coordinator).output is False
    assert seen[0].variables == {"v": 1, "written": True}


# --- limits -------------------------------------------------------------------------------------


def test_a_variable_over_256_kib_is_a_data_limit_error() -> None:
    big = "x" * VARIABLE_LIMIT
    with pytest.raises(StatesError) as info:
        check_assignments({"big": big}, {}, "S")
    assert info.value.name == "States.DataLimitExceeded"
    assert "'S'" in info.value.cause and "the variable 'big'" in info.value.cause


def test_one_assign_over_256_kib_in_total_is_a_data_limit_error() -> None:
    half = "x" * (VARIABLE_LIMIT // 2)
    with pytest.raises(StatesError, match="the variables of one Assign"):
        check_assignments({"a": half, "b": half}, {}, "S")
    check_assignments({"a": half}, {}, "S")  # one of them fits


def test_all_stored_variables_over_10_mib_is_a_data_limit_error() -> None:
    chunk = "x" * (VARIABLE_LIMIT - 10)
    stored = {f"v{i}": chunk for i in range(VARIABLES_TOTAL_LIMIT // VARIABLE_LIMIT)}
    with pytest.raises(StatesError, match="all stored variables"):
        check_assignments({"one_more": chunk}, stored, "S")
    check_assignments({"v0": chunk}, stored, "S")  # re-assigning an existing name does not grow the total


def test_an_oversized_assign_fails_the_execution_and_is_not_caught_by_states_all() -> None:
    definition = jsonata(
        {
            "P": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}}],
                "Assign": {"big": "{% $pad('', 300000, 'x') %}"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
        "P",
    )
    result = run(definition)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")

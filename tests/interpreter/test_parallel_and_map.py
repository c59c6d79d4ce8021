"""Parallel states and inline Map states.

AWS (aws-distributed-map.md §3, §6.2): a Parallel's output is its branches' outputs in branch
order; a failing branch fails the state with that branch's error; inline Map iterates ItemsPath's
array (an object as ``{"Key", "Value"}`` pairs), ItemSelector sees ``$$.Map.Item.Index``/``Value``
and ``$`` = the Map's input, and the output array follows item order.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dmap.interpreter import TaskContext

from .support import Harness, machine, single


def _branch(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"StartAt": states[0][0], "States": dict(states)}


def _processor(state: dict[str, Any]) -> dict[str, Any]:
    return _branch(("Step", {**state, "End": True} if state["Type"] not in ("Succeed", "Fail") else state))


def test_parallel_runs_every_branch_on_the_same_input_and_orders_outputs_like_the_branches(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Parallel",
            "Branches": [
                _branch(("A", {"Type": "Pass", "Parameters": {"a.$": "$.x"}, "End": True})),
                _branch(("B", {"Type": "Pass", "Result": "b", "End": True})),
                _branch(("C", {"Type": "Pass", "OutputPath": "$.x", "End": True})),
            ],
        }
    )
    assert sfn.run(definition, {"x": 1}).output == [{"a": 1}, "b", 1]


def test_parallel_outputs_keep_branch_order_even_when_later_branches_finish_first(sfn: Harness) -> None:
    second_done = threading.Event()

    @sfn.task("First")
    def first(event: Any, context: TaskContext) -> Any:
        assert second_done.wait(5), "branches did not run concurrently"
        return "first"

    @sfn.task("Second")
    def second(event: Any, context: TaskContext) -> Any:
        second_done.set()
        return "second"

    definition = single(
        {
            "Type": "Parallel",
            "Branches": [
                _branch(("F", {"Type": "Task", "Resource": "First", "End": True})),
                _branch(("Sec", {"Type": "Task", "Resource": "Second", "End": True})),
            ],
        }
    )
    result = sfn.run(definition, {})
    assert (result.status, result.output) == ("SUCCEEDED", ["first", "second"])


def test_parallel_applies_parameters_result_selector_and_result_path(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Parallel",
            "Parameters": {"v.$": "$.value"},
            "Branches": [
                _branch(("A", {"Type": "Pass", "End": True})),
                _branch(("B", {"Type": "Pass", "Result": 2, "End": True})),
            ],
            "ResultSelector": {"first.$": "$[0].v", "second.$": "$[1]"},
            "ResultPath": "$.results",
        }
    )
    assert sfn.run(definition, {"value": 1}).output == {"value": 1, "results": {"first": 1, "second": 2}}


def test_a_failing_branch_fails_the_parallel_with_that_branch_s_error(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Parallel",
            "Branches": [
                _branch(("Ok", {"Type": "Pass", "End": True})),
                _branch(("Bad", {"Type": "Fail", "Error": "Branch.Broke", "Cause": "branch two"})),
            ],
        }
    )
    result = sfn.run(definition, {})
    assert (result.status, result.error, result.cause) == ("FAILED", "Branch.Broke", "branch two")


def test_a_failed_branch_can_be_caught_on_the_parallel(sfn: Harness) -> None:
    definition = machine(
        ("P", {"Type": "Parallel", "Next": "Done", "ResultPath": "$.p",
               "Branches": [_branch(("Bad", {"Type": "Fail", "Error": "Branch.Broke", "Cause": "why"}))],
               "Catch": [{"ErrorEquals": ["Branch.Broke"], "ResultPath": "$.error", "Next": "Handled"}]}),
        ("Done", {"Type": "Succeed"}),
        ("Handled", {"Type": "Pass", "End": True}),
    )  # fmt: skip
    result = sfn.run(definition, {"in": 1})
    assert result.output == {"in": 1, "error": {"Error": "Branch.Broke", "Cause": "why"}}


def test_a_failed_branch_stops_its_sibling_before_its_next_state(sfn: Harness) -> None:
    calls: list[str] = []
    started = threading.Event()

    @sfn.task("Slow")
    def slow(event: Any, context: TaskContext) -> Any:
        started.set()
        time.sleep(0.2)
        calls.append("slow")

    @sfn.task("Boom")
    def boom(event: Any, context: TaskContext) -> Any:
        started.wait(5)
        raise RuntimeError("boom")

    sfn.task("After")(lambda event, context: calls.append("after"))
    definition = single(
        {
            "Type": "Parallel",
            "Branches": [
                _branch(
                    ("Sl", {"Type": "Task", "Resource": "Slow", "Next": "A"}),
                    ("A", {"Type": "Task", "Resource": "After", "End": True}),
                ),
                _branch(("B", {"Type": "Task", "Resource": "Boom", "End": True})),
            ],
        }
    )
    result = sfn.run(definition, {})
    assert (result.status, result.error) == ("FAILED", "RuntimeError")
    time.sleep(0.3)  # let the abandoned branch reach its next state
    assert "after" not in calls


def test_retry_on_a_parallel_reruns_all_its_branches(sfn: Harness) -> None:
    calls: list[str] = []
    steady_ran = threading.Event()

    @sfn.task("Flaky")
    def flaky(event: Any, context: TaskContext) -> Any:
        assert steady_ran.wait(5)  # fail only once the sibling has done its work
        calls.append("flaky")
        if calls.count("flaky") == 1:
            raise ConnectionError("first try")
        return "ok"

    @sfn.task("Steady")
    def steady(event: Any, context: TaskContext) -> Any:
        calls.append("steady")
        steady_ran.set()
        return "steady"

    definition = single(
        {
            "Type": "Parallel",
            "Branches": [
                _branch(("F", {"Type": "Task", "Resource": "Flaky", "End": True})),
                _branch(("St", {"Type": "Task", "Resource": "Steady", "End": True})),
            ],
            "Retry": [{"ErrorEquals": ["ConnectionError"], "IntervalSeconds": 3}],
        }
    )
    result = sfn.run(definition, {})
    assert (result.status, result.output) == ("SUCCEEDED", ["ok", "steady"])
    assert calls.count("flaky") == 2 and calls.count("steady") == 2
    assert sfn.clock.sleeps == [3]


def test_inline_map_runs_the_processor_on_each_item_in_order(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": _processor({"Type": "Pass", "Parameters": {"double.$": "States.MathAdd($.n, $.n)"}}),
            "ResultPath": "$.doubled",
        }
    )
    result = sfn.run(definition, {"items": [{"n": 1}, {"n": 2}, {"n": 3}]})
    assert result.output == {
        "items": [{"n": 1}, {"n": 2}, {"n": 3}],
        "doubled": [{"double": 2}, {"double": 4}, {"double": 6}],
    }


def test_inline_map_over_an_empty_array_returns_an_empty_array(sfn: Harness) -> None:
    definition = single({"Type": "Map", "ItemProcessor": _processor({"Type": "Pass", "Result": "x"})})
    assert sfn.run(definition, []).output == []


def test_inline_map_item_selector_sees_index_value_and_the_map_input(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value", "shared.$": "$.shared"},
            "ItemProcessor": _processor({"Type": "Pass"}),
        }
    )
    result = sfn.run(definition, {"items": ["a", "b"], "shared": 9})
    assert result.output == [{"index": 0, "value": "a", "shared": 9}, {"index": 1, "value": "b", "shared": 9}]


def test_inline_map_legacy_iterator_and_parameters_still_work(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Map",
            "Parameters": {"i.$": "$$.Map.Item.Index"},
            "Iterator": _processor({"Type": "Pass"}),
        }
    )
    assert sfn.run(definition, ["x", "y"]).output == [{"i": 0}, {"i": 1}]


def test_inline_map_over_an_object_iterates_key_value_pairs(sfn: Harness) -> None:
    definition = single({"Type": "Map", "ItemsPath": "$.prices", "ItemProcessor": _processor({"Type": "Pass"})})
    result = sfn.run(definition, {"prices": {"apple": 1, "pear": 2}})
    assert result.output == [{"Key": "apple", "Value": 1}, {"Key": "pear", "Value": 2}]


def test_inline_map_item_selector_over_an_object_sees_the_key_and_the_bare_value(sfn: Harness) -> None:
    definition = single(
        {
            "Type": "Map",
            "ItemSelector": {"key.$": "$$.Map.Item.Key", "value.$": "$$.Map.Item.Value"},
            "ItemProcessor": _processor({"Type": "Pass"}),
        }
    )
    result = sfn.run(definition, {"apple": 1, "pear": {"p": 2}})
    assert result.output == [{"key": "apple", "value": 1}, {"key": "pear", "value": {"p": 2}}]


def test_inline_map_over_a_scalar_is_a_runtime_error(sfn: Harness) -> None:
    definition = single({"Type": "Map", "ItemsPath": "$.n", "ItemProcessor": _processor({"Type": "Pass"})})
    result = sfn.run(definition, {"n": 5})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_a_failing_iteration_fails_the_map_with_its_error(sfn: Harness) -> None:
    processor = _branch(
        ("Check", {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Bad"}],
                   "Default": "Good"}),
        ("Bad", {"Type": "Fail", "Error": "Item.Bad", "Cause": "two"}),
        ("Good", {"Type": "Succeed"}),
    )  # fmt: skip
    result = sfn.run(single({"Type": "Map", "ItemProcessor": processor}), [1, 2, 3])
    assert (result.status, result.error, result.cause) == ("FAILED", "Item.Bad", "two")


def test_a_failing_iteration_can_be_caught_on_the_map(sfn: Harness) -> None:
    sfn.task("Boom")(lambda event, context: 1 / 0)
    definition = machine(
        ("M", {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": _processor({"Type": "Task", "Resource": "Boom"}),
               "End": True,
               "Catch": [{"ErrorEquals": ["ZeroDivisionError"], "ResultPath": "$.err", "Next": "Recover"}]}),
        ("Recover", {"Type": "Pass", "Parameters": {"error.$": "$.err.Error"}, "End": True}),
    )  # fmt: skip
    assert sfn.run(definition, {"items": [1, 2]}).output == {"error": "ZeroDivisionError"}


def test_max_concurrency_bounds_the_iterations_running_at_once(sfn: Harness) -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]

    @sfn.task("Work")
    def work(event: Any, context: TaskContext) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return event * 10

    definition = single(
        {"Type": "Map", "MaxConcurrency": 2, "ItemProcessor": _processor({"Type": "Task", "Resource": "Work"})}
    )
    result = sfn.run(definition, list(range(6)))
    assert result.output == [0, 10, 20, 30, 40, 50]
    assert 1 <= peak[0] <= 2


def test_max_concurrency_one_runs_iterations_one_after_another(sfn: Harness) -> None:
    order: list[int] = []
    sfn.task("Note")(lambda event, context: order.append(event))
    definition = single(
        {"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": _processor({"Type": "Task", "Resource": "Note"})}
    )
    sfn.run(definition, [3, 1, 2])
    assert order == [3, 1, 2]


def test_max_concurrency_zero_lets_all_iterations_run_together(sfn: Harness) -> None:
    barrier = threading.Barrier(5, timeout=5)

    @sfn.task("Meet")
    def meet(event: Any, context: TaskContext) -> Any:
        barrier.wait()  # raises BrokenBarrierError unless all five run at once
        return event

    definition = single(
        {"Type": "Map", "MaxConcurrency": 0, "ItemProcessor": _processor({"Type": "Task", "Resource": "Meet"})}
    )
    result = sfn.run(definition, [0, 1, 2, 3, 4])
    assert (result.status, result.output) == ("SUCCEEDED", [0, 1, 2, 3, 4])


def test_max_concurrency_path_reads_the_limit_from_the_input(sfn: Harness) -> None:
    order: list[int] = []
    sfn.task("Note")(lambda event, context: order.append(event))
    definition = single(
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrencyPath": "$.limit",
            "ItemProcessor": _processor({"Type": "Task", "Resource": "Note"}),
        }
    )
    assert sfn.run(definition, {"items": [2, 1], "limit": 1}).status == "SUCCEEDED"
    assert order == [2, 1]
    bad = sfn.run(definition, {"items": [2, 1], "limit": "NoNumber"})
    assert (bad.error, bad.cause) == (
        "States.Runtime",
        "An error occurred while executing the state 'S' (entered at the event id #2). "
        'The MaxConcurrencyPath field refers to value "NoNumber" which is not a valid integer: $.limit',
    )


def test_an_iteration_sees_its_own_state_names_in_the_context(sfn: Harness) -> None:
    definition = single(
        {"Type": "Map", "ItemProcessor": _processor({"Type": "Pass", "Parameters": {"state.$": "$$.State.Name"}})}
    )
    assert sfn.run(definition, [1]).output == [{"state": "Step"}]


def test_nested_maps_and_parallels_compose(sfn: Harness) -> None:
    inner = _branch(
        ("Both", {"Type": "Parallel", "End": True, "Branches": [
            _branch(("Id", {"Type": "Pass", "End": True})),
            _branch(("Sq", {"Type": "Map", "ItemProcessor": _processor({"Type": "Pass", "Result": "x"}), "End": True})),
        ]}),
    )  # fmt: skip
    definition = single({"Type": "Map", "ItemProcessor": inner})
    assert sfn.run(definition, [[1, 2], []]).output == [[[1, 2], ["x", "x"]], [[], []]]

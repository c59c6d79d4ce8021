"""Execution-wide limits: the payload limit, the state machine's TimeoutSeconds, the host's deadline and abort.

AWS (aws-distributed-map.md §2, §5, Addendum "Cause strings"): a state or task result over the
payload limit fails the execution with ``States.DataLimitExceeded`` — terminal, not caught by
``States.ALL`` — and a cause ``The state/task '<StateName>' returned a result with a size
exceeding the maximum number of bytes service limit.``; a state machine's ``TimeoutSeconds`` ends
the execution as TIMED_OUT with ``States.Timeout`` (§6.6).
"""

from __future__ import annotations

import time
from typing import Any

from dmap.interpreter import TaskContext

from .support import Harness, machine, single

CAUSE_START = "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit"


def test_a_task_result_over_the_payload_limit_fails_with_data_limit_exceeded_naming_the_state(sfn: Harness) -> None:
    sfn.task("Big")(lambda event, context: {"blob": "x" * 2000})
    definition = machine(("Fetch", {"Type": "Task", "Resource": "Big", "End": True}))
    result = sfn.run(definition, {}, payload_limit=1024)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert (result.cause or "").startswith(CAUSE_START.format("Fetch"))


def test_a_task_result_at_the_payload_limit_is_accepted(sfn: Harness) -> None:
    sfn.task("Exact")(lambda event, context: "x" * 98)  # '"' + 98 + '"' = 100 bytes of JSON
    result = sfn.run(single({"Type": "Task", "Resource": "Exact"}), {}, payload_limit=100)
    assert result.status == "SUCCEEDED"


def test_the_payload_limit_counts_utf8_bytes_not_characters(sfn: Harness) -> None:
    sfn.task("Wide")(lambda event, context: "é" * 60)  # 60 characters, 122 bytes of JSON
    result = sfn.run(single({"Type": "Task", "Resource": "Wide"}), {}, payload_limit=100)
    assert result.error == "States.DataLimitExceeded"


def test_a_data_limit_error_is_not_caught_even_by_an_explicit_catch_all(sfn: Harness) -> None:
    sfn.task("Big")(lambda event, context: "x" * 500)
    definition = machine(
        ("Fetch", {"Type": "Task", "Resource": "Big", "End": True,
                   "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}]}),
        ("Recover", {"Type": "Pass", "End": True}),
    )  # fmt: skip
    result = sfn.run(definition, {}, payload_limit=100)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")


def test_a_parallel_result_over_the_payload_limit_fails_the_execution(sfn: Harness) -> None:
    branches = [{"StartAt": n, "States": {n: {"Type": "Pass", "Result": "y" * 80, "End": True}}} for n in "AB"]
    definition = machine(("Fan", {"Type": "Parallel", "Branches": branches, "End": True}))
    result = sfn.run(definition, {}, payload_limit=120)
    assert result.error == "States.DataLimitExceeded"
    assert (result.cause or "").startswith(CAUSE_START.format("Fan"))


def test_an_inline_map_result_over_the_payload_limit_fails_the_execution(sfn: Harness) -> None:
    processor = {"StartAt": "Pad", "States": {"Pad": {"Type": "Pass", "Result": "z" * 30, "End": True}}}
    definition = machine(("Each", {"Type": "Map", "ItemProcessor": processor, "End": True}))
    result = sfn.run(definition, list(range(10)), payload_limit=200)
    assert result.error == "States.DataLimitExceeded"
    assert (result.cause or "").startswith(CAUSE_START.format("Each"))


def test_a_final_output_over_the_payload_limit_fails_the_execution(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Pass", "Result": "p" * 300}), {}, payload_limit=100)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")


def test_a_final_output_over_the_payload_limit_names_the_state_that_produced_it(sfn: Harness) -> None:
    definition = machine(
        ("Start", {"Type": "Pass", "Next": "Grow"}),
        ("Grow", {"Type": "Pass", "Result": "p" * 300, "End": True}),
    )
    result = sfn.run(definition, {}, payload_limit=100)
    assert result.error == "States.DataLimitExceeded"
    assert (result.cause or "").startswith(CAUSE_START.format("Grow"))


def test_a_pass_output_over_the_payload_limit_fails_at_that_state(sfn: Harness) -> None:
    definition = machine(
        ("Start", {"Type": "Pass", "Next": "Grow"}),
        ("Grow", {"Type": "Pass", "Result": {"big": "p" * 300, "small": 1}, "Next": "Shrink"}),
        ("Shrink", {"Type": "Pass", "OutputPath": "$.small", "End": True}),
    )
    result = sfn.run(definition, {}, payload_limit=100)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert (result.cause or "").startswith(CAUSE_START.format("Grow"))


def test_a_state_machine_over_its_timeout_seconds_times_out(sfn: Harness) -> None:
    @sfn.task("Slow")
    def slow(event: Any, context: TaskContext) -> Any:
        time.sleep(1.3)
        return "done"

    definition = machine(
        ("Work", {"Type": "Task", "Resource": "Slow", "Next": "After"}),
        ("After", {"Type": "Pass", "End": True}),
        TimeoutSeconds=1,
    )
    result = sfn.run(definition, {})
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")


def test_a_host_deadline_that_has_passed_times_the_execution_out(sfn: Harness) -> None:
    calls: list[Any] = []
    sfn.task("Never")(lambda event, context: calls.append(event))
    definition = single({"Type": "Task", "Resource": "Never"})
    result = sfn.run(definition, {}, deadline=time.monotonic() - 1)
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")
    assert calls == []


def test_a_host_deadline_stops_the_execution_between_states(sfn: Harness) -> None:
    ran: list[str] = []

    @sfn.task("Slow")
    def slow(event: Any, context: TaskContext) -> Any:
        ran.append("slow")
        time.sleep(1.2)

    sfn.task("Later")(lambda event, context: ran.append("later"))
    definition = machine(
        ("First", {"Type": "Task", "Resource": "Slow", "Next": "Second"}),
        ("Second", {"Type": "Task", "Resource": "Later", "End": True}),
    )
    # A whole second before the deadline: a busy machine may take a while to reach the first state.
    result = sfn.run(definition, {}, deadline=time.monotonic() + 1.0)
    assert result.status == "TIMED_OUT"
    assert ran == ["slow"]


def test_an_abort_request_stops_the_execution_as_aborted(sfn: Harness) -> None:
    ran: list[str] = []
    stop = [False]

    @sfn.task("First")
    def first(event: Any, context: TaskContext) -> Any:
        ran.append("first")
        stop[0] = True

    sfn.task("Second")(lambda event, context: ran.append("second"))
    definition = machine(
        ("A", {"Type": "Task", "Resource": "First", "Next": "B"}),
        ("B", {"Type": "Task", "Resource": "Second", "End": True}),
    )
    result = sfn.run(definition, {}, should_abort=lambda: stop[0])
    assert result.status == "ABORTED"
    assert ran == ["first"]


def test_an_abort_request_interrupts_a_long_wait(sfn: Harness) -> None:
    polls = [0]

    def should_abort() -> bool:
        polls[0] += 1
        return polls[0] > 3

    result = sfn.run(single({"Type": "Wait", "Seconds": 3600}), {}, should_abort=should_abort)
    assert result.status == "ABORTED"
    assert sum(sfn.clock.sleeps) < 3600

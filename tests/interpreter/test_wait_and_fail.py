"""Wait states on the fake clock (nothing sleeps; the sleeps are recorded) and Fail states.

The fake clock starts at 2024-01-01T00:00:00Z. AWS: ``SecondsPath`` must reference a
non-negative integer and ``TimestampPath`` an RFC 3339 timestamp, else ``States.Runtime``; a
timestamp in the past does not wait. Fail takes ``Error``/``Cause`` literally or through
``ErrorPath``/``CausePath`` (a path or an intrinsic); a Fail with neither ends the execution with
no error and no cause.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .support import Harness, machine, single


def test_wait_seconds_sleeps_that_long_and_passes_the_input_on(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Wait", "Seconds": 30}), {"a": 1})
    assert (result.status, result.output) == ("SUCCEEDED", {"a": 1})
    assert sfn.clock.sleeps == [30]


def test_wait_zero_seconds_does_not_advance_the_clock(sfn: Harness) -> None:
    before = sfn.clock.now()
    sfn.run(single({"Type": "Wait", "Seconds": 0}), {})
    assert sfn.clock.now() == before


def test_wait_seconds_path_reads_the_delay_from_the_input(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Wait", "SecondsPath": "$.delay"}), {"delay": 12})
    assert result.status == "SUCCEEDED"
    assert sfn.clock.sleeps == [12]


def test_wait_seconds_path_accepts_a_whole_float(sfn: Harness) -> None:
    sfn.run(single({"Type": "Wait", "SecondsPath": "$.delay"}), {"delay": 4.0})
    assert sfn.clock.sleeps == [4]


@pytest.mark.parametrize(
    ("value", "words"),
    [(-1, "negative"), (1.5, "long"), ("5", "long"), (True, "long"), (None, "long")],
    ids=["negative", "fraction", "string", "boolean", "null"],
)
def test_wait_seconds_path_to_a_bad_value_is_a_runtime_error_and_does_not_wait(
    sfn: Harness, value: Any, words: str
) -> None:
    result = sfn.run(single({"Type": "Wait", "SecondsPath": "$.delay"}), {"delay": value})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert words in (result.cause or "") and "$.delay" in (result.cause or "")
    assert sfn.clock.sleeps == []


def test_wait_seconds_path_that_matches_nothing_is_a_runtime_error(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Wait", "SecondsPath": "$.delay"}), {})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_wait_timestamp_sleeps_until_that_moment(sfn: Harness) -> None:
    sfn.run(single({"Type": "Wait", "Timestamp": "2024-01-01T00:01:30Z"}), {})
    assert sfn.clock.sleeps == [90]


def test_wait_timestamp_honours_its_offset(sfn: Harness) -> None:
    sfn.run(single({"Type": "Wait", "Timestamp": "2024-01-01T02:00:00+01:00"}), {})
    assert sfn.clock.sleeps == [3600]


def test_wait_timestamp_in_the_past_does_not_wait(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Wait", "Timestamp": "2020-01-01T00:00:00Z"}), {"x": 1})
    assert result.output == {"x": 1}
    assert all(s == 0 for s in sfn.clock.sleeps)


def test_wait_timestamp_path_reads_the_moment_from_the_input(sfn: Harness) -> None:
    sfn.run(single({"Type": "Wait", "TimestampPath": "$.at"}), {"at": "2024-01-01T00:00:10.500Z"})
    assert sfn.clock.sleeps == [10.5]


@pytest.mark.parametrize("value", ["2024-01-01", "tomorrow", 1704067200, "2024-01-01T00:00:10"])
def test_wait_timestamp_path_to_something_that_is_not_a_timestamp_is_a_runtime_error(sfn: Harness, value: Any) -> None:
    result = sfn.run(single({"Type": "Wait", "TimestampPath": "$.at"}), {"at": value})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "TimestampPath" in (result.cause or "")
    assert sfn.clock.sleeps == []


def test_consecutive_waits_add_up_on_the_clock(sfn: Harness) -> None:
    definition = machine(
        ("W1", {"Type": "Wait", "Seconds": 5, "Next": "W2"}),
        ("W2", {"Type": "Wait", "Timestamp": "2024-01-01T00:00:20Z", "Next": "W3"}),
        ("W3", {"Type": "Wait", "SecondsPath": "$.more", "End": True}),
    )
    sfn.run(definition, {"more": 7})
    assert sfn.clock.sleeps == [5, 15, 7]
    assert sfn.clock.now().isoformat() == "2024-01-01T00:00:27+00:00"


def test_wait_applies_input_path_and_output_path(sfn: Harness) -> None:
    definition = single({"Type": "Wait", "SecondsPath": "$.d", "InputPath": "$.in", "OutputPath": "$.out"})
    assert sfn.run(definition, {"in": {"d": 1, "out": "kept"}}).output == "kept"


def test_fail_reports_its_error_and_cause(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Fail", "Error": "Order.Invalid", "Cause": "no lines"}), {})
    assert (result.status, result.error, result.cause, result.output) == ("FAILED", "Order.Invalid", "no lines", None)


def test_fail_with_neither_error_nor_cause_fails_without_them(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Fail"}), {})
    assert (result.status, result.error, result.cause) == ("FAILED", None, None)


def test_fail_reads_error_and_cause_from_paths(sfn: Harness) -> None:
    definition = single({"Type": "Fail", "ErrorPath": "$.e.name", "CausePath": "$.e.why"})
    result = sfn.run(definition, {"e": {"name": "Custom", "why": "because"}})
    assert (result.error, result.cause) == ("Custom", "because")


def test_fail_cause_path_may_be_an_intrinsic(sfn: Harness) -> None:
    definition = single(
        {"Type": "Fail", "Error": "Bad", "CausePath": "States.Format('item {} failed: {}', $.id, $.reason)"}
    )
    result = sfn.run(definition, {"id": 7, "reason": "out of stock"})
    assert result.cause == "item 7 failed: out of stock"


def test_fail_cause_path_to_an_object_reports_it_as_json_text(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Fail", "Error": "Bad", "CausePath": "$.detail"}), {"detail": {"a": [1]}})
    assert json.loads(result.cause or "") == {"a": [1]}


def test_fail_error_path_that_matches_nothing_is_a_runtime_error(sfn: Harness) -> None:
    result = sfn.run(single({"Type": "Fail", "ErrorPath": "$.missing"}), {})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_a_fail_state_ends_the_execution_from_the_middle_of_a_workflow(sfn: Harness) -> None:
    definition = machine(
        ("Start", {"Type": "Pass", "Result": 1, "ResultPath": "$.x", "Next": "Stop"}),
        ("Stop", {"Type": "Fail", "Error": "Stopped"}),
    )
    result = sfn.run(definition, {})
    assert (result.status, result.error, result.cause) == ("FAILED", "Stopped", None)

"""Retry and Catch on Task states: which retrier or catcher applies, the backoff delays, the error output.

AWS (aws-distributed-map.md §2, §6.6): retriers are scanned in order and the first match is used;
each retrier has its own attempt budget; the delay before retry n (0-based) is
``IntervalSeconds * BackoffRate**n`` capped by ``MaxDelaySeconds`` (defaults 1 s, 2.0, 3 attempts),
with ``JitterStrategy: FULL`` drawn from ``[0, delay]``; ``States.ALL`` matches everything but
``States.Runtime`` and ``States.DataLimitExceeded``; ``States.TaskFailed`` matches everything but
``States.Timeout``; a catcher's error output is ``{"Error", "Cause"}`` placed by its ResultPath.
Delays are read from the fake clock's recorded sleeps.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from dmap.interpreter import TaskContext

from .support import Harness, machine


class Flaky(Exception):
    """A handler's transient error."""


class Fatal(Exception):
    """A handler's permanent error."""


def _failing(sfn: Harness, errors: list[type[Exception] | None], name: str = "Work") -> list[Any]:
    """Register ``name``: each call raises the next error of ``errors`` (None = succeed); returns the calls."""
    calls: list[Any] = []
    plan: Iterator[type[Exception] | None] = iter(errors)

    @sfn.task(name)
    def handler(event: Any, context: TaskContext) -> Any:
        calls.append(event)
        error = next(plan, None)
        if error is not None:
            raise error(f"call {len(calls)}")
        return {"attempts": len(calls)}

    return calls


def _task(retry: list[dict[str, Any]] | None = None, catch: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    state: dict[str, Any] = {"Type": "Task", "Resource": "Work", "End": True, **extra}
    if retry is not None:
        state["Retry"] = retry
    if catch is not None:
        state["Catch"] = catch
    return machine(("T", state), *_targets(catch or []))


def _targets(catch: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The catchers' Next states: ``Handled`` passes its input on, ``Other`` outputs "other"."""
    used = {c["Next"] for c in catch}
    states = [("Handled", {"Type": "Pass", "End": True}), ("Other", {"Type": "Pass", "Result": "other", "End": True})]
    return [(name, state) for name, state in states if name in used]


def test_a_retried_task_succeeds_after_transient_errors(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky, Flaky, None])
    result = sfn.run(_task([{"ErrorEquals": ["Flaky"]}]), {"a": 1})
    assert (result.status, result.output) == ("SUCCEEDED", {"attempts": 3})
    assert calls == [{"a": 1}] * 3


def test_default_retry_waits_one_two_four_seconds_then_gives_up(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky] * 10)
    result = sfn.run(_task([{"ErrorEquals": ["Flaky"]}]), {})
    assert (result.status, result.error) == ("FAILED", "Flaky")
    assert len(calls) == 4
    assert sfn.clock.sleeps == [1.0, 2.0, 4.0]
    assert json.loads(result.cause or "")["errorMessage"] == "call 4"


def test_backoff_multiplies_the_interval_by_the_rate_each_attempt(sfn: Harness) -> None:
    _failing(sfn, [Flaky] * 10)
    sfn.run(_task([{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 4}]), {})
    assert sfn.clock.sleeps == [2, 6, 18, 54]


def test_a_backoff_rate_of_one_keeps_the_interval(sfn: Harness) -> None:
    _failing(sfn, [Flaky] * 10)
    sfn.run(_task([{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5, "BackoffRate": 1, "MaxAttempts": 3}]), {})
    assert sfn.clock.sleeps == [5, 5, 5]


def test_max_delay_seconds_caps_the_backoff(sfn: Harness) -> None:
    _failing(sfn, [Flaky] * 10)
    retrier = {
        "ErrorEquals": ["Flaky"],
        "IntervalSeconds": 2,
        "BackoffRate": 3,
        "MaxAttempts": 4,
        "MaxDelaySeconds": 10,
    }
    sfn.run(_task([retrier]), {})
    assert sfn.clock.sleeps == [2, 6, 10, 10]


def test_full_jitter_draws_each_delay_within_zero_and_the_computed_delay(sfn: Harness) -> None:
    _failing(sfn, [Flaky] * 20)
    retrier = {
        "ErrorEquals": ["Flaky"],
        "IntervalSeconds": 4,
        "BackoffRate": 2,
        "MaxAttempts": 6,
        "MaxDelaySeconds": 20,
        "JitterStrategy": "FULL",
    }
    sfn.run(_task([retrier]), {}, rng=random.Random(1234))
    caps = [4, 8, 16, 20, 20, 20]
    assert len(sfn.clock.sleeps) == len(caps)
    assert all(0 <= slept <= cap for slept, cap in zip(sfn.clock.sleeps, caps, strict=True))
    assert sfn.clock.sleeps != caps  # jittered, not the plain backoff


def test_jitter_none_is_the_plain_backoff(sfn: Harness) -> None:
    _failing(sfn, [Flaky] * 10)
    retrier = {"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2, "JitterStrategy": "NONE"}
    sfn.run(_task([retrier]), {}, rng=random.Random(1))
    assert sfn.clock.sleeps == [1, 2]


def test_max_attempts_zero_never_retries(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky, None])
    result = sfn.run(_task([{"ErrorEquals": ["Flaky"], "MaxAttempts": 0}]), {})
    assert (result.status, result.error, len(calls), sfn.clock.sleeps) == ("FAILED", "Flaky", 1, [])


def test_the_first_matching_retrier_is_used(sfn: Harness) -> None:
    _failing(sfn, [Flaky, None])
    retry = [
        {"ErrorEquals": ["Fatal"], "IntervalSeconds": 100},
        {"ErrorEquals": ["Flaky", "Fatal"], "IntervalSeconds": 7},
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 50},
    ]
    assert sfn.run(_task(retry), {}).status == "SUCCEEDED"
    assert sfn.clock.sleeps == [7]


def test_each_retrier_has_its_own_attempt_budget(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky, Fatal, Flaky, Fatal, None])
    retry = [
        {"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2},
        {"ErrorEquals": ["Fatal"], "IntervalSeconds": 10, "MaxAttempts": 2},
    ]
    result = sfn.run(_task(retry), {})
    assert (result.status, len(calls)) == ("SUCCEEDED", 5)
    assert sfn.clock.sleeps == [1, 10, 2, 20]


def test_an_exhausted_retrier_is_not_refilled_by_another_retrier_s_attempts(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky, Fatal, Flaky, None])
    retry = [
        {"ErrorEquals": ["Flaky"], "MaxAttempts": 1},
        {"ErrorEquals": ["Fatal"], "MaxAttempts": 5},
    ]
    result = sfn.run(_task(retry), {})
    assert (result.status, result.error, len(calls)) == ("FAILED", "Flaky", 3)


def test_the_attempt_budget_starts_afresh_each_time_the_state_is_entered(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky, None, Flaky, None])
    definition = machine(
        ("T", {"Type": "Task", "Resource": "Work", "ResultPath": "$.last", "Next": "Again",
               "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 1}]}),
        ("Again", {"Type": "Choice", "Choices": [{"Variable": "$.last.attempts", "NumericLessThan": 4, "Next": "T"}],
                   "Default": "Done"}),
        ("Done", {"Type": "Succeed"}),
    )  # fmt: skip
    result = sfn.run(definition, {})
    assert (result.status, len(calls)) == ("SUCCEEDED", 4)
    assert sfn.clock.sleeps == [1, 1]


def test_the_retry_count_is_visible_in_the_context_object(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky, Flaky, None])
    definition = _task([{"ErrorEquals": ["Flaky"]}], Parameters={"retry.$": "$$.State.RetryCount"})
    sfn.run(definition, {})
    assert calls == [{"retry": 0}, {"retry": 1}, {"retry": 2}]


def test_an_error_no_retrier_matches_is_not_retried(sfn: Harness) -> None:
    calls = _failing(sfn, [Fatal, None])
    result = sfn.run(_task([{"ErrorEquals": ["Flaky"]}]), {})
    assert (result.status, result.error, len(calls)) == ("FAILED", "Fatal", 1)


def test_a_catcher_s_default_result_path_replaces_the_input_with_the_error_output(sfn: Harness) -> None:
    _failing(sfn, [Fatal])
    result = sfn.run(_task(catch=[{"ErrorEquals": ["Fatal"], "Next": "Handled"}]), {"a": 1})
    assert result.status == "SUCCEEDED"
    assert set(result.output) == {"Error", "Cause"}
    assert result.output["Error"] == "Fatal"
    assert json.loads(result.output["Cause"])["errorMessage"] == "call 1"


def test_a_catcher_s_result_path_places_the_error_output_in_the_input(sfn: Harness) -> None:
    _failing(sfn, [Fatal])
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Handled"}]
    result = sfn.run(_task(catch=catch), {"a": 1})
    assert result.output["a"] == 1 and result.output["failure"]["Error"] == "Fatal"


def test_a_catcher_with_a_null_result_path_passes_the_input_on_unchanged(sfn: Harness) -> None:
    _failing(sfn, [Fatal])
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Handled"}]
    assert sfn.run(_task(catch=catch), {"a": 1}).output == {"a": 1}


def test_the_first_matching_catcher_chooses_the_next_state(sfn: Harness) -> None:
    _failing(sfn, [Fatal])
    catch = [
        {"ErrorEquals": ["Flaky"], "Next": "Handled"},
        {"ErrorEquals": ["Fatal"], "Next": "Other"},
        {"ErrorEquals": ["States.ALL"], "Next": "Handled"},
    ]
    assert sfn.run(_task(catch=catch), {}).output == "other"


def test_retries_run_out_before_the_catcher_takes_over(sfn: Harness) -> None:
    calls = _failing(sfn, [Flaky] * 5)
    definition = _task(
        [{"ErrorEquals": ["Flaky"], "MaxAttempts": 2}],
        [{"ErrorEquals": ["Flaky"], "ResultPath": "$.err", "Next": "Handled"}],
    )
    result = sfn.run(definition, {"a": 1})
    assert (result.status, len(calls)) == ("SUCCEEDED", 3)
    assert result.output["err"]["Error"] == "Flaky"
    assert json.loads(result.output["err"]["Cause"])["errorMessage"] == "call 3"
    assert sfn.clock.sleeps == [1, 2]


def test_a_runtime_error_is_neither_retried_nor_caught_by_states_all(sfn: Harness) -> None:
    calls = _failing(sfn, [])
    definition = _task(
        [{"ErrorEquals": ["States.ALL"]}],
        [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}],
        InputPath="$.missing",
    )
    result = sfn.run(definition, {"a": 1})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert calls == [] and sfn.clock.sleeps == []


def test_a_result_path_failure_is_a_runtime_error_states_all_does_not_catch(sfn: Harness) -> None:
    _failing(sfn, [None])
    definition = _task(catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handled"}], ResultPath="$.a.b")
    result = sfn.run(definition, {"a": "scalar"})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_a_data_limit_error_is_neither_retried_nor_caught_by_states_all(sfn: Harness) -> None:
    sfn.task("Work")(lambda event, context: "x" * 500)
    definition = _task([{"ErrorEquals": ["States.ALL"]}], [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}])
    result = sfn.run(definition, {}, payload_limit=100)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert sfn.clock.sleeps == []


def test_states_task_failed_matches_a_handler_error(sfn: Harness) -> None:
    _failing(sfn, [Fatal, None])
    assert sfn.run(_task([{"ErrorEquals": ["States.TaskFailed"]}]), {}).status == "SUCCEEDED"


def _parallel_failing_with(error: str, retry: list[dict[str, Any]], catch: list[dict[str, Any]]) -> Any:
    """A Parallel whose only branch fails with ``error`` (a way to raise any name without a real clock)."""
    branch = {"StartAt": "Raise", "States": {"Raise": {"Type": "Fail", "Error": error, "Cause": "c"}}}
    parallel = {"Type": "Parallel", "Branches": [branch], "Retry": retry, "Catch": catch, "End": True}
    return machine(("P", parallel), *_targets(catch))


@pytest.mark.parametrize(
    ("error", "retried"),
    [("States.Timeout", False), ("States.HeartbeatTimeout", True), ("Custom", True), ("States.Permissions", True)],
)
def test_states_task_failed_matches_everything_but_a_timeout(sfn: Harness, error: str, retried: bool) -> None:
    definition = _parallel_failing_with(error, [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1}], [])
    result = sfn.run(definition, {})
    assert (result.status, result.error) == ("FAILED", error)
    assert sfn.clock.sleeps == ([1.0] if retried else [])


def test_states_timeout_is_matched_by_its_own_name_and_by_states_all(sfn: Harness) -> None:
    by_name = _parallel_failing_with(
        "States.Timeout",
        [{"ErrorEquals": ["States.TaskFailed"]}],
        [
            {"ErrorEquals": ["States.TaskFailed"], "Next": "Other"},
            {"ErrorEquals": ["States.Timeout"], "Next": "Handled"},
        ],
    )
    by_all = _parallel_failing_with("States.Timeout", [], [{"ErrorEquals": ["States.ALL"], "Next": "Other"}])
    assert sfn.run(by_name, {}).output == {"Error": "States.Timeout", "Cause": "c"}
    assert sfn.run(by_all, {}).output == "other"


def test_a_real_task_timeout_is_caught_by_a_states_timeout_catcher(sfn: Harness) -> None:
    @sfn.task("Work")
    def hang(event: Any, context: TaskContext) -> Any:
        while not context.cancelled:
            context.heartbeat()

    definition = _task(
        [{"ErrorEquals": ["States.TaskFailed"]}],
        [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timeout", "Next": "Handled"}],
        TimeoutSeconds=1,
    )
    result = sfn.run(definition, {"a": 1})
    assert result.status == "SUCCEEDED"
    assert result.output["timeout"]["Error"] == "States.Timeout"
    assert sfn.clock.sleeps == []

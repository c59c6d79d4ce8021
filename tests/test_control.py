"""The control plane's Python API (``dmap.control``) on a private embedded backend.

describe/list executions and Map Runs, update a running Map Run, stop, redrive and list failures:
shapes, effects and every refusal. Children here wait at a gate the test opens, so "running" and
"stopped" are states the test reaches, never moments it hopes for.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap import control
from dmap.api import start
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.errors import ConfigurationError, InvalidStateError, NotFoundError
from dmap.records import Execution

UNKNOWN_EXECUTION = "arn:aws:states:local:000000000000:execution:fan:no-such-execution"
UNKNOWN_MAP_RUN = "arn:aws:states:local:000000000000:mapRun:fan/label:no-such-map-run"


class _World:
    """What the handler of this module sees: a gate, the items to fail until fixed, and call counts."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.fixed = False
        self.calls: dict[int, int] = {}
        self.lock = threading.Lock()

    def running(self) -> int:
        with self.lock:
            return sum(self.calls.values())


WORLD = _World()


@dmap.task("ControlApiWork")
def _work(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    index = int(event["i"])
    with WORLD.lock:
        WORLD.calls[index] = WORLD.calls.get(index, 0) + 1
    if event.get("wait"):
        WORLD.gate.wait(30)
    if event.get("fail") and not WORLD.fixed:
        raise RuntimeError(f"item {index} failed")
    return {"i": index}


@pytest.fixture(autouse=True)
def world() -> Iterator[_World]:
    global WORLD
    WORLD = _World()
    yield WORLD
    WORLD.gate.set()


@pytest.fixture
def backend(world: _World) -> Iterator[LocalBackend]:
    """A private embedded backend (its own journal, run store and threads)."""
    engine = LocalBackend(Settings(lease_seconds=5))
    yield engine
    world.gate.set()
    for thread in threading.enumerate():  # executions still finishing (status set, journal not yet saved)
        if thread.name == "dmap-execution":
            thread.join(timeout=10)
    engine.close()


def fan(
    *,
    max_concurrency: int = 0,
    tolerated_count: int | None = None,
    tolerated_percentage: float | None = None,
    items_path: str | None = "$.items",
) -> dict[str, Any]:
    """A DISTRIBUTED Map running ``ControlApiWork`` on each item."""
    state: dict[str, Any] = {
        "Type": "Map",
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "ControlApiWork", "End": True}},
        },
        "End": True,
    }
    if items_path is not None:
        state["ItemsPath"] = items_path
    if tolerated_count is not None:
        state["ToleratedFailureCount"] = tolerated_count
    if tolerated_percentage is not None:
        state["ToleratedFailurePercentage"] = tolerated_percentage
    return {"StartAt": "Fan", "States": {"Fan": state}}


def items(count: int, *, failing: set[int] | None = None, waiting: bool = False) -> list[dict[str, Any]]:
    failing = failing or set()
    return [{"i": i, "fail": i in failing, "wait": waiting} for i in range(count)]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.005)


def name() -> str:
    return f"api-{uuid.uuid4().hex[:12]}"


def running(backend: LocalBackend, definition: dict[str, Any], data: Any, **kwargs: Any) -> Execution:
    """Start an execution in the background and wait until its Map Run exists."""
    execution = start(definition, input=data, backend=backend, name=name(), **kwargs)
    wait_for(lambda: execution.map_runs, "the Map Run to start")
    return execution


def finished(execution: Execution) -> Execution:
    wait_for(lambda: execution.status != "RUNNING", "the execution to end")
    return execution


# -- describe and list ---------------------------------------------------------------------------


def test_describe_execution_returns_the_execution_with_its_map_run_and_counts(backend: LocalBackend) -> None:
    done = dmap.run(fan(), input={"items": items(4)}, backend=backend, name=name())

    described = control.describe_execution(done.execution_arn, backend=backend)

    assert described.status == "SUCCEEDED"
    assert described.output == [{"i": i} for i in range(4)]
    (map_run,) = described.map_runs
    assert map_run.map_run_arn == done.map_runs[0].map_run_arn
    assert map_run.item_counts["succeeded"] == map_run.item_counts["total"] == 4
    assert described.describe()["mapRunArns"] == [map_run.map_run_arn]


def test_list_executions_puts_the_most_recent_first_and_honours_the_limit(backend: LocalBackend) -> None:
    first = dmap.run(fan(), input={"items": items(1)}, backend=backend, name=name())
    time.sleep(0.002)  # distinct start dates (millisecond resolution)
    second = dmap.run(fan(), input={"items": items(1)}, backend=backend, name=name())

    listed = control.list_executions(backend=backend)

    assert [e.execution_arn for e in listed] == [second.execution_arn, first.execution_arn]
    assert [e.execution_arn for e in control.list_executions(backend=backend, limit=1)] == [second.execution_arn]


def test_list_map_runs_and_describe_map_run_show_aws_shapes(backend: LocalBackend) -> None:
    done = dmap.run(fan(max_concurrency=3, tolerated_count=2), input={"items": items(3)}, backend=backend, name=name())

    (map_run,) = control.list_map_runs(done.execution_arn, backend=backend)
    described = control.describe_map_run(map_run.map_run_arn, backend=backend).describe()

    assert described["status"] == "SUCCEEDED"
    assert described["executionArn"] == done.execution_arn
    assert described["maxConcurrency"] == 3
    assert described["toleratedFailureCount"] == 2
    assert described["toleratedFailurePercentage"] == 0.0
    assert described["redriveCount"] == 0
    assert described["itemCounts"] == described["executionCounts"]
    assert set(described) >= {"mapRunArn", "startDate", "stopDate", "itemCounts", "executionCounts"}


@pytest.mark.parametrize(
    "call",
    [
        lambda b: control.describe_execution(UNKNOWN_EXECUTION, backend=b),
        lambda b: control.list_map_runs(UNKNOWN_EXECUTION, backend=b),
        lambda b: control.stop_execution(UNKNOWN_EXECUTION, backend=b),
        lambda b: control.redrive_execution(UNKNOWN_EXECUTION, backend=b),
        lambda b: control.describe_map_run(UNKNOWN_MAP_RUN, backend=b),
        lambda b: control.describe_map_run(UNKNOWN_EXECUTION, backend=b),
        lambda b: list(control.list_failures(UNKNOWN_MAP_RUN, backend=b)),
        lambda b: control.update_map_run(UNKNOWN_MAP_RUN, max_concurrency=1, backend=b),
    ],
    ids=[
        "describe",
        "list-map-runs",
        "stop",
        "redrive",
        "describe-map-run",
        "map-run-of-execution-arn",
        "failures",
        "update",
    ],
)
def test_an_unknown_arn_raises_not_found_naming_it(backend: LocalBackend, call: Callable[[Any], Any]) -> None:
    with pytest.raises(NotFoundError) as raised:
        call(backend)

    assert raised.value.arn in (UNKNOWN_EXECUTION, UNKNOWN_MAP_RUN)
    assert "does not exist" in str(raised.value)


# -- a running Map Run: live counts, update, stop -------------------------------------------------


def test_update_map_run_raises_the_concurrency_of_a_running_map_run_at_once(
    backend: LocalBackend, world: _World
) -> None:
    execution = running(backend, fan(max_concurrency=1), {"items": items(6, waiting=True)})
    wait_for(lambda: world.running() == 1, "the first child")
    arn = execution.map_runs[0].map_run_arn

    updated = control.update_map_run(arn, max_concurrency=4, backend=backend)

    assert updated.max_concurrency == 4
    wait_for(lambda: world.running() == 4, "three more children to start under the new limit")
    live = control.describe_map_run(arn, backend=backend)
    assert live.status == "RUNNING"
    assert live.max_concurrency == 4
    assert live.item_counts["running"] == 4
    assert live.item_counts["pending"] == 2
    world.gate.set()
    assert finished(execution).status == "SUCCEEDED"


def test_update_map_run_lowers_the_failure_tolerance_and_can_fail_the_run_at_once(
    backend: LocalBackend, world: _World
) -> None:
    data = {"items": [*items(2, failing={0, 1}), *items(4, waiting=True)[2:]]}
    execution = running(backend, fan(max_concurrency=6, tolerated_count=5), data)
    wait_for(
        lambda: control.describe_map_run(execution.map_runs[0].map_run_arn, backend=backend).item_counts["failed"] == 2,
        "the two failures",
    )

    control.update_map_run(execution.map_runs[0].map_run_arn, tolerated_failure_count=1, backend=backend)
    world.gate.set()

    assert finished(execution).status == "FAILED"
    assert execution.error == "States.ExceedToleratedFailureThreshold"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrency": -1}, "maxConcurrency must be >= 0"),
        ({"tolerated_failure_count": -1}, "toleratedFailureCount must be >= 0"),
        ({"tolerated_failure_percentage": 100.5}, "between 0 and 100"),
        ({"tolerated_failure_percentage": -0.5}, "between 0 and 100"),
        ({"tolerated_failure_percentage": float("nan")}, "between 0 and 100"),
        ({}, "nothing to update: give a max concurrency, a tolerated failure count or percentage, adaptive"),
    ],
)
def test_update_map_run_rejects_bad_values_before_looking_anything_up(
    backend: LocalBackend, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        control.update_map_run(UNKNOWN_MAP_RUN, backend=backend, **kwargs)


def test_update_map_run_of_a_finished_map_run_is_refused(backend: LocalBackend) -> None:
    done = dmap.run(fan(), input={"items": items(2)}, backend=backend, name=name())

    with pytest.raises(InvalidStateError, match="SUCCEEDED, not RUNNING"):
        control.update_map_run(done.map_runs[0].map_run_arn, max_concurrency=3, backend=backend)


def test_stop_execution_aborts_it_and_leaves_the_unstarted_items_pending(backend: LocalBackend, world: _World) -> None:
    execution = running(backend, fan(max_concurrency=2), {"items": items(300, waiting=True)})
    wait_for(lambda: world.running() == 2, "two children to run")

    control.stop_execution(execution.execution_arn, backend=backend)
    world.gate.set()

    assert finished(execution).status == "ABORTED"
    assert execution.error == "States.Aborted"
    map_run = control.describe_map_run(execution.map_runs[0].map_run_arn, backend=backend)
    assert map_run.status == "ABORTED"
    counts = map_run.item_counts
    assert counts["succeeded"] == 2  # the running children finished their state
    assert counts["total"] == 300
    assert counts["pending"] + counts["aborted"] == 298
    with pytest.raises(InvalidStateError, match="only a RUNNING execution can be stopped"):
        control.stop_execution(execution.execution_arn, backend=backend)


def test_every_verb_takes_arns_as_aws_shows_them_and_a_stop_keeps_its_error_and_cause(
    backend: LocalBackend, world: _World
) -> None:
    execution = running(backend, fan(max_concurrency=2), {"items": items(20, waiting=True)})
    wait_for(lambda: world.running() == 2, "two children to run")
    journal_form = execution.execution_arn
    as_boto3 = journal_form.replace(":local:000000000000:", ":us-east-1:123456789012:")  # what AWS/dmap serve return
    assert as_boto3 != journal_form

    assert control.describe_execution(as_boto3, backend=backend).execution_arn == journal_form
    (run,) = control.list_map_runs(as_boto3, backend=backend)
    run_as_boto3 = run.map_run_arn.replace(":local:000000000000:", ":eu-west-1:210987654321:")
    assert control.describe_map_run(run_as_boto3, backend=backend).map_run_arn == run.map_run_arn
    assert control.update_map_run(run_as_boto3, max_concurrency=3, backend=backend).max_concurrency == 3
    assert control.map_run_progress(run_as_boto3, backend=backend).total == 20
    assert list(control.list_failures(run_as_boto3, backend=backend)) == []
    with pytest.raises(ConfigurationError, match="at most 256 characters"):
        dmap.stop_execution(as_boto3, error="E" * 257, backend=backend)

    dmap.stop_execution(as_boto3, error="Ops.Cancelled", cause="the operator stopped it", backend=backend)
    world.gate.set()

    assert finished(execution).status == "ABORTED"
    described = control.describe_execution(as_boto3, backend=backend)
    assert (described.error, described.cause) == ("Ops.Cancelled", "the operator stopped it")


# -- redrive and failures -------------------------------------------------------------------------


def test_redrive_reruns_only_failed_items_with_their_inputs_and_counts_the_redrive(
    backend: LocalBackend, world: _World
) -> None:
    failed = dmap.run(
        fan(max_concurrency=1, tolerated_count=1),
        input={"items": items(6, failing={2, 5})},
        backend=backend,
        name=name(),
    )
    assert failed.status == "FAILED"
    map_run_arn = failed.map_runs[0].map_run_arn
    failures = list(control.list_failures(map_run_arn, backend=backend))
    assert [(f.index, f.items, f.status, f.error) for f in failures] == [
        (2, 1, "FAILED", "RuntimeError"),
        (5, 1, "FAILED", "RuntimeError"),
    ]
    assert failures[0].input == {"i": 2, "fail": True, "wait": False}
    assert json.loads(failures[0].cause)["errorMessage"] == "item 2 failed"
    assert failures[0].attempts == 1 and failures[0].worker
    world.fixed = True

    redriven = control.redrive_execution(failed.execution_arn, backend=backend)

    assert redriven.status == "SUCCEEDED"
    assert redriven.output == [{"i": i} for i in range(6)]
    assert redriven.redrive_count == 1 and redriven.redrive_date
    assert world.calls == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1, 5: 2}
    map_run = control.describe_map_run(map_run_arn, backend=backend)
    assert (map_run.status, map_run.redrive_count) == ("SUCCEEDED", 1)
    assert map_run.item_counts["succeeded"] == 6 and map_run.item_counts["failed"] == 0
    assert list(control.list_failures(map_run_arn, backend=backend)) == []
    with pytest.raises(InvalidStateError, match="SUCCEEDED and cannot be redriven"):
        control.redrive_execution(failed.execution_arn, backend=backend)


def test_a_running_execution_cannot_be_redriven(backend: LocalBackend) -> None:
    execution = running(backend, fan(), {"items": items(2, waiting=True)})

    with pytest.raises(InvalidStateError, match="RUNNING and cannot be redriven"):
        control.redrive_execution(execution.execution_arn, backend=backend)


def test_list_failures_filters_by_error_name_and_stops_at_the_limit(backend: LocalBackend) -> None:
    failed = dmap.run(
        fan(tolerated_percentage=100), input={"items": items(8, failing={1, 3, 6})}, backend=backend, name=name()
    )
    arn = failed.map_runs[0].map_run_arn

    assert [f.index for f in control.list_failures(arn, backend=backend)] == [1, 3, 6]
    assert [f.index for f in control.list_failures(arn, limit=2, backend=backend)] == [1, 3]
    assert [f.index for f in control.list_failures(arn, error="RuntimeError", backend=backend)] == [1, 3, 6]
    assert list(control.list_failures(arn, error="States.Timeout", backend=backend)) == []


def test_list_failures_pages_with_an_opaque_next_token(backend: LocalBackend) -> None:
    failing = {1, 2, 4, 7, 8, 9, 11}
    failed = dmap.run(
        fan(tolerated_percentage=100), input={"items": items(12, failing=failing)}, backend=backend, name=name()
    )
    arn = failed.map_runs[0].map_run_arn

    seen, token, pages = [], None, 0
    while True:
        page = control.list_failures(arn, limit=3, next_token=token, backend=backend)
        seen += [f.index for f in page]
        pages, token = pages + 1, page.next_token
        if token is None:
            break
    assert (seen, pages) == (sorted(failing), 3)
    whole = control.list_failures(arn, backend=backend)
    assert [f.index for f in whole] == sorted(failing) and whole.next_token is None
    exact = control.list_failures(arn, limit=7, backend=backend)
    assert len(list(exact)) == 7 and exact.next_token is None  # no page after the last one
    with pytest.raises(ConfigurationError, match="next token"):
        control.list_failures(arn, next_token="not-a-token", backend=backend)


def test_list_executions_pages_with_a_next_token_through_equal_start_dates(backend: LocalBackend) -> None:
    done = [dmap.run(fan(), input={"items": items(1)}, backend=backend, name=name()) for _ in range(5)]
    expected = [e.execution_arn for e in control.list_executions(backend=backend)]
    assert sorted(expected) == sorted(e.execution_arn for e in done)

    seen, token = [], None
    while True:
        page = control.list_executions(backend=backend, limit=2, next_token=token)
        seen += [e.execution_arn for e in page]
        token = page.next_token
        if token is None:
            break
    assert seen == expected
    with pytest.raises(ConfigurationError, match="next token"):
        control.list_executions(backend=backend, next_token=control._token("failures", 3))


def test_list_executions_filters_by_status_state_machine_and_redrive_reading_a_bounded_number_per_page(
    backend: LocalBackend, world: _World, tmp_path: Path
) -> None:
    machines = {}
    for machine in ("alpha", "beta"):
        machines[machine] = tmp_path / f"{machine}.json"
        machines[machine].write_text(json.dumps(fan()), "utf-8")
    for number in range(8):
        data = {"items": items(2, failing={1} if number % 3 == 0 else set())}
        dmap.run(str(machines["alpha" if number % 2 else "beta"]), input=data, backend=backend, name=f"x{number}")
    everything = list(control.list_executions(backend=backend))
    failed = [e for e in everything if e.status == "FAILED"]
    assert len(everything) == 8 and len(failed) == 3
    world.fixed = True
    control.redrive_execution(failed[0].execution_arn, backend=backend)
    everything = list(control.list_executions(backend=backend))

    def paged(**filters: Any) -> list[str]:
        arns, token = [], None
        while True:
            page = control.list_executions(backend=backend, limit=2, scan=3, next_token=token, **filters)
            assert len(page) <= 2 and page.scanned <= 3  # bounded: never more than `scan` records read
            arns += [e.execution_arn for e in page]
            token = page.next_token
            if token is None:
                return arns

    def expected(keep: Callable[[Execution], bool]) -> list[str]:
        return [e.execution_arn for e in everything if keep(e)]

    assert paged() == expected(lambda e: True)
    assert paged(status="FAILED") == expected(lambda e: e.status == "FAILED") != []
    assert paged(status="SUCCEEDED", state_machine="alpha") == expected(
        lambda e: e.status == "SUCCEEDED" and e.state_machine_name == "alpha"
    )
    elsewhere = "arn:aws:states:eu-west-1:123456789012:stateMachine:beta"  # any region and account
    assert paged(state_machine=elsewhere) == expected(lambda e: e.state_machine_name == "beta")
    assert paged(redriven=True) == [failed[0].execution_arn]
    assert paged(redriven=False, status="SUCCEEDED") == expected(
        lambda e: e.status == "SUCCEEDED" and not e.redrive_count
    )
    assert paged(status="TIMED_OUT") == []
    short = control.list_executions(backend=backend, limit=2, scan=3, status="TIMED_OUT")
    assert (len(short), short.scanned, short.next_token is not None) == (0, 3, True)  # ends short, goes on later
    with pytest.raises(ConfigurationError, match="status must be one of"):
        control.list_executions(backend=backend, status="DONE")
    with pytest.raises(ConfigurationError, match="not a state machine ARN"):
        control.list_executions(backend=backend, state_machine=elsewhere + ":1")


# -- bugs these tests found: strict xfails until fixed, regression tests after -------------------------


def test_a_concurrency_set_by_update_map_run_is_still_reported_after_the_run_ends(
    backend: LocalBackend, world: _World
) -> None:
    execution = running(backend, fan(max_concurrency=1), {"items": items(3, waiting=True)})
    arn = execution.map_runs[0].map_run_arn
    control.update_map_run(arn, max_concurrency=7, tolerated_failure_count=4, backend=backend)
    world.gate.set()
    finished(execution)

    map_run = control.describe_map_run(arn, backend=backend)

    assert (map_run.max_concurrency, map_run.tolerated_failure_count) == (7, 4)


def test_a_running_map_run_reports_an_unset_tolerance_as_zero_like_aws(backend: LocalBackend) -> None:
    execution = running(backend, fan(max_concurrency=1, tolerated_percentage=50), {"items": items(2, waiting=True)})

    live = control.describe_map_run(execution.map_runs[0].map_run_arn, backend=backend).describe()

    assert (live["toleratedFailureCount"], live["toleratedFailurePercentage"]) == (0, 50.0)


def test_a_redrive_of_a_run_started_with_a_manifest_file_runs_the_rest_of_its_items(
    backend: LocalBackend, world: _World, tmp_path: Path
) -> None:
    (tmp_path / "bucket").mkdir()
    manifest = tmp_path / "bucket" / "items.json"
    manifest.write_text(json.dumps(items(10, waiting=True)), "utf-8")
    execution = start(fan(max_concurrency=2, items_path=None), manifest=str(manifest), backend=backend, name=name())
    wait_for(lambda: world.running() == 2, "two children to run")
    control.stop_execution(execution.execution_arn, backend=backend)
    world.gate.set()
    assert finished(execution).status == "ABORTED"

    redriven = control.redrive_execution(execution.execution_arn, backend=backend, wait=False)
    deadline = time.monotonic() + 3
    while redriven.status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.02)
    if redriven.status == "RUNNING":
        control.stop_execution(execution.execution_arn, backend=backend)  # let its thread end
        finished(redriven)

    assert redriven.status == "SUCCEEDED"
    assert redriven.output == [{"i": i} for i in range(10)]


def test_an_execution_whose_run_state_vanishes_ends_instead_of_running_forever(
    backend: LocalBackend, world: _World
) -> None:
    execution = running(backend, fan(max_concurrency=1), {"items": items(3, waiting=True)})
    wait_for(lambda: world.running() == 1, "the first child")
    backend.store.delete_run(execution.map_runs[0].run_id)  # as if Redis lost the run (flushed, evicted)
    world.gate.set()

    finished(execution)

    assert execution.status == "FAILED"
    assert execution.error == "States.Runtime"
    assert "Map Run does not exist" in (execution.cause or "")
    wait_for(
        lambda: control.describe_execution(execution.execution_arn, backend=backend).status == "FAILED",
        "the journal to record the failure",
    )


@pytest.mark.parametrize(
    "name",
    [
        "describe_execution",
        "list_executions",
        "list_map_runs",
        "describe_map_run",
        "update_map_run",
        "stop_execution",
        "redrive_execution",
        "list_failures",
    ],
)
def test_the_control_api_is_part_of_the_public_dmap_package(name: str) -> None:
    assert getattr(dmap, name) is getattr(control, name)
    assert name in dmap.__all__

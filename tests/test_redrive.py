"""Honest counts and complete redrive on the embedded backend (DESIGN §10).

A Map Run that ends early (failure tolerance, stop) still counts every item its source holds:
the ones it never read are ``pending``. A redrive runs the failed, aborted *and* never-read items,
from the original source read again (a kept list, a file by its absolute path) or from the items
the caller gives again; a source that cannot be read again is refused with
:class:`dmap.ExecutionNotRedrivable`, never redriven over the wrong items.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap import control
from dmap.api import start
from dmap.backends.local import LocalBackend
from dmap.config import Settings


class _World:
    """What the handler sees: items to fail until fixed, one item that holds, and successes per item."""

    def __init__(self) -> None:
        self.fixed = False
        self.failing: set[int] = set()
        self.hold: int | None = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self.ok: dict[int, int] = {}
        self.lock = threading.Lock()


WORLD = _World()
SOURCE = 200
"""Items of a source some of which a run failing early at MaxConcurrency 1 never reads: more than the
children the local pool keeps staged past its permits (:data:`dmap.backends.local.STAGE`)."""


@dmap.task("RedriveWork")
def _work(event: Any, context: dmap.TaskContext) -> Any:
    index = int(event)
    if index == WORLD.hold:
        WORLD.holding.set()
        WORLD.release.wait(30)
    if index in WORLD.failing and not WORLD.fixed:
        raise RuntimeError(f"item {index} failed")
    with WORLD.lock:
        WORLD.ok[index] = WORLD.ok.get(index, 0) + 1
    return index


@pytest.fixture(autouse=True)
def world() -> Iterator[_World]:
    global WORLD
    WORLD = _World()
    yield WORLD
    WORLD.release.set()


@pytest.fixture
def backend(world: _World) -> Iterator[LocalBackend]:
    """A private embedded backend (its own journal, run store and threads)."""
    engine = LocalBackend(Settings(lease_seconds=5))
    yield engine
    world.release.set()
    for thread in threading.enumerate():
        if thread.name == "dmap-execution":
            thread.join(timeout=10)
    engine.close()


def fan(*, max_concurrency: int = 10, **tolerance: float) -> dict[str, Any]:
    """A DISTRIBUTED Map of ``RedriveWork`` over a manifest; ``tolerance``: ToleratedFailureCount=...."""
    state: dict[str, Any] = {
        "Type": "Map",
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "RedriveWork", "End": True}},
        },
        "End": True,
        **tolerance,
    }
    return {"StartAt": "Fan", "States": {"Fan": state}}


def assert_honest(counts: dict[str, int], total: int) -> None:
    """The invariant of a terminal Map Run: every item of the source counted once, none negative."""
    assert counts["total"] == total, counts
    assert all(v >= 0 for v in counts.values()), counts
    assert counts["running"] == 0, counts
    done = counts["succeeded"] + counts["failed"] + counts["timedOut"] + counts["aborted"]
    assert done + counts["pending"] == total, counts


def map_run(arn: str, backend: LocalBackend) -> dmap.MapRun:
    (run,) = control.describe_execution(arn, backend=backend).map_runs
    return run


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.005)


def test_a_redrive_runs_every_item_the_failed_run_never_read(backend: LocalBackend, world: _World) -> None:
    world.failing = {7}
    failed = dmap.run(fan(ToleratedFailurePercentage=0), list(range(500)), backend=backend)
    assert (failed.status, failed.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    first = map_run(failed.execution_arn, backend)
    assert first.status == "FAILED"
    for counts in (first.item_counts, first.execution_counts):
        assert_honest(counts, 500)
        assert counts["failed"] == 1 and counts["pending"] > 0

    world.fixed = True
    redriven = control.redrive_execution(failed.execution_arn, backend=backend)
    assert redriven.status == "SUCCEEDED"
    assert redriven.output == list(range(500))
    again = map_run(failed.execution_arn, backend)
    assert (again.status, again.redrive_count) == ("SUCCEEDED", 1)
    for counts in (again.item_counts, again.execution_counts):
        assert_honest(counts, 500)
        assert counts["succeeded"] == 500
    assert world.ok == {i: 1 for i in range(500)}  # every item ran, none twice


def test_stop_execution_leaves_unread_items_counted_as_pending(
    backend: LocalBackend, world: _World, tmp_path: Path
) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text("".join(f"{i}\n" for i in range(50)), "utf-8")  # a file: the total is not known up front
    world.hold = 5
    execution = start(fan(max_concurrency=1), str(source), backend=backend, name="stopped")
    assert world.holding.wait(20)
    control.stop_execution(execution.execution_arn, backend=backend)
    world.release.set()
    wait_for(lambda: control.describe_execution(execution.execution_arn, backend=backend).status != "RUNNING", "stop")

    stopped = map_run(execution.execution_arn, backend)
    assert stopped.status == "ABORTED"
    for counts in (stopped.item_counts, stopped.execution_counts):
        assert_honest(counts, 50)
        assert counts["pending"] >= 50 - 6  # items 6.. were never started

    redriven = control.redrive_execution(execution.execution_arn, backend=backend)
    assert redriven.status == "SUCCEEDED"
    assert_honest(map_run(execution.execution_arn, backend).item_counts, 50)
    assert sorted(world.ok) == list(range(50))


def test_a_consumed_iterator_is_not_redriven_until_the_items_are_given_again(
    backend: LocalBackend, world: _World
) -> None:
    world.failing = {3}
    failed = dmap.run(fan(ToleratedFailureCount=0, max_concurrency=1), iter(range(SOURCE)), backend=backend)
    assert failed.status == "FAILED"
    first = map_run(failed.execution_arn, backend)
    assert_honest(first.item_counts, SOURCE)  # the rest of the iterator was counted, not guessed
    world.fixed = True

    with pytest.raises(dmap.ExecutionNotRedrivable) as refused:
        control.redrive_execution(failed.execution_arn, backend=backend)
    assert refused.value.arn == failed.execution_arn
    assert "generator" in refused.value.missing or "iterator" in refused.value.missing
    assert control.describe_execution(failed.execution_arn, backend=backend).status == "FAILED"  # untouched

    redriven = control.redrive_execution(failed.execution_arn, backend=backend, manifest=range(SOURCE))
    assert redriven.status == "SUCCEEDED"
    assert_honest(map_run(failed.execution_arn, backend).item_counts, SOURCE)
    assert world.ok == {i: 1 for i in range(SOURCE)}


def test_a_consumed_iterator_whose_items_were_all_read_is_redriven_from_the_stored_inputs(
    backend: LocalBackend, world: _World
) -> None:
    world.failing = {4}
    failing = dmap.run(fan(ToleratedFailureCount=0, max_concurrency=0), (i for i in range(12)), backend=backend)
    assert failing.status == "FAILED"
    world.fixed = True
    redriven = control.redrive_execution(failing.execution_arn, backend=backend)  # nothing left to read
    assert redriven.status == "SUCCEEDED"
    assert_honest(map_run(failing.execution_arn, backend).item_counts, 12)
    assert sorted(world.ok) == list(range(12))


def test_a_local_manifest_is_stored_absolute_and_redriven_from_another_folder(
    backend: LocalBackend, world: _World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "items.json").write_text(json.dumps(list(range(30))), "utf-8")
    monkeypatch.chdir(tmp_path)
    world.failing = {2}
    failed = dmap.run(fan(ToleratedFailureCount=0, max_concurrency=1), "data/items.json", backend=backend)
    assert failed.status == "FAILED"
    assert failed.manifest == str(tmp_path / "data" / "items.json")
    assert_honest(map_run(failed.execution_arn, backend).item_counts, 30)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    world.fixed = True
    redriven = control.redrive_execution(failed.execution_arn, backend=backend)
    assert redriven.status == "SUCCEEDED"
    assert world.ok == {i: 1 for i in range(30)}


def test_a_deleted_manifest_file_is_not_redriven_until_it_is_given_again(
    backend: LocalBackend, world: _World, tmp_path: Path
) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text("".join(f"{i}\n" for i in range(SOURCE)), "utf-8")
    world.failing = {1}
    failed = dmap.run(fan(ToleratedFailureCount=0, max_concurrency=1), source, backend=backend)
    assert failed.status == "FAILED"
    moved = source.rename(tmp_path / "moved.jsonl")
    world.fixed = True

    with pytest.raises(dmap.ExecutionNotRedrivable) as refused:
        control.redrive_execution(failed.execution_arn, backend=backend)
    assert str(source) in refused.value.missing
    with pytest.raises(dmap.ExecutionNotRedrivable):
        control.redrive_execution(failed.execution_arn, backend=backend, manifest=tmp_path / "nope.jsonl")

    redriven = control.redrive_execution(failed.execution_arn, backend=backend, manifest=moved)
    assert redriven.status == "SUCCEEDED"
    assert_honest(map_run(failed.execution_arn, backend).item_counts, SOURCE)
    assert world.ok == {i: 1 for i in range(SOURCE)}


def test_a_source_that_grew_before_the_redrive_fails_the_reader_instead_of_counting_past_its_total(
    backend: LocalBackend, world: _World, tmp_path: Path
) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text("".join(f"{i}\n" for i in range(10)), "utf-8")
    world.failing = {1}
    failed = dmap.run(fan(ToleratedFailureCount=0, max_concurrency=1), source, backend=backend)
    assert failed.status == "FAILED"
    source.write_text("".join(f"{i}\n" for i in range(15)), "utf-8")
    world.fixed = True

    again = control.redrive_execution(failed.execution_arn, backend=backend)
    assert (again.status, again.error) == ("FAILED", "States.ItemReaderFailed")
    assert "changed" in (again.cause or "")
    assert_honest(map_run(failed.execution_arn, backend).item_counts, 10)


def test_a_source_that_shrank_before_the_redrive_fails_the_reader_and_keeps_its_total(
    backend: LocalBackend, world: _World, tmp_path: Path
) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text("".join(f"{i}\n" for i in range(SOURCE)), "utf-8")
    world.failing = {1}
    failed = dmap.run(fan(ToleratedFailureCount=0, max_concurrency=1), source, backend=backend)
    assert failed.status == "FAILED"
    source.write_text("".join(f"{i}\n" for i in range(5)), "utf-8")
    world.fixed = True

    again = control.redrive_execution(failed.execution_arn, backend=backend)
    assert (again.status, again.error) == ("FAILED", "States.ItemReaderFailed")
    assert_honest(map_run(failed.execution_arn, backend).item_counts, SOURCE)


def test_a_redrive_while_another_caller_holds_the_execution_is_refused_and_changes_nothing(
    backend: LocalBackend, world: _World
) -> None:
    from dmap import identity

    world.failing = {3}
    failed = dmap.run(fan(ToleratedFailureCount=0), list(range(20)), backend=backend)
    assert failed.status == "FAILED"
    owner = identity.claims(backend)
    assert owner.claim(failed.execution_arn)  # another redrive (or a same-name run) got there first
    try:
        with pytest.raises(dmap.InvalidStateError, match="being run by another process"):
            control.redrive_execution(failed.execution_arn, backend=backend)
        kept = control.describe_execution(failed.execution_arn, backend=backend)
        assert (kept.status, kept.redrive_count) == ("FAILED", 0)
    finally:
        owner.release(failed.execution_arn)
    world.fixed = True
    redriven = control.redrive_execution(failed.execution_arn, backend=backend)
    assert (redriven.status, redriven.redrive_count) == ("SUCCEEDED", 1)

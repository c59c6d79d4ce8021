"""Stateful property test of the Map Run counting invariant (DESIGN §10), on both run stores.

Hypothesis drives real executions through the real coordinator and run store: it starts Map Runs
over a list, a one-shot generator or a JSONL file (with or without ItemBatcher and tolerances),
chooses each item's fate (succeed, fail until fixed, stop the execution, kill the coordinator),
fixes and breaks items, redrives, and resumes a killed coordinator. Children run inline in the
coordinator's thread, so a "kill" (a BaseException raised by the handler) stops the coordinator
mid-dispatch with a child RUNNING and granted children unstarted, as a crash would.

After every step that ends a Map Run, for items and children alike: ``total`` is what the source
holds, ``succeeded + failed + timedOut + aborted + pending = total``, ``running = 0``, no count
is negative, and SUCCEEDED means every item succeeded or was a tolerated failure. Succeeded items
are never lost by a redrive, and a redrive that is refused names a source that really is needed.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import dmap
from dmap import control, counting
from dmap.api import prepare
from dmap.backends.local import LocalBackend
from dmap.child import run_child
from dmap.config import Settings
from dmap.records import Execution, ExecutionStatus, new_execution
from dmap.store import Lease, RunStore
from dmap.store.memory import MemoryRunStore
from dmap.store.redis import RedisRunStore

EXAMPLES = 200
FATES = ("ok", "ok", "ok", "fail", "stop", "kill")


class Killed(BaseException):
    """The coordinator's process dies: nothing in dmap catches it, nothing is cleaned up."""


class _World:
    """What the handler sees: each item's fate, and which items it ran to success."""

    def __init__(self) -> None:
        self.fates: dict[int, str] = {}
        self.ok: set[int] = set()
        self.stop: Callable[[], None] = lambda: None


WORLD = _World()


@dmap.task("CountingWork")
def _work(event: Any, context: dmap.TaskContext) -> Any:
    items = [int(i) for i in event["Items"]] if isinstance(event, dict) else [int(event)]
    fates = [WORLD.fates.get(i, "ok") for i in items]
    for i in items:  # stop and kill happen once: the run after them goes on
        if WORLD.fates.get(i) in ("stop", "kill"):
            WORLD.fates[i] = "ok"
    if "kill" in fates:
        raise Killed()
    if "stop" in fates:
        WORLD.stop()
    if "fail" in fates:
        raise RuntimeError(f"items {items} failed")
    WORLD.ok.update(items)
    return items


class _InlineBackend(LocalBackend):
    """The local backend on any run store, running every child inline (a kill stops dispatch mid-way)."""

    def __init__(self, store: RunStore) -> None:
        super().__init__(Settings(lease_seconds=0.05, max_attempts=3), threads=1)
        self.store = store

    def dispatch(self, plan: Any, leases: Sequence[Lease]) -> None:
        for lease in leases:
            run_child(self.store, plan, lease.child, lease.token, engine=self)


def _definition(concurrency: int, batch: int | None, count: int | None, percentage: float | None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Map",
        "MaxConcurrency": concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "CountingWork", "End": True}},
        },
        "End": True,
    }
    if batch is not None:
        state["ItemBatcher"] = {"MaxItemsPerBatch": batch}
    if count is not None:
        state["ToleratedFailureCount"] = count
    if percentage is not None:
        state["ToleratedFailurePercentage"] = percentage
    return {"StartAt": "Fan", "States": {"Fan": state}}


class CountingMachine(RuleBasedStateMachine):
    """Runs, fates, fixes, stops, kills, resumes and redrives; checks the counts after each end."""

    make_store: Callable[[], RunStore] = MemoryRunStore

    def __init__(self) -> None:
        super().__init__()
        global WORLD
        WORLD = _World()
        WORLD.stop = self._stop
        self.engine = _InlineBackend(type(self).make_store())
        self.tmp = Path(tempfile.mkdtemp(prefix="dmap-counting-"))
        self.execution: Execution | None = None
        self.items = 0
        self.source = "list"
        self.batch: int | None = None
        self.tolerance: tuple[int | None, float | None] = (None, None)
        self.killed = False
        self.succeeded_before = 0

    def teardown(self) -> None:
        self.engine.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop(self) -> None:
        if self.execution is not None:
            control.stop_execution(self.execution.execution_arn, backend=self.engine)

    def _manifest(self, fresh: bool = False) -> Any:
        """The item source; ``fresh`` gives the same items as a list (what a caller gives again)."""
        if fresh or self.source == "list":
            return list(range(self.items))
        if self.source == "generator":
            return (i for i in range(self.items))
        path = self.tmp / "items.jsonl"
        path.write_text("".join(f"{i}\n" for i in range(self.items)), "utf-8")
        return str(path)

    def _journal_execution(self) -> Execution:
        assert self.execution is not None
        found = self.engine.journal.execution(self.execution.execution_arn)
        assert found is not None
        return found  # type: ignore[no-any-return]

    def _ran(self, call: Callable[[], Any]) -> None:
        """Run one coordinator call; a kill leaves the execution RUNNING for :meth:`resume`."""
        try:
            call()
        except Killed:
            self.killed = True
            return
        self.killed = False
        self._check_terminal()

    # -- rules ----------------------------------------------------------------------------------

    @precondition(lambda self: not self.killed)
    @rule(
        items=st.integers(0, 18),
        source=st.sampled_from(["list", "generator", "file"]),
        concurrency=st.integers(0, 4),
        batch=st.sampled_from([None, None, 1, 3]),
        count=st.sampled_from([None, 0, 1, 3]),
        percentage=st.sampled_from([None, 0.0, 20.0, 50.0]),
        fates=st.lists(st.sampled_from(FATES), max_size=18),
    )
    def run(
        self,
        items: int,
        source: str,
        concurrency: int,
        batch: int | None,
        count: int | None,
        percentage: float | None,
        fates: list[str],
    ) -> None:
        self.items, self.source, self.batch, self.tolerance = items, source, batch, (count, percentage)
        WORLD.fates = dict(enumerate(fates[:items]))
        WORLD.ok = set()
        self.succeeded_before = 0
        self.machine = prepare(_definition(concurrency, batch, count, percentage))
        self.execution = new_execution("counting", f"x-{uuid.uuid4().hex[:12]}", {})
        execution, manifest = self.execution, self._manifest()
        self._ran(lambda: self.engine.run(self.machine, execution, manifest=manifest))

    @rule(fates=st.lists(st.sampled_from(FATES), max_size=18))
    def set_fates(self, fates: list[str]) -> None:
        WORLD.fates = dict(enumerate(fates[: self.items]))

    @rule()
    def fix(self) -> None:
        WORLD.fates = {}

    @precondition(lambda self: self.killed)
    @rule()
    def resume(self) -> None:
        """The coordinator is started again with the same execution (``dmap run`` again, same name)."""
        execution = self._journal_execution()
        assert execution.status == ExecutionStatus.RUNNING
        self._ran(lambda: self.engine.run(self.machine, execution, manifest=self._manifest(fresh=True)))

    @precondition(
        lambda self: (
            not self.killed
            and self.execution is not None
            and self._journal_execution().status in (ExecutionStatus.FAILED, ExecutionStatus.ABORTED)
        )
    )
    @rule()
    def redrive(self) -> None:
        assert self.execution is not None
        arn = self.execution.execution_arn
        before = self._journal_execution()
        (map_run,) = before.map_runs
        self.succeeded_before = map_run.item_counts["succeeded"]
        try:
            self._ran(lambda: control.redrive_execution(arn, backend=self.engine))
            return
        except dmap.ExecutionNotRedrivable as exc:
            store, run = self.engine.store, map_run.run_id
            totals = store.totals(run)
            assert self.source == "generator", exc  # a list is kept, a file is still there
            assert totals is None or store.cursor(run)[2] < totals[0], "refused a redrive that needs no source"
            assert self._journal_execution().status == before.status  # a refusal changes nothing
        self._ran(lambda: control.redrive_execution(arn, backend=self.engine, manifest=self._manifest(fresh=True)))

    # -- the invariant ------------------------------------------------------------------------

    @invariant()
    def nothing_is_negative(self) -> None:
        if self.execution is None:
            return
        for map_run in self._journal_execution().map_runs:
            for counts in (map_run.item_counts, map_run.execution_counts):
                assert min(counts.values()) >= 0, counts

    def _check_terminal(self) -> None:
        execution = self._journal_execution()
        assert execution.status != ExecutionStatus.RUNNING
        (map_run,) = execution.map_runs
        assert map_run.status != "RUNNING"
        children = self.items if self.batch is None else math.ceil(self.items / self.batch)
        for counts, total in ((map_run.item_counts, self.items), (map_run.execution_counts, children)):
            assert counts["total"] == total, (counts, total)
            assert min(counts.values()) >= 0, counts
            assert counts["running"] == 0, counts
            done = counts["succeeded"] + counts["failed"] + counts["timedOut"] + counts["aborted"]
            assert done + counts["pending"] == total, counts
        items = map_run.item_counts
        assert items["succeeded"] >= self.succeeded_before, "a redrive lost succeeded items"
        assert (execution.status == ExecutionStatus.SUCCEEDED) == (map_run.status == "SUCCEEDED"), execution
        if map_run.status == "SUCCEEDED":
            assert items["pending"] == items["aborted"] == 0, items
            failed = items["failed"] + items["timedOut"]
            count, percentage = self.tolerance
            if count is None and percentage is None:
                assert failed == 0, items
            if count is not None:
                assert failed <= count or (percentage is not None and failed * 100 <= percentage * self.items)
            if percentage is not None and count is None:
                assert failed * 100 <= percentage * self.items, items
            assert len(WORLD.ok) + failed >= self.items, (WORLD.ok, items)  # every item ran


def _run_machine(make_store: Callable[[], RunStore]) -> float:
    machine = type("Machine", (CountingMachine,), {"make_store": staticmethod(make_store)})
    started = time.perf_counter()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            deadline=None,
            stateful_step_count=8,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
    return time.perf_counter() - started


@pytest.fixture(autouse=True)
def count_before_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the early total count in the coordinator's thread, before dispatch.

    In the background it races the inline children: whether a tolerance abort comes before a "kill"
    fate would depend on thread timing, and Hypothesis needs every sequence to replay the same way.
    """
    monkeypatch.setattr(counting.TotalCounter, "start", lambda self: self._run())


def test_map_run_counts_add_up_after_every_end_on_the_memory_store() -> None:
    elapsed = _run_machine(MemoryRunStore)
    print(f"memory store: {EXAMPLES} examples in {elapsed:.1f}s")


@pytest.mark.integration
def test_map_run_counts_add_up_after_every_end_on_the_redis_store(real_redis: Any) -> None:
    elapsed = _run_machine(lambda: RedisRunStore(real_redis, prefix=f"cm{uuid.uuid4().hex[:8]}"))
    print(f"redis store: {EXAMPLES} examples in {elapsed:.1f}s")

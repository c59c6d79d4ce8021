"""The local backend's own machinery: held run leases, its worker pool, and the semantics they must keep.

The local backend runs children on threads of this process with run leases the memory store holds
until completion (no heartbeat, no expiry). These tests pin what that must not change: a Task's
TimeoutSeconds still fails it with ``States.Timeout`` and frees its slot, a child outliving the
configured lease runs once, an abort stops the children still queued, a child whose thread is
unwound by a BaseException runs again, and the counts add up.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dmap
from dmap import control
from dmap.api import start
from dmap.backends import local
from dmap.backends.local import LocalBackend, Workers
from dmap.config import Settings
from dmap.store import ChildSpec, RunConfig
from dmap.store.memory import HELD, MemoryRunStore

COUNT_KEYS = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total")


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    """A private local backend whose leases would expire in 0.2 s if anything renewed or reclaimed them."""
    made = LocalBackend(Settings(lease_seconds=0.2), threads=4)
    yield made
    made.close()


@pytest.fixture
def handler(register_handler: Any) -> Callable[[Callable[[Any, dmap.TaskContext], Any]], str]:
    """Register handlers under unique names; unregistered afterwards."""
    return lambda fn: str(register_handler("LocalBackend", fn))


def fan(resource: str, *, task: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A DISTRIBUTED Map over ``$.items`` whose child is one Task state."""
    state = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": resource, "End": True, **(task or {})}},
        },
        "End": True,
        **fields,
    }
    return {"StartAt": "Fan", "States": {"Fan": state}}


def settled(counts: dict[str, int]) -> None:
    """No count is negative, nothing runs, and the statuses add up to the total."""
    assert min(counts.values()) >= 0, counts
    assert counts["running"] == 0, counts
    assert sum(counts[k] for k in COUNT_KEYS[:6]) == counts["total"], counts


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.005)


def test_a_timed_out_task_fails_with_states_timeout_and_frees_its_slot(
    backend: LocalBackend, handler: Callable[..., str]
) -> None:
    def work(event: Any, context: dmap.TaskContext) -> Any:
        if event["i"] == 0:
            while not context.cancelled:  # hangs until the interpreter gives up on it
                time.sleep(0.01)
        return event

    definition = fan(handler(work), task={"TimeoutSeconds": 1}, MaxConcurrency=1, ToleratedFailureCount=1)
    execution = dmap.run(definition, input={"items": [{"i": i} for i in range(5)]}, backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    failed, *rest = execution.output
    assert (failed["Status"], failed["Error"]) == ("FAILED", "States.Timeout")
    assert rest == [{"i": i} for i in range(1, 5)]  # MaxConcurrency 1: they ran after its slot came back
    counts = execution.map_runs[0].item_counts
    assert (counts["failed"], counts["succeeded"]) == (1, 4)
    settled(counts)


def test_a_child_running_longer_than_the_lease_runs_once(backend: LocalBackend, handler: Callable[..., str]) -> None:
    calls: Counter[int] = Counter()

    def work(event: Any, context: dmap.TaskContext) -> Any:
        calls[event["i"]] += 1
        time.sleep(0.6)  # three lease lengths, and no heartbeat renews it
        return event

    execution = dmap.run(fan(handler(work)), input={"items": [{"i": i} for i in range(3)]}, backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert calls == Counter(range(3))
    counts = backend.store.counts(execution.map_runs[0].run_id)
    assert (counts.reclaimed, counts.duplicates) == (0, 0)


def test_stopping_a_run_aborts_the_children_still_queued_and_the_counts_add_up(
    backend: LocalBackend, handler: Callable[..., str]
) -> None:
    gate, started = threading.Event(), Counter[int]()

    def work(event: Any, context: dmap.TaskContext) -> Any:
        started[event["i"]] += 1
        gate.wait(10)
        return event

    # MaxConcurrency 0 grants a window of children at once: 4 threads run, the rest wait in the queue.
    data = {"items": [{"i": i} for i in range(100)]}
    execution = start(fan(handler(work)), input=data, backend=backend, name=f"stop-{uuid.uuid4().hex[:8]}")
    wait_for(lambda: sum(started.values()) == 4, "the four threads to run a child each")

    control.stop_execution(execution.execution_arn, backend=backend)
    gate.set()
    wait_for(lambda: execution.status != "RUNNING", "the execution to end")

    assert execution.status == "ABORTED"
    assert sum(started.values()) == 4  # no queued child started after the stop
    counts = execution.map_runs[0].item_counts
    assert counts["succeeded"] <= 4
    assert counts["aborted"] + counts["pending"] == 100 - counts["succeeded"]
    settled(counts)


def test_blocked_children_fill_every_thread_with_no_more_than_queued_ahead_granted_behind_them(
    handler: Callable[..., str],
) -> None:
    gate, running = threading.Event(), Counter[int]()

    def work(event: Any, context: dmap.TaskContext) -> Any:
        running[event["i"]] += 1
        gate.wait(20)
        return event

    engine = LocalBackend(threads=64)
    try:
        data = {"items": [{"i": i} for i in range(300)]}
        execution = start(
            fan(handler(work), MaxConcurrency=200), input=data, backend=engine, name=f"q-{uuid.uuid4().hex[:8]}"
        )
        wait_for(lambda: sum(running.values()) == 64, "every thread to run a blocked child")
        run_id = execution.map_runs[0].run_id
        granted = 64 + local.QUEUED_AHEAD  # not MaxConcurrency 200, nor two per thread (128)
        wait_for(lambda: engine.store.counts(run_id).leases == granted, f"{granted} children granted")
        time.sleep(0.2)
        assert engine.store.counts(run_id).leases == granted
        gate.set()
        wait_for(lambda: execution.status != "RUNNING", "the execution to end")
    finally:
        gate.set()
        engine.close()

    assert execution.status == "SUCCEEDED"
    assert running == Counter(range(300))
    settled(execution.map_runs[0].item_counts)


def test_room_held_back_by_the_queue_asks_to_be_woken_by_the_next_start_but_not_when_the_permits_are_out() -> None:
    from dmap.child import ChildPlan

    engine = LocalBackend(threads=64)
    try:
        plan = ChildPlan("r", "arn:aws:states:local:000000000000:mapRun:m/l:r", "m", "l", {})
        engine.store.create_run("r", RunConfig(max_concurrency=100))
        pending = [ChildSpec(i, i, 1, "{}", i + 1) for i in range(200)]
        engine._inflight["r"] = [60, 0, 60]  # 60 running, none queued: 40 permits left, 32 may queue
        assert engine.room(plan, pending) == local.QUEUED_AHEAD
        assert "r" in engine._starved  # the queue held it back: a thread's start must wake it
        engine._starved.clear()
        engine._inflight["r"] = [90, 0, 90]  # 10 permits left: the permits hold it back
        assert engine.room(plan, pending) == 10 + local.STAGE  # and the store may stage more past them
        assert engine._offered["r"] == [2] * 10  # only the 10 it grants are charged to the pool
        assert "r" not in engine._starved  # a finish frees a permit and wakes the coordinator itself
    finally:
        engine.close()


class _Unwound(BaseException):
    """Unwinds a worker thread the way nothing in dmap catches."""


def test_a_child_whose_thread_is_unwound_runs_again_and_the_thread_survives(
    backend: LocalBackend, handler: Callable[..., str]
) -> None:
    calls: Counter[int] = Counter()

    def work(event: Any, context: dmap.TaskContext) -> Any:
        calls[event["i"]] += 1
        if event["i"] == 1 and calls[1] == 1:
            raise _Unwound()
        return event

    definition = fan(handler(work), MaxConcurrency=1)
    execution = dmap.run(definition, input={"items": [{"i": i} for i in range(3)]}, backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == [{"i": i} for i in range(3)]
    assert calls == Counter({0: 1, 1: 2, 2: 1})
    counts = backend.store.counts(execution.map_runs[0].run_id)
    assert counts.reclaimed == 1
    settled(counts.items.as_dict())


def test_a_held_lease_never_expires_and_is_released_by_complete_or_renew() -> None:
    now = [0.0]
    store = MemoryRunStore(clock=lambda: now[0])
    store.create_run("r", RunConfig(max_concurrency=2, tolerated_failure_count=10, max_attempts=1))
    specs = [ChildSpec(i, i, 1, f"{i}", i + 1) for i in range(3)]
    a, b = store.acquire("r", specs, dispatch_lease_ms=1000).leases
    assert store.start("r", a.child, a.token, lease_ms=HELD).outcome == "run"
    assert store.start("r", b.child, b.token, lease_ms=HELD).outcome == "run"

    now[0] = 1e9  # far past any lease
    acquired = store.acquire("r", specs[2:], dispatch_lease_ms=1000)
    assert (acquired.leases, acquired.reclaimed, acquired.wait_ms) == ([], 0, -1)  # both permits still held

    store.renew("r", [(b.child, b.token)], lease_ms=1)  # how a held lease is let go (its thread died)
    now[0] += 1
    acquired = store.acquire("r", specs[2:], dispatch_lease_ms=1000)
    assert (acquired.reclaimed, [lease.child for lease in acquired.leases]) == (1, [2])  # its permit came back
    counts = store.counts("r")
    assert (counts.executions.running, counts.executions.failed, counts.leases) == (1, 1, 2)


def test_the_worker_pool_starts_threads_only_for_jobs_no_idle_thread_can_take() -> None:
    pool = Workers(3, name="test-pool")
    done: list[int] = []
    try:
        pool.submit([lambda: done.append(1)])
        wait_for(lambda: done == [1] and pool._idle == 1, "the first job, and its thread to wait for more")
        pool.submit([lambda: done.append(2)])  # the idle thread takes it
        wait_for(lambda: done == [1, 2], "the second job")
        assert pool._threads == 1

        gate = threading.Event()
        pool.submit([gate.wait for _ in range(5)] + [lambda: done.append(3)])
        wait_for(lambda: pool._threads == 3, "the pool to reach its limit")
        assert pool._threads == 3 and 3 not in done  # queued behind three blocked jobs
        gate.set()
        wait_for(lambda: 3 in done, "the queued job")
    finally:
        pool.close()
    wait_for(lambda: pool._threads == 0, "the threads to end")


def test_threads_take_staged_children_with_the_permits_they_free_never_past_max_concurrency(
    backend: LocalBackend, handler: Callable[..., str]
) -> None:
    lock, running, peak, seen = threading.Lock(), [0], [0], Counter[int]()

    def work(event: Any, context: dmap.TaskContext) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            seen[event] += 1
        time.sleep(0.001)
        with lock:
            running[0] -= 1
        return event

    store = backend.store
    took = Counter[bool]()
    step_take = store.step_take

    def counted(*args: Any, **kwargs: Any) -> Any:  # the store's own take, counted
        out = step_take(*args, **kwargs)
        took[out[1] is not None] += 1
        return out

    store.step_take = counted  # type: ignore[method-assign]
    execution = dmap.run(fan(handler(work), MaxConcurrency=3), input={"items": list(range(300))}, backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == list(range(300)) and seen == Counter(range(300))  # each item once
    assert peak[0] <= 3  # a take is a grant: never past MaxConcurrency
    assert took[True] > 200  # most children came to a thread that had just finished one, not from the coordinator
    counts = store.counts(execution.map_runs[0].run_id)
    assert (counts.executions.succeeded, counts.executions.running, counts.leases) == (300, 0, 0)

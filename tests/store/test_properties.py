"""Property test: random interleavings of the semaphore's operations never lose or double-count a child.

A program of acquire / start / renew / complete / expire steps runs against a store; every
message ever dispatched stays deliverable, so starts and completions may come late, twice, or from
a superseded attempt (redelivery, zombies). After every step: never more leases than permits,
counts equal the statuses, no child recorded twice. At the end every child is driven to a terminal
state through the normal path only (acquire -> start -> complete), which fails if one was lost.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmap.store import RUN, WORKER_LOST_ERROR, ChildSpec, ChildStatus, RunConfig, RunStore
from dmap.store.memory import MemoryRunStore
from dmap.store.redis import RedisRunStore

CHILDREN = 8
PERMITS = 3
LONG_MS = 60_000
TERMINAL = [ChildStatus.SUCCEEDED, ChildStatus.FAILED, ChildStatus.TIMED_OUT, ChildStatus.ABORTED]

Step = tuple[Any, ...]
steps = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "acquire", "start", "start", "complete", "expire", "expire", "renew"]),
        st.integers(0, 63),
        st.sampled_from(TERMINAL),
    ),
    max_size=60,
)


def _items(child: int) -> int:
    return 1 + child % 3


def _spec(child: int) -> ChildSpec:
    first = sum(_items(c) for c in range(child))
    return ChildSpec(child, first, _items(child), json.dumps({"child": child}), first + _items(child))


class _Harness:
    """Runs a program against one store and checks the invariants."""

    def __init__(self, store: RunStore, advance: Callable[[], None]) -> None:
        self.store = store
        self.advance = advance
        self.run = "prop"
        store.create_run(
            self.run,
            RunConfig(PERMITS, tolerated_failure_count=10**6, tolerated_failure_percentage=100, max_attempts=2),
        )
        self.deliveries: list[tuple[int, str]] = []  # every (child, token) ever dispatched
        self.started: set[tuple[int, str]] = set()
        self.recorded: dict[int, str] = {}

    def acquire(self, n: int) -> None:
        next_child = self.store.cursor(self.run)[1]
        offered = [_spec(c) for c in range(next_child, min(CHILDREN, next_child + n))]
        got = self.store.acquire(self.run, offered, dispatch_lease_ms=LONG_MS)
        assert got.granted_new <= len(offered)
        self.deliveries += [(lease.child, lease.token) for lease in got.leases]

    def start(self, child: int, token: str) -> bool:
        started = self.store.start(self.run, child, token, lease_ms=LONG_MS, worker="w:1")
        if started.outcome == RUN:
            assert (started.first, started.items) == (_spec(child).first, _items(child))
            self.started.add((child, token))
            return True
        return False

    def complete(self, child: int, token: str, status: ChildStatus) -> None:
        rec = json.dumps({"Child": child, "Status": status.name, "Error": "E" if status.value > 2 else ""})
        done = self.store.complete(self.run, child, token, status, rec)
        if done.recorded:
            assert child not in self.recorded, f"child {child} recorded twice"
            self.recorded[child] = rec

    def step(self, step: Step) -> None:
        name = step[0]
        if name == "acquire":
            self.acquire(step[1] % 4)
            return
        if not self.deliveries:
            return
        child, token = self.deliveries[step[1] % len(self.deliveries)]
        if name == "start":
            self.start(child, token)
        elif name == "renew":
            self.store.renew(self.run, [(child, token)], lease_ms=LONG_MS)
        elif name == "complete":
            self.complete(child, token, step[2])
        elif self.store.renew(self.run, [(child, token)], lease_ms=1) == [True]:
            self.advance()  # the worker holding this lease stops heartbeating

    def check(self) -> list[ChildStatus]:
        counts = self.store.counts(self.run)
        assert counts.leases <= PERMITS
        statuses = self.store.statuses(self.run, 0, CHILDREN)
        granted = self.store.cursor(self.run)[1]
        assert all(s == ChildStatus.PENDING for s in statuses[granted:])
        for status, field in ((ChildStatus.RUNNING, "running"), *((s, _field(s)) for s in TERMINAL)):
            children = [c for c, s in enumerate(statuses) if s == status]
            assert getattr(counts.executions, field) == len(children), field
            assert getattr(counts.items, field) == sum(_items(c) for c in children), field
        assert counts.executions.total == granted
        assert counts.executions.pending == sum(1 for s in statuses[:granted] if s == ChildStatus.PENDING)
        return statuses

    def drive_to_the_end(self) -> None:
        for _ in range(10 * CHILDREN):
            statuses = self.check()
            if all(s.terminal for s in statuses):
                return
            self.acquire(CHILDREN)
            # Every dispatched message is delivered at last: for a finished child that returns STALE
            # and drops a leftover lease of a superseded attempt.
            for child, token in list(self.deliveries):
                # Only a token that holds its lease may finish a child here: a lost child (neither
                # leased nor queued for redo) then never finishes and the test fails.
                holds = (child, token) in self.started and self.store.renew(
                    self.run, [(child, token)], lease_ms=LONG_MS
                )
                if self.start(child, token) or holds == [True]:
                    self.complete(child, token, ChildStatus.SUCCEEDED)
        raise AssertionError(f"children never finished: {self.check()}")

    def verify_the_end(self) -> None:
        statuses = self.check()
        assert self.store.set_total(self.run, items=sum(map(_items, range(CHILDREN))), children=CHILDREN) is False
        counts = self.store.counts(self.run)
        assert (counts.executions.pending, counts.executions.running, counts.leases) == (0, 0, 0)
        assert counts.items.pending == 0
        records = self.store.take_results(self.run, 0, CHILDREN + 1)
        assert [json.loads(r)["Child"] for r in records] == list(range(CHILDREN))
        for child, rec in enumerate(records):
            if child in self.recorded:
                assert rec == self.recorded[child]
            else:  # the store gave up on it: its workers kept dying
                assert json.loads(rec)["Error"] == WORKER_LOST_ERROR
                assert statuses[child] == ChildStatus.FAILED
        failed = [json.loads(r)["Child"] for r in self.store.failures(self.run)]
        assert failed == [c for c, s in enumerate(statuses) if s.value > 2]


def _field(status: ChildStatus) -> str:
    return {"SUCCEEDED": "succeeded", "FAILED": "failed", "TIMED_OUT": "timedOut", "ABORTED": "aborted"}[status.name]


def _play(harness: _Harness, program: list[Step]) -> None:
    for step in program:
        harness.step(step)
        harness.check()
    harness.drive_to_the_end()
    harness.verify_the_end()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_the_memory_store_never_loses_or_double_counts_a_child(program: list[Step]) -> None:
    now = [0.0]

    def advance() -> None:
        now[0] += 0.002

    _play(_Harness(MemoryRunStore(clock=lambda: now[0]), advance), program)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(program=steps)
def test_the_redis_scripts_never_lose_or_double_count_a_child(any_redis: Any, program: list[Step]) -> None:
    store = RedisRunStore(any_redis, prefix=f"prop{uuid.uuid4().hex[:8]}")
    _play(_Harness(store, lambda: time.sleep(0.003)), program)
    store.delete_run("prop")

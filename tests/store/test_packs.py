"""Packs of children: one store call per child (``step``) and giving unstarted pack-mates back (``release``).

``step`` is checked on every store (the in-process one composes renew, complete and start; Redis
runs ``step.lua``); ``release`` only means something where packs exist, on Redis (fakeredis[lua]
and a real redis-server through ``any_redis``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from dmap.store import ABORTED, RUN, STALE, ChildStatus, Completed, Done, RunConfig, RunStore, release, step
from dmap.store.redis import RedisRunStore

from .conftest import LONG_MS, let_leases_expire, record, specs


def _pack(store: RunStore, run: str, count: int) -> list[tuple[int, str]]:
    granted = store.acquire(run, specs(0, count), dispatch_lease_ms=LONG_MS).leases
    return [(lease.child, lease.token) for lease in granted]


def test_a_pack_runs_with_one_step_per_child_and_counts_like_separate_calls(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=3)
    pack = _pack(store, run, 3)
    done, started, renewed = step(store, run, done=None, start=pack[0], lease_ms=LONG_MS, worker="w", renew=pack[1:])
    assert done is None and renewed == [True, True]
    assert started is not None and started.outcome == RUN and started.first == 0
    for i in range(1, 3):
        result = Done(pack[i - 1][0], pack[i - 1][1], ChildStatus.SUCCEEDED, record(i - 1))
        completed, started, renewed = step(store, run, done=result, start=pack[i], lease_ms=LONG_MS, worker="w")
        assert completed is not None and completed.recorded and not completed.aborted
        assert started is not None and started.outcome == RUN and started.first == i and renewed == []
        assert store.counts(run).executions.running == 1
    completed, started, _ = step(
        store, run, done=Done(*pack[2], ChildStatus.SUCCEEDED, record(2)), start=None, lease_ms=LONG_MS
    )
    assert completed is not None and completed.recorded and started is None
    counts = store.counts(run)
    assert (counts.executions.succeeded, counts.executions.running, counts.leases) == (3, 0, 0)
    assert store.acquire(run, specs(3, 5), dispatch_lease_ms=LONG_MS).granted_new == 3  # every permit came back


def test_a_step_is_fenced_like_start_and_complete(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    pack = _pack(store, run, 2)
    stale = (pack[1][0], "1-not-the-token")
    _, started, renewed = step(store, run, done=None, start=stale, lease_ms=LONG_MS, renew=[stale])
    assert started is not None and started.outcome == STALE and renewed == [False]
    _, started, _ = step(store, run, done=None, start=pack[0], lease_ms=LONG_MS)
    assert started is not None and started.outcome == RUN
    _, again, _ = step(store, run, done=None, start=pack[0], lease_ms=LONG_MS)  # a redelivered message
    assert again is not None and again.outcome == STALE
    first = Done(*pack[0], ChildStatus.SUCCEEDED, record(0))
    completed, _, _ = step(store, run, done=first, start=None, lease_ms=LONG_MS)
    assert completed is not None and completed.recorded
    completed, _, _ = step(store, run, done=first, start=None, lease_ms=LONG_MS)  # a second completion
    assert completed is not None and not completed.recorded
    assert store.counts(run).duplicates == 1 and store.counts(run).executions.succeeded == 1


def test_a_completion_over_the_tolerance_aborts_the_next_child_of_the_pack(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=2, tolerated_failure_count=0)
    pack = _pack(store, run, 2)
    step(store, run, done=None, start=pack[0], lease_ms=LONG_MS)
    failed = Done(*pack[0], ChildStatus.FAILED, record(0, "FAILED"))
    completed, started, _ = step(store, run, done=failed, start=pack[1], lease_ms=LONG_MS)
    assert completed is not None and completed.recorded and completed.aborted
    assert started is not None and started.outcome == ABORTED
    counts = store.counts(run).executions
    assert (counts.failed, counts.aborted, counts.running) == (1, 1, 0)


def test_acquire_reports_the_leases_held_and_the_permits(any_redis: Any) -> None:
    store = RedisRunStore(any_redis, prefix=f"t{uuid.uuid4().hex[:8]}")
    store.create_run("r", RunConfig(max_concurrency=4))
    got = store.acquire("r", specs(0, 3), dispatch_lease_ms=LONG_MS)
    assert (got.held, got.permits) == (3, 4)
    store.update_config("r", max_concurrency=0)
    got = store.acquire("r", specs(3, 2), dispatch_lease_ms=LONG_MS)
    assert (got.held, got.permits) == (5, 10_000)


def test_a_busy_worker_gives_unstarted_pack_mates_back_and_they_run_once(any_redis: Any) -> None:
    store = RedisRunStore(any_redis, prefix=f"t{uuid.uuid4().hex[:8]}")
    store.create_run("r", RunConfig(max_concurrency=3))
    pack = _pack(store, "r", 3)
    step(store, "r", done=None, start=pack[0], lease_ms=LONG_MS, renew=pack[1:])
    store.wait("r", 0)  # drop the grant's wake token
    assert release(store, "r", pack) == 2  # the running child stays
    assert store.wait("r", 0) == "1"  # the coordinator learns of the freed permits at once
    assert store.counts("r").leases == 1 and store.counts("r").executions.running == 1
    again = store.acquire("r", specs(3, 5), dispatch_lease_ms=LONG_MS)
    assert [lease.child for lease in again.leases] == [1, 2]  # given back first, no new child past the limit
    assert [lease.attempt for lease in again.leases] == [1, 1]  # a busy worker is not a lost one
    assert again.granted_new == 0
    _, old, _ = step(store, "r", done=None, start=pack[1], lease_ms=LONG_MS)
    assert old is not None and old.outcome == STALE  # the old token never starts it
    _, new, _ = step(store, "r", done=None, start=(1, again.leases[0].token), lease_ms=LONG_MS)
    assert new is not None and new.outcome == RUN
    assert release(store, "r", [(1, again.leases[0].token)]) == 0  # started: never given back


def test_release_ignores_stale_tokens_finished_children_and_expired_leases(any_redis: Any) -> None:
    store = RedisRunStore(any_redis, prefix=f"t{uuid.uuid4().hex[:8]}")
    store.create_run("r", RunConfig(max_concurrency=3))
    leases = store.acquire("r", specs(0, 3), dispatch_lease_ms=1).leases
    assert release(store, "r", [(0, "1-other")]) == 0
    let_leases_expire()
    store.acquire("r", [], dispatch_lease_ms=LONG_MS)  # reclaims: 0-2 re-granted with new tokens
    assert release(store, "r", [(lease.child, lease.token) for lease in leases]) == 0
    assert release(store, "r", []) == 0


def test_staged_children_hold_no_permit_and_a_worker_takes_one_with_the_permit_it_frees(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    r = make_run(max_concurrency=2)
    take = store.step_take  # type: ignore[attr-defined]  # both stores that stage (memory: the local pool's threads)
    got = store.acquire(r, specs(0, 6), dispatch_lease_ms=LONG_MS, stage=3)
    assert [lease.child for lease in got.leases] == [0, 1] and got.granted_new == 5  # 2 granted, 3 staged
    assert store.cursor(r)[1] == 5 and store.counts(r).leases == 2  # cursor write-ahead, no permit held
    _, started, _ = step(store, r, done=None, start=(0, got.leases[0].token), lease_ms=LONG_MS, worker="w")
    assert started is not None and started.outcome == RUN
    # Nothing free while both permits are out: a take without a completion takes nothing.
    assert take(r, done=None, nonce="n0", lease_ms=LONG_MS) == (None, None)
    completed, took = take(
        r, done=Done(0, got.leases[0].token, ChildStatus.SUCCEEDED, record(0)), nonce="n1", lease_ms=LONG_MS
    )
    assert completed is not None and completed.recorded
    assert took is not None and took[:2] == (2, "1-n1") and took[2].outcome == RUN and took[2].first == 2
    counts = store.counts(r)
    assert (counts.leases, counts.executions.running, counts.executions.succeeded) == (2, 1, 1)  # never past 2
    # The taken child is fenced like any other: its own token completes it, once.
    done = Done(2, "1-n1", ChildStatus.SUCCEEDED, record(2))
    assert take(r, done=done, nonce="n2", lease_ms=LONG_MS)[1] is not None  # takes child 3
    assert take(r, done=done, nonce="n3", lease_ms=LONG_MS)[0] == Completed(False, False)
    # The coordinator grants what is left on redo first (attempt 1), then new children.
    rest = store.acquire(r, specs(5, 2), dispatch_lease_ms=LONG_MS)
    assert [(lease.child, lease.attempt) for lease in rest.leases] == [] and rest.granted_new == 0  # 1 and 3 hold both
    store.complete(r, 1, got.leases[1].token, ChildStatus.SUCCEEDED, record(1))
    rest = store.acquire(r, specs(5, 2), dispatch_lease_ms=LONG_MS)
    assert [(lease.child, lease.attempt) for lease in rest.leases] == [(4, 1)]


def test_no_child_is_taken_in_an_aborted_run(store: RunStore, make_run: Callable[..., str]) -> None:
    r = make_run(max_concurrency=1, tolerated_failure_count=0)
    take = store.step_take  # type: ignore[attr-defined]
    got = store.acquire(r, specs(0, 3), dispatch_lease_ms=LONG_MS, stage=2)
    token = got.leases[0].token
    step(store, r, done=None, start=(0, token), lease_ms=LONG_MS)
    completed, took = take(r, done=Done(0, token, ChildStatus.FAILED, record(0, "FAILED")), nonce="n", lease_ms=LONG_MS)
    assert completed is not None and completed.aborted and took is None  # over the tolerance: nothing more runs
    assert store.counts(r).executions.running == 0

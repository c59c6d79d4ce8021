"""The MaxConcurrency semaphore: grants, resizing, leases, fencing and waking, on every store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from dmap.errors import NotFoundError
from dmap.store import ABORTED, RUN, STALE, WORKER_LOST_ERROR, ChildStatus, RunStore

from .conftest import LONG_MS, let_leases_expire, record, specs


def test_grants_stop_at_the_concurrency_limit(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=3)
    got = store.acquire(run, specs(0, 5), dispatch_lease_ms=LONG_MS)
    assert [lease.child for lease in got.leases] == [0, 1, 2]
    assert got.granted_new == 3
    assert all(lease.attempt == 1 for lease in got.leases)
    assert len({lease.token for lease in got.leases}) == 3
    assert store.acquire(run, specs(3, 2), dispatch_lease_ms=LONG_MS).leases == []
    assert store.counts(run).leases == 3


def test_a_completion_frees_one_permit_for_the_next_child(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    first = store.acquire(run, specs(0, 2), dispatch_lease_ms=LONG_MS).leases
    assert store.start(run, 0, first[0].token, lease_ms=LONG_MS).outcome == RUN
    assert store.complete(run, 0, first[0].token, ChildStatus.SUCCEEDED, record(0)).recorded
    got = store.acquire(run, specs(2, 3), dispatch_lease_ms=LONG_MS)
    assert [lease.child for lease in got.leases] == [2]
    assert got.granted_new == 1


def test_zero_max_concurrency_means_ten_thousand_permits(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=0)
    config = store.config(run)
    assert config is not None and config.permits == 10_000
    assert store.acquire(run, specs(0, 50), dispatch_lease_ms=LONG_MS).granted_new == 50


def test_a_larger_concurrency_grants_more_at_once_and_wakes_the_coordinator(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=2)
    store.acquire(run, specs(0, 2), dispatch_lease_ms=LONG_MS)
    store.update_config(run, max_concurrency=4)
    assert store.wait(run, 1000) == "1"
    config = store.config(run)
    assert config is not None and config.max_concurrency == 4
    assert [lease.child for lease in store.acquire(run, specs(2, 5), dispatch_lease_ms=LONG_MS).leases] == [2, 3]


def test_a_lower_concurrency_lets_running_children_finish_and_limits_new_grants(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=3)
    leases = store.acquire(run, specs(0, 3), dispatch_lease_ms=LONG_MS).leases
    for lease in leases:
        assert store.start(run, lease.child, lease.token, lease_ms=LONG_MS).outcome == RUN
    store.update_config(run, max_concurrency=1)
    assert store.counts(run).executions.running == 3
    for lease in leases[:2]:
        store.complete(run, lease.child, lease.token, ChildStatus.SUCCEEDED, record(lease.child))
        assert store.acquire(run, specs(3, 1), dispatch_lease_ms=LONG_MS).leases == []
    store.complete(run, 2, leases[2].token, ChildStatus.SUCCEEDED, record(2))
    assert [lease.child for lease in store.acquire(run, specs(3, 2), dispatch_lease_ms=LONG_MS).leases] == [3]


def test_granting_stores_the_cursor_write_ahead(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    assert store.cursor(run) == (0, 0, 0)
    store.acquire(run, specs(0, 4, items=10), dispatch_lease_ms=LONG_MS)
    assert store.cursor(run) == (20, 2, 20)
    counts = store.counts(run)
    assert (counts.items.total, counts.executions.total) == (20, 2)
    assert (counts.items.pending, counts.executions.pending) == (20, 2)


def test_a_replayed_child_below_the_cursor_counts_as_granted_without_a_lease(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=5)
    store.acquire(run, specs(0, 2), dispatch_lease_ms=LONG_MS)
    got = store.acquire(run, specs(0, 3), dispatch_lease_ms=LONG_MS)
    assert got.granted_new == 3
    assert [lease.child for lease in got.leases] == [2]
    assert store.cursor(run) == (3, 3, 3)


def test_start_runs_a_child_once_and_returns_its_input(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    batch = specs(0, 1, items=5)
    lease = store.acquire(run, batch, dispatch_lease_ms=LONG_MS).leases[0]
    started = store.start(run, 0, lease.token, lease_ms=LONG_MS, worker="host:1")
    assert (started.outcome, started.input, started.attempt, started.first, started.items) == (
        RUN,
        batch[0].input,
        1,
        0,
        5,
    )
    assert store.start(run, 0, lease.token, lease_ms=LONG_MS).outcome == STALE
    assert store.start(run, 0, "1-forged", lease_ms=LONG_MS).outcome == STALE
    counts = store.counts(run)
    assert (counts.items.running, counts.executions.running) == (5, 1)
    assert store.statuses(run, 0, 2) == [ChildStatus.RUNNING, ChildStatus.PENDING]


def test_an_expired_lease_is_reclaimed_and_redispatched_with_a_new_token(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=1)
    old = store.acquire(run, specs(0, 1), dispatch_lease_ms=LONG_MS).leases[0]
    assert store.start(run, 0, old.token, lease_ms=1, worker="host:1").outcome == RUN
    let_leases_expire()
    got = store.acquire(run, specs(1, 1), dispatch_lease_ms=LONG_MS)
    assert got.reclaimed == 1
    assert got.granted_new == 0  # the reclaimed child took the only permit
    assert [(lease.child, lease.attempt) for lease in got.leases] == [(0, 2)]
    new = got.leases[0]
    assert new.token != old.token
    assert store.counts(run).executions.running == 0
    assert store.statuses(run, 0, 1) == [ChildStatus.PENDING]
    assert store.start(run, 0, old.token, lease_ms=LONG_MS).outcome == STALE
    assert store.renew(run, [(0, old.token)], lease_ms=LONG_MS) == [False]
    assert store.start(run, 0, new.token, lease_ms=LONG_MS).outcome == RUN
    assert store.counts(run).reclaimed == 1


def test_a_late_completion_by_the_lost_worker_counts_once(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=1)
    old = store.acquire(run, specs(0, 1), dispatch_lease_ms=LONG_MS).leases[0]
    store.start(run, 0, old.token, lease_ms=1)
    let_leases_expire()
    new = store.acquire(run, [], dispatch_lease_ms=LONG_MS).leases[0]
    assert store.start(run, 0, new.token, lease_ms=LONG_MS).outcome == RUN
    # The zombie finishes first: the work was done, so it is recorded, but the permit is not its own.
    assert store.complete(run, 0, old.token, ChildStatus.SUCCEEDED, record(0)).recorded
    assert store.counts(run).leases == 1
    assert not store.complete(run, 0, new.token, ChildStatus.SUCCEEDED, record(0)).recorded
    counts = store.counts(run)
    assert (counts.executions.succeeded, counts.executions.running, counts.duplicates, counts.leases) == (1, 0, 1, 0)


def test_a_late_completion_of_a_requeued_child_keeps_it_from_being_redispatched(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=1)
    old = store.acquire(run, specs(0, 1), dispatch_lease_ms=1).leases[0]
    store.start(run, 0, old.token, lease_ms=1)
    let_leases_expire()
    assert store.acquire(run, [], dispatch_lease_ms=1).leases  # reclaimed, re-granted with a 1 ms lease
    let_leases_expire()
    store.complete(run, 0, old.token, ChildStatus.SUCCEEDED, record(0))
    got = store.acquire(run, specs(1, 1), dispatch_lease_ms=LONG_MS)
    assert [lease.child for lease in got.leases] == [1]
    assert store.counts(run).executions.succeeded == 1


def test_a_current_token_of_a_finished_child_gets_stale_and_releases_its_permit(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=1)
    old = store.acquire(run, specs(0, 1), dispatch_lease_ms=1).leases[0]
    let_leases_expire()
    new = store.acquire(run, [], dispatch_lease_ms=LONG_MS).leases[0]
    store.complete(run, 0, old.token, ChildStatus.SUCCEEDED, record(0))
    assert store.counts(run).leases == 1
    assert store.start(run, 0, new.token, lease_ms=LONG_MS).outcome == STALE
    assert store.counts(run).leases == 0


def test_renew_extends_held_leases_only(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    a, b = store.acquire(run, specs(0, 2), dispatch_lease_ms=LONG_MS).leases
    store.start(run, 0, a.token, lease_ms=1)
    assert store.renew(run, [(0, a.token), (1, b.token), (1, "1-other"), (7, "1-x")], lease_ms=LONG_MS) == [
        True,
        True,
        False,
        False,
    ]
    let_leases_expire()
    assert store.acquire(run, [], dispatch_lease_ms=LONG_MS).reclaimed == 0  # renewed: nothing expired
    store.complete(run, 1, b.token, ChildStatus.SUCCEEDED, record(1))
    assert store.renew(run, [(1, b.token)], lease_ms=LONG_MS) == [False]
    assert store.counts(run).leases == 1


def test_renew_of_many_leases_answers_each_one(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=0)
    leases = store.acquire(run, specs(0, 600), dispatch_lease_ms=LONG_MS).leases
    pairs = [(lease.child, lease.token) for lease in leases] + [(0, "1-stale")]
    assert store.renew(run, pairs, lease_ms=LONG_MS) == [True] * 600 + [False]


def test_a_child_whose_workers_keep_dying_fails_with_runtime_exit_error(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=1, max_attempts=2, tolerated_failure_count=1000)
    batch = specs(0, 1, items=100)
    leases = store.acquire(run, [*batch, *specs(1, 1)], dispatch_lease_ms=LONG_MS).leases
    for attempt in (1, 2):
        assert [(lease.child, lease.attempt) for lease in leases] == [(0, attempt)]
        assert store.start(run, 0, leases[0].token, lease_ms=1, worker=f"host:{attempt}").outcome == RUN
        let_leases_expire()
        leases = store.acquire(run, specs(1, 1), dispatch_lease_ms=LONG_MS).leases
    # No third attempt: child 0 failed and its permit went to the next child.
    assert [(lease.child, lease.attempt) for lease in leases] == [(1, 1)]
    assert store.statuses(run, 0, 1) == [ChildStatus.FAILED]
    counts = store.counts(run)
    assert (counts.items.failed, counts.executions.failed, counts.items.running) == (100, 1, 0)
    failure = json.loads(next(store.failures(run)))
    assert failure == {
        "Child": 0,
        "Index": 0,
        "Items": 100,
        "Status": "FAILED",
        "Input": batch[0].input,
        "Error": WORKER_LOST_ERROR,
        "Cause": "The worker running child 0 (items 0-99) stopped responding 2 times (lease expired); giving up. "
        "Last worker: host:2",
        "StartDate": failure["StartDate"],
        "StopDate": failure["StopDate"],
        "Attempts": 2,
        "Worker": "host:2",
    }
    assert failure["StartDate"].endswith("Z") and failure["StartDate"] <= failure["StopDate"]
    assert store.take_results(run, 0, 5) == [json.dumps(failure, separators=(",", ":"))]


def test_wait_wakes_on_a_completion_from_another_thread(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=1)
    lease = store.acquire(run, specs(0, 1), dispatch_lease_ms=LONG_MS).leases[0]
    woke: list[str | None] = []
    waiter = threading.Thread(target=lambda: woke.append(store.wait(run, 20_000)))
    waiter.start()
    store.complete(run, 0, lease.token, ChildStatus.SUCCEEDED, record(0))
    waiter.join(30)
    assert woke == ["1"]


def test_wait_times_out_without_a_wake_token(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=1)
    assert store.wait(run, 20) is None
    assert store.wait(run, 0) is None


def test_wake_tokens_do_not_pile_up(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=10)
    for lease in store.acquire(run, specs(0, 5), dispatch_lease_ms=LONG_MS).leases:
        store.complete(run, lease.child, lease.token, ChildStatus.SUCCEEDED, record(lease.child))
    assert store.wait(run, 0) == "1"
    assert store.wait(run, 0) is None


def test_acquire_reports_the_time_until_the_next_lease_expires(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    assert store.acquire(run, [], dispatch_lease_ms=LONG_MS).wait_ms == -1
    got = store.acquire(run, specs(0, 1), dispatch_lease_ms=LONG_MS)
    assert 0 < got.wait_ms <= LONG_MS


def test_an_unknown_run_is_refused_to_the_coordinator_and_ignored_for_workers(store: RunStore) -> None:
    with pytest.raises(NotFoundError):
        store.acquire("nope", specs(0, 1), dispatch_lease_ms=LONG_MS)
    with pytest.raises(NotFoundError):
        store.update_config("nope", max_concurrency=3)
    with pytest.raises(NotFoundError):
        store.set_total("nope", items=1, children=1)
    assert store.start("nope", 0, "1-a", lease_ms=LONG_MS).outcome == STALE
    assert store.renew("nope", [(0, "1-a")], lease_ms=LONG_MS) == [False]
    assert not store.complete("nope", 0, "1-a", ChildStatus.SUCCEEDED, record(0)).recorded
    assert store.config("nope") is None
    assert store.counts("nope").executions.total == 0
    assert not store.abort("nope", "stopped")
    assert store.config("nope") is None  # nothing above created it


def test_start_after_an_abort_records_the_child_aborted(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    batch = specs(0, 2)
    leases = store.acquire(run, batch, dispatch_lease_ms=LONG_MS).leases
    assert store.abort(run, "stopped")
    assert not store.abort(run, "tolerance")
    assert store.aborted(run) == "stopped"
    assert store.wait(run, 0) == "ABORT"
    assert store.start(run, 0, leases[0].token, lease_ms=LONG_MS).outcome == ABORTED
    assert store.acquire(run, specs(2, 1), dispatch_lease_ms=LONG_MS).leases == []
    counts = store.counts(run)
    assert (counts.executions.aborted, counts.executions.pending, counts.leases) == (1, 1, 1)
    aborted = json.loads(store.take_results(run, 0, 5)[0])
    assert (aborted["Child"], aborted["Status"], aborted["Input"], aborted["Error"]) == (
        0,
        "ABORTED",
        batch[0].input,
        "",
    )
    assert aborted["Cause"] == "The Map Run was aborted (stopped) before child 0 (item 0) started."


def test_an_expired_lease_in_an_aborted_run_records_the_child_aborted(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=2)
    lease = store.acquire(run, specs(0, 1), dispatch_lease_ms=LONG_MS).leases[0]
    store.start(run, 0, lease.token, lease_ms=1, worker="host:9")
    store.abort(run, "stopped")
    let_leases_expire()
    assert store.acquire(run, [], dispatch_lease_ms=LONG_MS).reclaimed == 1
    assert store.statuses(run, 0, 1) == [ChildStatus.ABORTED]
    counts = store.counts(run)
    assert (counts.executions.running, counts.executions.aborted, counts.leases) == (0, 1, 0)

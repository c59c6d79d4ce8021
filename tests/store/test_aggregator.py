"""The aggregator: first result wins, counts, tolerance, results, failures, redrive and cleanup."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from dmap.store import RUN, ChildStatus, Lease, RunConfig, RunStore

from .conftest import LONG_MS, record, specs


def _run_children(store: RunStore, run: str, count: int, items: int = 1) -> list[Lease]:
    leases = store.acquire(run, specs(0, count, items), dispatch_lease_ms=LONG_MS).leases
    for lease in leases:
        assert store.start(run, lease.child, lease.token, lease_ms=LONG_MS).outcome == RUN
    return leases


def test_a_duplicate_completion_is_counted_once(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2, tolerated_failure_count=5)
    (lease,) = _run_children(store, run, 1, items=3)
    first = store.complete(run, 0, lease.token, ChildStatus.SUCCEEDED, record(0))
    again = store.complete(run, 0, lease.token, ChildStatus.FAILED, record(0, "FAILED"))
    assert (first.recorded, again.recorded) == (True, False)
    counts = store.counts(run)
    assert (counts.items.succeeded, counts.items.failed, counts.executions.succeeded) == (3, 0, 1)
    assert (counts.items.running, counts.duplicates, counts.leases) == (0, 1, 0)
    assert store.statuses(run, 0, 1) == [ChildStatus.SUCCEEDED]


def test_counts_follow_every_status_in_items_and_children(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=10, tolerated_failure_count=100)
    leases = _run_children(store, run, 5, items=2)
    store.acquire(run, specs(5, 1, items=2), dispatch_lease_ms=LONG_MS)
    for lease, status in zip(leases, (ChildStatus.SUCCEEDED, ChildStatus.FAILED, ChildStatus.TIMED_OUT), strict=False):
        store.complete(run, lease.child, lease.token, status, record(lease.child, status.name))
    store.complete(run, 3, leases[3].token, ChildStatus.ABORTED, record(3, "ABORTED"))
    counts = store.counts(run)
    assert counts.items.as_dict() == {
        "pending": 2,
        "running": 2,
        "succeeded": 2,
        "failed": 2,
        "timedOut": 2,
        "aborted": 2,
        "total": 12,
        "resultsWritten": 0,
    }
    assert counts.executions.as_dict()["total"] == 6
    assert counts.executions.pending == 1
    assert store.statuses(run, 0, 7) == [
        ChildStatus.SUCCEEDED,
        ChildStatus.FAILED,
        ChildStatus.TIMED_OUT,
        ChildStatus.ABORTED,
        ChildStatus.RUNNING,
        ChildStatus.PENDING,
        ChildStatus.PENDING,
    ]
    store.set_total(run, items=20, children=10)
    assert (store.counts(run).items.total, store.counts(run).items.pending) == (20, 10)


def test_the_failure_count_tolerance_is_strict_and_aborts_once(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5, tolerated_failure_count=1)
    leases = _run_children(store, run, 3)
    assert store.complete(run, 0, leases[0].token, ChildStatus.FAILED, record(0, "FAILED")).aborted is False
    assert store.aborted(run) is None
    second = store.complete(run, 1, leases[1].token, ChildStatus.TIMED_OUT, record(1, "TIMED_OUT"))
    assert (second.recorded, second.aborted) == (True, True)
    assert store.aborted(run) == "tolerance"
    assert store.wait(run, 0) == "ABORT"
    third = store.complete(run, 2, leases[2].token, ChildStatus.FAILED, record(2, "FAILED"))
    assert (third.recorded, third.aborted) == (True, False)


def test_the_tolerance_counts_failed_items_of_a_batch(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5, tolerated_failure_count=3)
    (lease,) = _run_children(store, run, 1, items=4)
    assert store.complete(run, 0, lease.token, ChildStatus.FAILED, record(0, "FAILED")).aborted


def test_aborted_children_do_not_count_against_the_tolerance(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5)
    (lease,) = _run_children(store, run, 1)
    assert not store.complete(run, 0, lease.token, ChildStatus.ABORTED, record(0, "ABORTED")).aborted
    assert store.aborted(run) is None


def test_the_percentage_is_judged_only_once_the_total_is_known(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5, tolerated_failure_count=100, tolerated_failure_percentage=10)
    (lease,) = _run_children(store, run, 1)
    assert not store.complete(run, 0, lease.token, ChildStatus.FAILED, record(0, "FAILED")).aborted
    assert store.aborted(run) is None  # 1 failed of 1 read so far: no fail-fast on a partial total
    assert store.set_total(run, items=4, children=4)  # 25 % > 10 %
    assert store.aborted(run) == "tolerance"


def test_a_failure_percentage_equal_to_the_threshold_is_tolerated(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=5, tolerated_failure_count=100, tolerated_failure_percentage=25)
    assert not store.set_total(run, items=4, children=4)
    (lease,) = _run_children(store, run, 1)
    assert not store.complete(run, 0, lease.token, ChildStatus.FAILED, record(0, "FAILED")).aborted
    store.update_config(run, tolerated_failure_percentage=24.9)
    assert store.aborted(run) == "tolerance"


def test_a_lower_tolerance_from_update_config_aborts_at_once(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5, tolerated_failure_count=5)
    leases = _run_children(store, run, 2)
    for lease in leases:
        store.complete(run, lease.child, lease.token, ChildStatus.FAILED, record(lease.child, "FAILED"))
    assert store.aborted(run) is None
    store.update_config(run, tolerated_failure_count=1)
    assert store.aborted(run) == "tolerance"
    assert store.wait(run, 0) == "ABORT"
    config = store.config(run)
    assert config is not None and (config.tolerated_failure_count, config.max_concurrency) == (1, 5)


def test_take_results_returns_only_the_contiguous_finished_children(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=5, tolerated_failure_count=5)
    leases = _run_children(store, run, 4, items=2)
    store.complete(run, 0, leases[0].token, ChildStatus.SUCCEEDED, record(0))
    store.complete(run, 2, leases[2].token, ChildStatus.FAILED, record(2, "FAILED"))
    assert store.take_results(run, 0, 10) == [record(0)]
    assert store.take_results(run, 1, 10) == []
    store.complete(run, 1, leases[1].token, ChildStatus.SUCCEEDED, record(1))
    assert store.take_results(run, 1, 1) == [record(1)]
    assert store.take_results(run, 2, 10) == [record(2, "FAILED")]
    counts = store.counts(run)
    assert (counts.items.resultsWritten, counts.executions.resultsWritten) == (6, 3)
    assert store.take_results(run, 0, 10) == []


def test_take_results_pages_through_many_records(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=0)
    for lease in _run_children(store, run, 700):
        store.complete(run, lease.child, lease.token, ChildStatus.SUCCEEDED, record(lease.child))
    taken = store.take_results(run, 0, 650)
    assert [json.loads(r)["Child"] for r in taken] == list(range(650))
    assert len(store.take_results(run, 650, 1000)) == 50


def test_inputs_are_dropped_on_success_and_kept_for_failures(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5, tolerated_failure_count=5)
    batch = specs(0, 2)
    leases = _run_children(store, run, 2)
    store.complete(run, 0, leases[0].token, ChildStatus.SUCCEEDED, record(0))
    store.complete(run, 1, leases[1].token, ChildStatus.FAILED, record(1, "FAILED"))
    assert store.child_input(run, 0) is None
    assert store.child_input(run, 1) == batch[1].input


def test_failures_are_listed_by_child_and_filtered_by_error(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=0, tolerated_failure_count=1000)
    leases = _run_children(store, run, 600)
    for lease in reversed(leases):
        c = lease.child
        if c % 3 == 0:
            store.complete(run, c, lease.token, ChildStatus.SUCCEEDED, record(c))
        else:
            error = "Oops" if c % 3 == 1 else "Oops.More"
            store.complete(run, c, lease.token, ChildStatus.FAILED, record(c, "FAILED", error))
    every = [json.loads(r)["Child"] for r in store.failures(run)]
    assert every == [c for c in range(600) if c % 3]
    oops = [json.loads(r)["Child"] for r in store.failures(run, error="Oops")]
    assert oops == [c for c in range(600) if c % 3 == 1]
    assert list(store.failures(run, error="Oop")) == []


def test_failures_page_after_a_child_and_read_no_more_than_the_limit(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=0, tolerated_failure_count=10_000)
    for lease in _run_children(store, run, 1200):
        c = lease.child
        status, error = (ChildStatus.SUCCEEDED, "") if c % 3 == 0 else (ChildStatus.FAILED, "Oops" * (c % 3))
        store.complete(run, c, lease.token, status, record(c, "FAILED", error) if error else record(c))
    for error in (None, "Oops", "OopsOops"):
        expected = [c for c in range(1200) if c % 3 and (error is None or len(error) == 4 * (c % 3))]
        pages, after = [], None
        while True:
            page = [json.loads(r)["Child"] for r in store.failures(run, error=error, after=after, limit=170)]
            assert len(page) <= 170
            pages += page
            if len(page) < 170:
                break
            after = page[-1]
        assert pages == expected, error
        assert [json.loads(r)["Child"] for r in store.failures(run, error=error, after=expected[-1])] == []
        assert list(store.failures(run, error=error, limit=0)) == []


def test_failures_are_counted_without_reading_them(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=0, tolerated_failure_count=1000)
    assert store.failure_count(run) == 0
    for lease in _run_children(store, run, 30):
        c = lease.child
        status, error = (ChildStatus.SUCCEEDED, "") if c % 3 == 0 else (ChildStatus.FAILED, "Oops" * (c % 3))
        store.complete(run, c, lease.token, status, record(c, "FAILED", error) if error else record(c))
    assert store.failure_count(run) == 20 == len(list(store.failures(run)))
    assert store.failure_count(run, error="Oops") == 10
    assert store.failure_count(run, error="OopsOops") == 10
    assert store.failure_count(run, error="Oop") == 0


def test_redrive_makes_failed_timed_out_and_aborted_children_pending_again(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=10, max_attempts=2)
    batch = specs(0, 5, items=2)
    leases = store.acquire(run, batch, dispatch_lease_ms=LONG_MS).leases
    for lease in leases[:4]:
        store.start(run, lease.child, lease.token, lease_ms=LONG_MS)
    store.complete(run, 0, leases[0].token, ChildStatus.SUCCEEDED, record(0))
    store.complete(run, 1, leases[1].token, ChildStatus.FAILED, record(1, "FAILED"))  # aborts (tolerance 0)
    store.complete(run, 2, leases[2].token, ChildStatus.TIMED_OUT, record(2, "TIMED_OUT"))
    store.complete(run, 3, leases[3].token, ChildStatus.ABORTED, record(3, "ABORTED"))
    store.start(run, 4, leases[4].token, lease_ms=LONG_MS)  # aborted run: recorded ABORTED
    store.set_total(run, items=10, children=5)
    assert store.take_results(run, 0, 2) == [record(0), record(1, "FAILED")]
    assert store.aborted(run) == "tolerance"

    assert store.reset_for_redrive(run) == 4
    assert store.aborted(run) is None
    assert store.statuses(run, 0, 5) == [ChildStatus.SUCCEEDED] + [ChildStatus.PENDING] * 4
    counts = store.counts(run)
    assert counts.items.as_dict() == {
        "pending": 8,
        "running": 0,
        "succeeded": 2,
        "failed": 0,
        "timedOut": 0,
        "aborted": 0,
        "total": 10,
        "resultsWritten": 2,
    }
    assert (counts.executions.pending, counts.executions.resultsWritten) == (4, 1)
    assert list(store.failures(run)) == []
    assert store.take_results(run, 1, 10) == []
    regranted = store.acquire(run, [], dispatch_lease_ms=LONG_MS)
    assert [(lease.child, lease.attempt) for lease in regranted.leases] == [(1, 1), (2, 1), (3, 1), (4, 1)]
    started = store.start(run, 1, regranted.leases[0].token, lease_ms=LONG_MS)
    assert (started.outcome, started.input, started.first, started.items) == (RUN, batch[1].input, 2, 2)


def test_redrive_walks_the_failure_index_page_by_page(
    store: RunStore, make_run: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dmap.store.redis

    monkeypatch.setattr(dmap.store.redis, "_REDRIVE_CHUNK", 7)  # many pages, one of them exactly full
    run = make_run(max_concurrency=0, tolerated_failure_count=10_000)
    statuses = [ChildStatus.FAILED, ChildStatus.TIMED_OUT, ChildStatus.ABORTED]
    failing = [c for c in range(300) if c % 7 in (1, 3) or 140 <= c < 161]
    for lease in _run_children(store, run, 300):
        c = lease.child
        status = statuses[c % 3] if c in failing else ChildStatus.SUCCEEDED
        store.complete(run, c, lease.token, status, record(c, status.name) if c in failing else record(c))
    store.set_total(run, items=300, children=300)

    assert store.reset_for_redrive(run) == len(failing)
    assert store.failure_count(run) == 0
    assert store.counts(run).executions.pending == len(failing)
    assert [s for s in store.statuses(run, 0, 300)] == [
        ChildStatus.PENDING if c in failing else ChildStatus.SUCCEEDED for c in range(300)
    ]
    regranted = store.acquire(run, [], dispatch_lease_ms=LONG_MS).leases
    regranted += store.acquire(run, [], dispatch_lease_ms=LONG_MS).leases
    assert [lease.child for lease in regranted] == failing
    assert store.reset_for_redrive(run) == 0


def test_record_marks_tell_unfinished_recorded_and_written_children_apart(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=0, tolerated_failure_count=100)
    leases = _run_children(store, run, 9)
    for lease in leases[:7]:
        failed = lease.child % 3 == 1
        status = ChildStatus.FAILED if failed else ChildStatus.SUCCEEDED
        store.complete(run, lease.child, lease.token, status, record(lease.child, "FAILED") if failed else record(0))
    assert len(store.take_results(run, 0, 3)) == 3  # written by the result writer
    assert store.record_marks(run, 0, 9) == "wwwrrrr--"
    assert store.record_marks(run, 5, 8) == "rr------"  # past the last child: not finished
    store.reset_for_redrive(run)
    assert store.record_marks(run, 0, 9) == "w-wr-rr--"


def test_delete_run_removes_everything(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5)
    leases = _run_children(store, run, 2)
    store.complete(run, 0, leases[0].token, ChildStatus.FAILED, record(0, "FAILED"))
    store.delete_run(run)
    assert store.config(run) is None
    assert store.counts(run).executions.total == 0
    assert store.cursor(run) == (0, 0, 0)
    assert list(store.failures(run)) == []
    assert store.take_results(run, 0, 5) == []
    assert not store.complete(run, 1, leases[1].token, ChildStatus.SUCCEEDED, record(1)).recorded
    assert store.create_run(run, RunConfig())

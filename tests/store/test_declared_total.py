"""A total declared ahead of the reader: the percentage tolerance applies at once, the reader's end stays separate."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dmap.errors import NotFoundError
from dmap.store import RUN, ChildStatus, Lease, RunStore

from .conftest import LONG_MS, record, specs


def _run_children(store: RunStore, run: str, count: int, items: int = 1) -> list[Lease]:
    leases = store.acquire(run, specs(0, count, items), dispatch_lease_ms=LONG_MS).leases
    for lease in leases:
        assert store.start(run, lease.child, lease.token, lease_ms=LONG_MS).outcome == RUN
    return leases


def _fail(store: RunStore, run: str, lease: Lease) -> bool:
    return store.complete(run, lease.child, lease.token, ChildStatus.FAILED, record(lease.child, "FAILED")).aborted


def test_a_declared_total_lets_the_percentage_abort_before_the_reader_is_exhausted(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=10, tolerated_failure_count=10**6, tolerated_failure_percentage=10)
    leases = _run_children(store, run, 5)
    assert not store.declare_total(run, items=20, children=20)
    assert not _fail(store, run, leases[0])
    assert not _fail(store, run, leases[1])  # 2 x 100 = 10 x 20: not exceeded (strict)
    assert _fail(store, run, leases[2])  # 3 x 100 > 10 x 20
    assert store.aborted(run) == "tolerance"


def test_declaring_a_total_already_exceeded_aborts_at_once(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=10, tolerated_failure_count=10**6, tolerated_failure_percentage=0)
    (lease,) = _run_children(store, run, 1)
    assert not _fail(store, run, lease)
    assert store.aborted(run) is None  # no total yet: the percentage is not judged
    assert store.declare_total(run, items=2_000)
    assert store.aborted(run) == "tolerance"
    assert store.wait(run, 0) == "ABORT"


def test_a_declared_total_shows_in_the_counts_while_the_reader_goes_on(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=10, tolerated_failure_count=10**6, tolerated_failure_percentage=50)
    _run_children(store, run, 3, items=2)
    before = store.counts(run)
    assert (before.items.total, before.executions.total, before.total_known) == (6, 3, False)
    store.declare_total(run, items=100)
    counts = store.counts(run)
    assert counts.total_known
    assert (counts.items.total, counts.items.pending, counts.items.running) == (100, 94, 6)
    assert counts.executions.total == 3  # children follow at exhaustion when only the items were declared


def test_the_first_declaration_wins_and_the_final_totals_take_precedence(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=10, tolerated_failure_count=10**6, tolerated_failure_percentage=50)
    store.declare_total(run, items=10, children=10)
    assert not store.declare_total(run, items=10, children=10)  # the same total again: a no-op
    store.declare_total(run, items=99, children=99)
    assert (store.counts(run).items.total, store.counts(run).executions.total) == (10, 10)
    store.set_total(run, items=12, children=4)  # the reader's own count at its end is the truth
    counts = store.counts(run)
    assert (counts.items.total, counts.executions.total, counts.total_known) == (12, 4, True)
    store.declare_total(run, items=7, children=7)
    assert store.counts(run).items.total == 12


def test_a_declared_total_below_the_items_read_is_raised_to_them(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=10, tolerated_failure_count=10**6, tolerated_failure_percentage=40)
    leases = _run_children(store, run, 5)
    store.declare_total(run, items=2, children=2)  # the source grew after it was counted
    assert store.counts(run).items.total == 5
    assert not _fail(store, run, leases[0])
    assert not _fail(store, run, leases[1])  # 200 > 40 x 2 but not > 40 x 5
    assert _fail(store, run, leases[2])


def test_the_final_totals_still_mark_the_reader_exhausted_after_a_declaration(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=10, tolerated_failure_count=10**6, tolerated_failure_percentage=100)
    store.declare_total(run, items=3, children=3)
    leases = _run_children(store, run, 3)
    for lease in leases:
        store.complete(run, lease.child, lease.token, ChildStatus.SUCCEEDED, record(lease.child))
    assert store.counts(run).items.pending == 0
    assert not store.set_total(run, items=3, children=3)
    assert store.counts(run).executions.as_dict()["succeeded"] == 3


def test_declaring_the_total_of_an_unknown_run_raises(store: RunStore) -> None:
    with pytest.raises(NotFoundError):
        store.declare_total("nope", items=1)

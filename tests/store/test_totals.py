"""A run's totals are declared once and never below what was granted; an aborted run closes with nothing RUNNING.

The same suite runs on the memory store, fakeredis and the real redis-server (``store`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dmap.store import RUN, ChildStatus, RunStore, TotalMismatch

from .conftest import LONG_MS, record, specs


def test_totals_are_unknown_until_declared_and_the_same_totals_again_change_nothing(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=5)
    assert store.totals(run) is None
    assert not store.set_total(run, items=6, children=3)
    assert store.totals(run) == (6, 3)
    assert not store.set_total(run, items=6, children=3)
    assert store.counts(run).items.total == 6 and store.counts(run).items.pending == 6


def test_other_totals_than_the_declared_ones_are_refused(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=5)
    store.set_total(run, items=6, children=3)
    with pytest.raises(TotalMismatch) as refused:
        store.set_total(run, items=7, children=3)
    assert (refused.value.declared, refused.value.known) == ((7, 3), (6, 3))
    assert store.totals(run) == (6, 3)


def test_totals_below_the_granted_items_are_refused_so_pending_never_goes_negative(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=5)
    store.acquire(run, specs(0, 4, items=2), dispatch_lease_ms=LONG_MS)  # items 0-7 granted
    with pytest.raises(TotalMismatch) as refused:
        store.set_total(run, items=5, children=4)
    assert refused.value.granted == (8, 4)
    assert store.totals(run) is None
    assert not store.set_total(run, items=8, children=4)


def test_closing_an_aborted_run_records_its_leased_children_aborted_and_counts_a_late_result_once(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=3)
    leases = store.acquire(run, specs(0, 3), dispatch_lease_ms=LONG_MS).leases
    assert store.start(run, 0, leases[0].token, lease_ms=LONG_MS).outcome == RUN  # 0 runs, 1 and 2 are queued
    store.complete(run, 1, leases[1].token, ChildStatus.SUCCEEDED, record(1))
    store.set_total(run, items=3, children=3)
    assert store.close_aborted(run) == 0  # not aborted: nothing changes
    assert store.counts(run).executions.running == 1

    store.abort(run, "stopped")
    assert store.close_aborted(run) == 2
    counts = store.counts(run)
    assert (counts.executions.running, counts.executions.aborted, counts.executions.succeeded) == (0, 2, 1)
    assert counts.executions.pending == 0 and counts.leases == 0
    late = store.complete(run, 0, leases[0].token, ChildStatus.SUCCEEDED, record(0))
    assert not late.recorded
    assert store.counts(run).executions.aborted == 2
    assert store.close_aborted(run) == 0

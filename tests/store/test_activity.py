"""What the console charts: items finished over time, child run times, failures grouped by error."""

from __future__ import annotations

from collections.abc import Callable

from dmap.store import RUN, ChildStatus, RunStore
from dmap.store.activity import RunActivity, bucket_width, duration_bucket, percentile_ms, rates, time_bucket

from .conftest import LONG_MS, record, specs


def test_every_finished_item_is_counted_once_in_the_activity_with_its_failures_and_run_times(
    store: RunStore, make_run: Callable[..., str]
) -> None:
    run = make_run(max_concurrency=0, tolerated_failure_count=1000)
    assert store.activity(run).first_second is None
    leases = store.acquire(run, specs(0, 12, items=2), dispatch_lease_ms=LONG_MS).leases
    for lease in leases[:10]:
        assert store.start(run, lease.child, lease.token, lease_ms=LONG_MS).outcome == RUN
    for lease in leases[:10]:
        c = lease.child
        failed = c % 4 == 0
        status = ChildStatus.FAILED if failed else ChildStatus.SUCCEEDED
        store.complete(run, c, lease.token, status, record(c, "FAILED") if failed else record(c))
        store.complete(run, c, lease.token, status, record(c))  # a duplicate counts nothing
    store.abort(run, "stopped")
    store.close_aborted(run)  # the two never-started children end ABORTED: done, but with no run time

    activity = store.activity(run)
    assert activity.first_second is not None
    assert sum(activity.done.values()) == 24  # 12 children of 2 items
    assert sum(activity.failed.values()) == 6  # children 0, 4, 8
    assert sum(activity.durations.values()) == 10  # only the children that started
    assert percentile_ms(activity.durations, 0.95) is not None


def test_failures_are_grouped_by_error_name_with_their_counts(store: RunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=0, tolerated_failure_count=1000)
    assert store.failure_errors(run) == []
    leases = store.acquire(run, specs(0, 30), dispatch_lease_ms=LONG_MS).leases
    for lease in leases:
        store.start(run, lease.child, lease.token, lease_ms=LONG_MS)
        c = lease.child
        if c % 3 == 0:
            store.complete(run, c, lease.token, ChildStatus.SUCCEEDED, record(c))
        else:
            error = "Oops" if c % 3 == 1 else "Oops.Bigger"
            store.complete(run, c, lease.token, ChildStatus.FAILED, record(c, "FAILED", error))
    assert store.failure_errors(run) == [("Oops", 10), ("Oops.Bigger", 10)]
    assert store.failure_errors(run, limit=1) == [("Oops", 10)]


def test_time_buckets_widen_as_the_run_ages_and_rates_never_show_a_wide_bucket_as_a_spike() -> None:
    assert [bucket_width(a) for a in (0, 599, 600, 7199, 7200)] == [1, 1, 10, 10, 60]
    assert time_bucket(1_000_605, 1_000_000) == 1_000_600
    activity = RunActivity(first_second=0)
    for second in range(0, 600):
        activity.done[second] = 10
    for bucket in range(600, 1200, 10):
        activity.done[bucket] = 100  # the same 10 items/s, in 10 s buckets
    points = rates(activity, points=120)
    assert 0 < len(points) <= 120
    assert all(abs(p.items_per_second - 10) < 1e-9 for p in points)
    assert all(p.failures_per_second == 0 for p in points)


def test_a_percentile_is_the_upper_bound_of_the_bucket_it_falls_in() -> None:
    histogram = {duration_bucket(100): 50, duration_bucket(1000): 45, duration_bucket(10_000): 5}
    p50, p95, p99 = (percentile_ms(histogram, f) for f in (0.5, 0.95, 0.99))
    assert p50 is not None and 100 <= p50 < 100 * 1.2
    assert p95 is not None and 1000 <= p95 < 1000 * 1.2
    assert p99 is not None and 10_000 <= p99 < 10_000 * 1.2
    assert percentile_ms({}, 0.5) is None

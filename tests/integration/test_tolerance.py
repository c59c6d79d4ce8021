"""ToleratedFailureCount / ToleratedFailurePercentage on real workers: thresholds are strict, items count.

1,000 items of which a known set fails. A threshold just above the failures succeeds (failed items
do not *exceed* it) and one just below fails the Map Run with States.ExceedToleratedFailureThreshold.
With ItemBatcher a failed batch fails all its items, so the thresholds are judged in items.
"""

from __future__ import annotations

from typing import Any

import pytest

import dmap
from dmap.backends import Backend

from . import flows
from .conftest import Cluster, engine_for

ITEMS = 1_000
FAILING = frozenset(range(7, ITEMS, 20))  # 50 items: a 5 % failure rate
THRESHOLD_ERROR = "States.ExceedToleratedFailureThreshold"
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"


def _run(cluster: Cluster, backend: Backend, failing: frozenset[int], **fields: Any) -> dmap.Execution:
    return dmap.run(
        flows.work_map(**fields), input=flows.work_input(cluster.ns, ITEMS, failing=failing), backend=backend
    )


def _assert_consistent(counts: dict[str, int], total: int) -> None:
    assert counts["total"] == total
    assert counts["running"] == 0
    finished = sum(counts[k] for k in ("pending", "running", "succeeded", "failed", "timedOut", "aborted"))
    assert finished == total


def _assert_tolerated(execution: dmap.Execution, failing: frozenset[int]) -> None:
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    assert map_run.status == "SUCCEEDED"
    assert map_run.item_counts == {
        "pending": 0,
        "running": 0,
        "succeeded": ITEMS - len(failing),
        "failed": len(failing),
        "timedOut": 0,
        "aborted": 0,
        "total": ITEMS,
        "resultsWritten": ITEMS,
    }


def _assert_exceeded(execution: dmap.Execution, at_least: int) -> None:
    assert execution.status == "FAILED"
    assert (execution.error, execution.cause) == (THRESHOLD_ERROR, THRESHOLD_CAUSE)
    (map_run,) = execution.map_runs
    assert map_run.status == "FAILED"
    assert (map_run.error, map_run.cause) == (THRESHOLD_ERROR, THRESHOLD_CAUSE)
    assert map_run.item_counts["failed"] >= at_least
    _assert_consistent(map_run.item_counts, ITEMS)
    _assert_consistent(map_run.execution_counts, map_run.execution_counts["total"])


def test_a_failure_count_at_the_number_of_failures_succeeds_and_one_below_fails_the_map_run(
    cluster: Cluster, backend_kind: str
) -> None:
    backend = engine_for(cluster, backend_kind, workers=2, concurrency=2)

    tolerated = _run(cluster, backend, FAILING, tolerated_count=len(FAILING))
    _assert_tolerated(tolerated, FAILING)
    assert tolerated.map_runs[0].execution_counts == tolerated.map_runs[0].item_counts
    for index, entry in enumerate(tolerated.output):
        if index in FAILING:
            assert entry["Status"] == "FAILED"
            assert entry["Error"] == "ValueError"
            assert f"items [{index}] are marked to fail" in entry["Cause"]
        else:
            assert entry == {"i": index, "double": 2 * index}

    exceeded = _run(cluster, backend, FAILING, tolerated_count=len(FAILING) - 1)
    _assert_exceeded(exceeded, at_least=len(FAILING))


def test_a_failure_percentage_at_the_failure_rate_succeeds_and_just_below_it_fails_the_map_run(
    cluster: Cluster, backend_kind: str
) -> None:
    backend = engine_for(cluster, backend_kind, workers=2, concurrency=2)
    rate = 100.0 * len(FAILING) / ITEMS  # 5.0

    _assert_tolerated(_run(cluster, backend, FAILING, tolerated_percentage=rate), FAILING)
    _assert_exceeded(_run(cluster, backend, FAILING, tolerated_percentage=rate - 0.1), at_least=len(FAILING))


def test_a_failed_batch_fails_all_its_items_and_thresholds_count_those_items(
    cluster: Cluster, backend_kind: str
) -> None:
    backend = engine_for(cluster, backend_kind, workers=2, concurrency=2)
    failing = frozenset({3, 17, 18, 250, 999})  # in batches 0, 1, 1, 25 and 99 of 10 items
    failed_items = frozenset(i for b in (0, 1, 25, 99) for i in range(10 * b, 10 * b + 10))

    by_count = _run(cluster, backend, failing, batch=10, tolerated_count=len(failed_items))
    _assert_tolerated(by_count, failed_items)
    assert by_count.map_runs[0].execution_counts == {
        "pending": 0,
        "running": 0,
        "succeeded": 96,
        "failed": 4,
        "timedOut": 0,
        "aborted": 0,
        "total": 100,
        "resultsWritten": 100,
    }
    assert cluster.calls() == {i: 1 for i in range(ITEMS)}  # every item ran once, in its batch
    _assert_exceeded(_run(cluster, backend, failing, batch=10, tolerated_count=len(failed_items) - 1), 40)

    by_percentage = _run(cluster, backend, failing, batch=10, tolerated_percentage=4.0)
    _assert_tolerated(by_percentage, failed_items)
    _assert_exceeded(_run(cluster, backend, failing, batch=10, tolerated_percentage=3.9), 40)


@pytest.mark.parametrize("count", [0, None])
def test_without_a_tolerance_one_failed_item_fails_the_map_run(cluster: Cluster, count: int | None) -> None:
    backend = cluster.local()
    _assert_exceeded(_run(cluster, backend, frozenset({500}), tolerated_count=count), at_least=1)

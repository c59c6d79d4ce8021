"""MaxConcurrency holds across processes: the peak of handlers running at once, measured in Redis."""

from __future__ import annotations

import pytest

import dmap

from . import flows
from .conftest import Cluster, engine_for

ITEMS = 5_000
LIMIT = 7


@pytest.mark.slow
def test_five_thousand_items_never_run_more_than_max_concurrency_children_at_once_and_reach_it(
    cluster: Cluster, backend_kind: str
) -> None:
    backend = engine_for(cluster, backend_kind, workers=3, concurrency=3)
    execution = dmap.run(
        flows.work_map(max_concurrency=LIMIT),
        input=flows.work_input(cluster.ns, ITEMS, sleep_ms=20),  # long enough that 7 overlap even on a busy box
        backend=backend,
    )

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert cluster.peak() == LIMIT
    assert execution.output == flows.expected_output(ITEMS)
    assert cluster.counter("running") == 0
    (map_run,) = execution.map_runs
    assert map_run.max_concurrency == LIMIT
    assert map_run.item_counts == {
        "pending": 0,
        "running": 0,
        "succeeded": ITEMS,
        "failed": 0,
        "timedOut": 0,
        "aborted": 0,
        "total": ITEMS,
        "resultsWritten": ITEMS,
    }
    assert map_run.execution_counts == map_run.item_counts

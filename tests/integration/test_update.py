"""update_map_run on a live run: a new MaxConcurrency takes effect at once, up and down.

There is no public ``dmap.update_map_run`` yet, so the test changes the run store's config the way
it will (``store.update_config``). The peak of handlers running at once is measured per phase.
"""

from __future__ import annotations

import dmap
from dmap.interpreter.context import execution_arn
from dmap.records import new_run_id

from . import flows
from .conftest import Background, Cluster, engine_for

ITEMS = 300


def test_raising_then_lowering_max_concurrency_of_a_running_map_run_changes_its_peak_concurrency(
    cluster: Cluster, backend_kind: str
) -> None:
    backend = engine_for(cluster, backend_kind, workers=3, concurrency=3)
    store = backend.store
    name = f"update-{cluster.ns}"
    run_id = new_run_id(execution_arn("dmap", name), "Fan", 0)
    run = Background(
        lambda: dmap.run(
            flows.work_map(max_concurrency=2),
            input=flows.work_input(cluster.ns, ITEMS, sleep_ms=20),
            backend=backend,
            name=name,
        )
    )
    try:
        cluster.wait_for(lambda: cluster.counter("done") >= 20, "20 items at MaxConcurrency 2")

        cluster.set_phase(1)
        store.update_config(run_id, max_concurrency=6)
        cluster.wait_for(lambda: cluster.peak(1) >= 6, "6 children running at once after raising the limit")

        store.update_config(run_id, max_concurrency=1)
        # Running children finish; no new one starts until fewer than one permit is held.
        cluster.wait_for(lambda: store.counts(run_id).leases <= 1, "the running children to drain")
        cluster.set_phase(2)
        done = cluster.counter("done")
        cluster.wait_for(lambda: cluster.counter("done") >= done + 10, "10 items at MaxConcurrency 1")

        cluster.set_phase(3)
        store.update_config(run_id, max_concurrency=0)  # unlimited: let it finish
        execution = run.result()
    finally:
        store.abort(run_id, "stopped")  # a no-op for a finished run; ends a stuck one

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == flows.expected_output(ITEMS)
    assert (cluster.peak(0), cluster.peak(1), cluster.peak(2)) == (2, 6, 1)
    (map_run,) = execution.map_runs
    assert map_run.item_counts["succeeded"] == map_run.execution_counts["succeeded"] == ITEMS

"""A worker killed between fetching a child's message and its pool process accepting it.

Found by scenario 1 (:mod:`tests.faults.test_worker_kills`, about one run in four with kills every
3 s). Celery acknowledges a message (early acks) when a pool process *accepts* the task; until then
Kombu's Redis transport keeps it in its ``unacked`` hash, restored to the queue only after the
transport's ``visibility_timeout`` — which ``workers/app.py`` sets to ``DMAP_DISPATCH_LEASE_SECONDS``
+ 3,600 s. A whole worker (main process and pool) that dies inside that window takes the message
with it: the child was never started, so its permit waits for the dispatch lease (600 s by
default) before the coordinator sends it again.

The window is made wide and deterministic here: the worker's only pool process is stopped
(SIGSTOP), so the main process fetches the message and hands it to a pool that never accepts it.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

import dmap
from tests.integration import flows as iflows

from . import tools
from .conftest import FaultCluster

FETCH_BUG = (
    "workers/app.py: a message fetched by a worker that dies before its pool accepts it stays in Kombu's "
    "unacked hash for visibility_timeout (dispatch lease + 3600 s); the child waits for the dispatch lease"
)


@pytest.mark.xfail(strict=True, reason=FETCH_BUG)
def test_a_child_whose_worker_died_before_accepting_its_message_runs_without_waiting_for_the_dispatch_lease(
    fault_cluster: FaultCluster,
) -> None:
    cluster = fault_cluster
    cluster.dispatch_lease_seconds = 120
    (victim,) = cluster.start_workers(1, concurrency=1)
    (pool,) = tools.children_of(victim.pid)
    os.kill(pool, signal.SIGSTOP)  # idle as far as the main process knows; it will never accept
    backend = cluster.celery()
    name = f"fetch-{cluster.ns}"
    run = tools.Background(
        lambda: dmap.run(
            iflows.work_map(max_concurrency=1), input=iflows.work_input(cluster.ns, 1), backend=backend, name=name
        )
    )
    try:
        cluster.wait_for(
            lambda: cluster.conn.hlen("unacked") == 1 and cluster.conn.llen(cluster.queue) == 0,
            "the worker to fetch the child's message",
        )
        victim.kill()
        cluster.start_workers(1, concurrency=1)

        # The child never started: it must come back within a run lease or so, not the dispatch lease.
        cluster.wait_for(lambda: cluster.calls() == {0: 1}, "the child to run on the new worker", timeout=30)
        execution = run.result(timeout=30)
        assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
        assert execution.output == iflows.expected_output(1)
    finally:
        backend.store.abort(tools.run_id_of(name), "stopped")  # a no-op once finished; ends a stalled run
        deadline = time.monotonic() + 30
        while not run.done() and time.monotonic() < deadline:
            time.sleep(0.05)

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
The same test runs on RabbitMQ (``DMAP_BROKER_URL=amqp://...``), which closes the window: there the
message stays unacknowledged on the broker until a pool process accepts it, and the broker hands it
to another worker as soon as the dead worker's channel closes.
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


def test_a_child_whose_worker_died_before_accepting_its_message_runs_without_waiting_for_the_dispatch_lease(
    fault_cluster: FaultCluster, broker: str, request: pytest.FixtureRequest
) -> None:
    # RabbitMQ closes the window: the message is acknowledged only when a pool process accepts it, and
    # the broker redelivers what a closed channel held unacknowledged, at once, to another worker.
    if broker == "redis":
        request.applymarker(pytest.mark.xfail(strict=True, reason=FETCH_BUG))
    cluster = fault_cluster
    cluster.dispatch_lease_seconds = 120
    (victim,) = cluster.start_workers(1, concurrency=1)
    (pool,) = tools.children_of(victim.pid)
    os.kill(pool, signal.SIGSTOP)  # idle as far as the main process knows; it will never accept
    backend = cluster.celery()
    name = f"fetch-{cluster.ns}"
    run_id = tools.run_id_of(name)
    run = tools.Background(
        lambda: dmap.run(
            iflows.work_map(max_concurrency=1), input=iflows.work_input(cluster.ns, 1), backend=backend, name=name
        )
    )
    try:

        def fetched() -> bool:
            if broker == "redis":
                return bool(cluster.conn.hlen("unacked") == 1 and cluster.queued() == 0)
            return backend.store.counts(run_id).leases == 1 and cluster.queued() == 0

        cluster.wait_for(fetched, "the worker to fetch the child's message")
        victim.kill()
        cluster.start_workers(1, concurrency=1)

        # The child never started: it must come back within a run lease or so, not the dispatch lease.
        cluster.wait_for(lambda: cluster.calls() == {0: 1}, "the child to run on the new worker", timeout=30)
        execution = run.result(timeout=30)
        assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
        assert execution.output == iflows.expected_output(1)
    finally:
        backend.store.abort(run_id, "stopped")  # a no-op once finished; ends a stalled run
        deadline = time.monotonic() + 30
        while not run.done() and time.monotonic() < deadline:
            time.sleep(0.05)

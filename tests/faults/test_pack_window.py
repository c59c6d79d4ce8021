"""A worker killed right after it takes a pack of children: the pack's other children must not wait 600 s.

A regression test of a fault scenario 1 (:mod:`tests.faults.test_worker_kills`) found: with many
permits the celery backend sends up to 16 children per message (``dmap.run_children``). The task
once only *registered* the pack's leases with the heartbeat, whose first renewal comes a beat later
(a third of the run lease, up to two thirds). A worker that died inside that window left the
children it had not started on their *dispatch* lease (``DMAP_DISPATCH_LEASE_SECONDS``, 600 s by
default): the Map Run stalled for ten minutes although no queue held them any more. The task now
swaps them for run leases as the pack arrives; the kill below lands well inside the first beat.
"""

from __future__ import annotations

import os
import time

import dmap
from dmap.keys import DEFAULT_PREFIX, RUN_KEY_SUFFIXES, run_keys
from tests.integration import flows as iflows

from . import tools
from .conftest import FaultCluster


def test_the_unstarted_children_of_a_pack_held_by_a_killed_worker_come_back_after_one_run_lease(
    fault_cluster: FaultCluster,
) -> None:
    cluster = fault_cluster
    cluster.lease_seconds = 6  # heartbeat beat: 2 s, so the kill below lands well inside the first beat
    cluster.dispatch_lease_seconds = 120
    (victim,) = cluster.start_workers(1, concurrency=1)
    backend = cluster.celery()
    items, name = 300, f"pack-{cluster.ns}"
    run_id = tools.run_id_of(name)
    run = tools.Background(
        lambda: dmap.run(
            iflows.work_map(max_concurrency=0),
            input=iflows.work_input(cluster.ns, items, hold={0}),
            backend=backend,
            name=name,
        )
    )
    try:
        # 300 permits at once: packs of 16, children 0-15 in the first message. Child 0 holds.
        cluster.wait_for(lambda: cluster.conn.get(f"itest:{cluster.ns}:holder") is not None, "child 0 to start")
        assert os.getpgid(int(cluster.conn.get(f"itest:{cluster.ns}:holder") or 0)) == victim.pid
        victim.kill()

        lease_key = run_keys(DEFAULT_PREFIX, run_id)[RUN_KEY_SUFFIXES.index("lease")]
        seconds, micros = backend.redis.client.time()
        now_ms = seconds * 1000 + micros // 1000
        left = {c: backend.redis.client.zscore(lease_key, str(c)) for c in range(1, 16)}
        assert all(score is not None for score in left.values()), left  # granted, never started
        # The dead worker had taken them: one run lease, not the dispatch lease, must bring them back.
        assert {c: (score or 0) - now_ms <= cluster.lease_seconds * 1000 for c, score in left.items()} == dict.fromkeys(
            range(1, 16), True
        ), {c: int((score or 0) - now_ms) for c, score in left.items()}

        cluster.start_workers(1, concurrency=1)
        execution = run.result(timeout=90)
        assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
        assert execution.output == iflows.expected_output(items)
        calls = {int(k): int(v) for k, v in cluster.conn.hgetall(f"itest:{cluster.ns}:calls").items()}
        assert calls == {i: 2 if i == 0 else 1 for i in range(items)}
    finally:
        backend.store.abort(run_id, "stopped")  # a no-op once finished; ends a stalled run's coordinator
        deadline = time.monotonic() + 30
        while not run.done() and time.monotonic() < deadline:
            time.sleep(0.05)

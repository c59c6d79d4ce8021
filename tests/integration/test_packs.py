"""Packs under MaxConcurrency on real ``dmap worker`` processes: children share messages, never the limit.

The coordinator (this process) sizes packs from the run's permits and the live worker slots of the
registry; a spy on the backend's ``dispatch_packs`` records what was sent. No assertion is about
time: ``wait_for`` only waits for a state to be reached.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import dmap
from dmap.child import ChildPlan
from dmap.store import Lease

from . import flows
from .conftest import Background, Cluster


def _spy(backend: dmap.backends.celery.CeleryBackend) -> list[list[int]]:
    sent: list[list[int]] = []
    real = backend.dispatch_packs

    def dispatch_packs(plan: ChildPlan, packs: Sequence[Sequence[Lease]]) -> None:
        sent.extend([lease.child for lease in pack] for pack in packs)
        real(plan, packs)

    backend.dispatch_packs = dispatch_packs  # type: ignore[method-assign]
    return sent


def test_a_limited_run_sends_packs_and_never_exceeds_max_concurrency(cluster: Cluster) -> None:
    cluster.start_workers(2, concurrency=2)
    backend = cluster.celery()
    cluster.wait_for(lambda: backend.worker_slots() >= 4, "the workers to advertise their slots")
    sent = _spy(backend)
    items, limit = 600, 16
    execution = dmap.run(
        flows.work_map(max_concurrency=limit), input=flows.work_input(cluster.ns, items, sleep_ms=2), backend=backend
    )
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == flows.expected_output(items)
    assert cluster.peak() <= limit
    assert cluster.calls() == dict.fromkeys(range(items), 1)  # every child ran once
    assert max(len(pack) for pack in sent) > 1  # 16 permits over 4 slots: packs of 2
    assert max(len(pack) for pack in sent) <= limit
    dispatched = [c for pack in sent for c in pack]
    assert len(dispatched) == len(set(dispatched))  # each sent once: no re-dispatch
    # The rest were staged and taken by workers with the permits they freed, without a message.
    assert len(dispatched) < items
    (map_run,) = execution.map_runs
    assert map_run.execution_counts["succeeded"] == items and map_run.execution_counts["total"] == items


def test_a_long_child_gives_its_unstarted_pack_mates_back_to_other_workers(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DMAP_PACK_RELEASE_SECONDS", "0.3")  # the workers' budget before they give pack-mates back
    cluster.start_workers(2, concurrency=1)
    backend = cluster.celery()
    cluster.wait_for(lambda: backend.worker_slots() >= 2, "the workers to advertise their slots")
    sent = _spy(backend)
    items = 40
    run = Background(
        lambda: dmap.run(
            flows.work_map(max_concurrency=8), input=flows.work_input(cluster.ns, items, hold={0}), backend=backend
        )
    )
    try:
        cluster.wait_for(lambda: cluster.conn.get(f"itest:{cluster.ns}:holder") is not None, "child 0 to start")
        first = next(pack for pack in sent if 0 in pack)
        assert len(first) > 1  # child 0 has pack-mates behind it
        # Every other child finishes while child 0 still holds its worker: its pack-mates were given back.
        cluster.wait_for(lambda: cluster.counter("done") >= items - 1, "every child but the held one to finish")
        assert cluster.calls().get(0) == 1 and cluster.counter("done") == items - 1
    finally:
        cluster.conn.set(f"itest:{cluster.ns}:release", 1)
    execution = run.result(timeout=120)
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == flows.expected_output(items)
    assert cluster.calls() == dict.fromkeys(range(items), 1)  # given back, then run once elsewhere
    (map_run,) = execution.map_runs
    assert map_run.execution_counts["succeeded"] == items

"""A cluster-wide rate limit holds across Map Runs and worker processes (DESIGN §13).

Two Map Runs at once, on three real ``dmap worker`` processes, call one HTTP service through
``http:invoke`` under ``dmap.set_limit(host, "40/s")``: the service, which answers 429 above 40
calls per second, must see no 429 and no more than 40 calls plus the burst in any sliding second
(counted where they arrive, at the service).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import dmap
from bench.throttle_server import ThrottlingServer
from dmap import control
from dmap.interpreter.context import execution_arn
from tests.flow.flows import http_map

from .conftest import Background, Cluster

ITEMS = 60  # per Map Run: 120 calls at 40/s, about 3 s
DELIVERY = 10  # calls the service takes at once: Redis times the tokens, not the way from a worker to the service


@pytest.fixture
def service(http_integration: None) -> Iterator[ThrottlingServer]:
    # A child that wakes too late for its token takes a new one (it never calls beside the next child's),
    # but the way from a worker to the service (the HTTP client, a busy CPU) still delays some calls
    # more than others: the service's own bucket takes DELIVERY calls at once (bench.flow's takes 5, and saw 429s
    # from such clumps on a machine at load 19), while every sliding second holds at most 40 + burst.
    server = ThrottlingServer(rate=40, capacity=DELIVERY).start()
    yield server
    server.stop()


def test_a_40_per_second_limit_holds_across_two_map_runs_on_three_worker_processes(
    cluster: Cluster, service: ThrottlingServer
) -> None:
    cluster.start_workers(3, concurrency=4)
    backend = cluster.celery()
    limit = dmap.set_limit(service.host, "40/s", backend=backend)
    try:
        runs = [
            Background(
                lambda n=n: dmap.run(
                    http_map(service.url, max_concurrency=12, max_attempts=0),
                    list(range(ITEMS)),
                    backend=backend,
                    name=f"limited-{n}-{cluster.ns}",
                )
            )
            for n in range(2)
        ]
        executions = [run.result() for run in runs]
    finally:
        dmap.delete_limit(limit.key, backend=backend)
    for execution in executions:
        assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
        (map_run,) = execution.map_runs
        assert map_run.item_counts["succeeded"] == ITEMS
        assert map_run.describe()["waits"] > 0  # the children did wait for tokens
    assert service.rejected == []
    assert len(service.accepted) == 2 * ITEMS
    assert service.busiest_second() <= 40 + limit.burst


def _work_map(max_concurrency: int) -> dict[str, Any]:
    call = {"Type": "Task", "Resource": "ITestWork", "End": True}
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Call"}
    return {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemProcessor": {**processor, "States": {"Call": call}},
                "MaxConcurrency": max_concurrency,
                "End": True,
            }
        },
    }


def test_children_waiting_long_for_tokens_give_their_slots_back_and_survive_a_killed_worker(cluster: Cluster) -> None:
    cluster.lease_seconds = 3  # a killed worker's children (and lost resume messages) come back soon
    cluster.dispatch_lease_seconds = 4
    park = {"DMAP_FLOW_PARK_SECONDS": "0.2"}  # a wait longer than 0.2 s gives the slot back
    workers = cluster.start_workers(2, concurrency=1, env=park)
    backend = cluster.celery()
    label, name = f"park-{cluster.ns}", f"parked-{cluster.ns}"
    limit = dmap.set_limit(label, "2/s", backend=backend)  # 12 children: 6 s of tokens, two worker slots
    items = [{"i": i, "ns": cluster.ns} for i in range(12)]
    try:
        run = Background(lambda: dmap.run(_work_map(12), items, backend=backend, name=name, flow={"limit": label}))
        [map_run] = _map_runs(cluster, backend, name)

        def parked() -> bool:  # eight RUNNING on two slots: the ones waiting long gave their slot back
            live = control.describe_map_run(map_run.map_run_arn, backend=backend)
            return live.execution_counts["running"] >= 8 and (live.flow or {}).get("waiting", 0) >= 6

        cluster.wait_for(parked, "eight children running on two slots, six of them waiting for tokens")
        workers[0].kill()  # kill -9 while children are parked (and maybe one calls or waits in its slot)
        cluster.start_workers(1, concurrency=1, env=park)
        execution = run.result()
    finally:
        dmap.delete_limit(limit.key, backend=backend)
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (done,) = execution.map_runs
    assert done.item_counts["succeeded"] == 12 and done.item_counts["failed"] == 0
    calls = {int(k): int(v) for k, v in cluster.conn.hgetall(f"itest:{cluster.ns}:calls").items()}
    assert sorted(calls) == list(range(12))  # every child called once; a second call only for the one
    assert sum(calls.values()) <= 13  # the killed slot may have been making when it died (at-least-once)
    assert done.describe()["waits"] >= 6


def _map_runs(cluster: Cluster, backend: Any, name: str) -> list[Any]:
    found: list[Any] = []

    def listed() -> bool:
        try:
            found[:] = control.list_map_runs(execution_arn("dmap", name), backend=backend)
        except dmap.NotFoundError:  # the execution is not journaled yet
            return False
        return bool(found)

    cluster.wait_for(listed, "the Map Run to start")
    return found

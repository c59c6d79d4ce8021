"""A cluster-wide rate limit holds across Map Runs and worker processes (DESIGN §13).

Two Map Runs at once, on three real ``dmap worker`` processes, call one HTTP service through
``http:invoke`` under ``dmap.set_limit(host, "40/s")``: the service, which answers 429 above 40
calls per second, must see no 429 and no more than 40 calls plus the burst in any sliding second
(counted where they arrive, at the service).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import dmap
from bench.throttle_server import ThrottlingServer
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

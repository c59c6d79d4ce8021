"""Faults of a real multi-container cluster under a 20,000-item run with a ResultWriter.

The cluster is docker-compose.yml as users get it (images mapped by deploy/compose.local.yml) plus
tests/docker/compose.faults.yml: three workers (``--concurrency 4``), Redis with AOF, moto's S3, a
coordinator container restarted on failure, leases of 5 s. Each scenario injects its fault with
``docker`` once 30% of the items have started, then lets the run finish and reads every result file
back: nothing may be lost or written twice, every item must have run. The numbers (handler re-runs,
the longest stall in progress, the run's time against the fault-free run, coordinator restarts) go
to the table printed at the end of the session and to deploy/README.md.
"""

from __future__ import annotations

import time

import pytest

from .cluster import docker, freeze, thaw
from .scenario import BASELINE, LEASE_S, FaultCluster, FaultRun

AT = 0.3
"""Inject the fault once this fraction of the items has started."""

pytestmark = pytest.mark.timeout(900)  # the first test also builds the images (about 2 min cold)


def test_the_fault_free_run_sets_the_baseline(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "baseline")
    run.start()
    summary = run.finish()
    numbers = run.check("none", summary)
    BASELINE["seconds"] = numbers.seconds
    assert numbers.reruns == 0


def test_docker_kill_of_two_of_three_workers(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "kill-workers")
    run.start()
    run.wait_started(AT)
    killed = cluster.workers()[:2]
    for name in killed:
        docker("kill", name)
    run.check("docker kill of 2 of 3 worker containers (restart: unless-stopped)", run.finish())


def test_docker_kill_of_the_coordinator_container(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "kill-coordinator")
    run.start()
    run.wait_started(AT)
    docker("kill", cluster.coordinator())
    numbers = run.check("docker kill of the coordinator (restart: on-failure)", run.finish())
    assert numbers.restarts >= 1


def test_docker_restart_of_redis(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "restart-redis")
    run.start()
    run.wait_started(AT)
    docker("restart", "-t", "10", cluster.compose.container("redis"))
    run.check("docker restart of Redis (AOF, SIGTERM)", run.finish())


def test_a_worker_cut_off_past_its_lease_then_reconnected_counts_nothing_twice(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "disconnect-worker")
    run.start()
    run.wait_started(AT)
    name, network = cluster.workers()[0], cluster.compose.network
    docker("network", "disconnect", network, name)
    time.sleep(2 * LEASE_S)
    docker("network", "connect", network, name)
    run.check(f"a worker's network disconnected {2 * LEASE_S:g} s (lease {LEASE_S:g} s)", run.finish())


def test_the_coordinator_cut_off_from_redis_for_10_s(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "cut-coordinator")
    run.start()
    run.wait_started(AT)
    name, network = cluster.coordinator(), cluster.compose.network
    docker("network", "disconnect", network, name)
    time.sleep(10)
    docker("network", "connect", network, name)
    run.check("the coordinator's network disconnected 10 s", run.finish())


def test_flapping_links_of_two_workers(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "flapping")
    run.start()
    run.wait_started(AT)
    names, network = cluster.workers()[:2], cluster.compose.network
    for _ in range(6):
        for name in names:
            docker("network", "disconnect", network, name)
        time.sleep(1.0)
        for name in names:
            docker("network", "connect", network, name)
        time.sleep(1.0)
    run.check("2 workers' links down 1 s / up 1 s, 6 times", run.finish())


def test_a_worker_paused_past_its_lease_then_unpaused_counts_nothing_twice(cluster: FaultCluster) -> None:
    run = FaultRun(cluster, "pause-worker")
    run.start()
    run.wait_started(AT)
    name = cluster.workers()[0]
    how = freeze(name)
    time.sleep(2 * LEASE_S)
    thaw(name, how)
    frozen = "docker pause" if how == "pause" else "SIGSTOP (docker pause failed)"
    run.check(f"{frozen} of a worker {2 * LEASE_S:g} s (lease {LEASE_S:g} s)", run.finish())

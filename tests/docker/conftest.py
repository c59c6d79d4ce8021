"""Fixtures of the container tests: the engine, the images, the fault cluster, and the numbers table.

Every test here needs a Docker engine. :func:`engine` finds one or starts ``dockerd
--iptables=false`` (root only) and builds the images (``deploy/local-images.sh``, cached); where the
engine cannot start the tests skip, saying why — the only reason they skip, in CI too. The fault
scenarios share one cluster (``fault_cluster``, compose project ``dmap-faults``: Redis, moto's S3,
``tally``, three workers), started once per session and removed at its end; each scenario heals
what its fault left before the next one starts.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import FAULT_FILES, Compose, Unavailable, ensure_engine, ensure_images
from .scenario import FaultCluster, table


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print each container fault scenario's numbers (lost, double, re-runs, stall, cost)."""
    lines = table()
    if lines:
        terminalreporter.section("container fault scenarios")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker engine that answers and every image the compose files use."""
    try:
        ensure_engine()
    except Unavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")
    ensure_images()


@pytest.fixture(scope="session")
def fault_cluster(engine: None) -> Iterator[FaultCluster]:
    """The ``dmap-faults`` project, up with three healthy workers; removed (volumes too) afterwards."""
    # Not under pytest's temporary folders: those are 0700, and the coordinator runs as user 10001.
    specs = Path(tempfile.mkdtemp(prefix="dmap-fault-specs-"))
    specs.chmod(0o755)
    compose = Compose("dmap-faults", FAULT_FILES, env={"FAULTS_SPECS": str(specs)})
    compose.down()
    try:
        compose.run("up", "-d", "--wait", "--scale", "worker=3", "worker", "minio", "tally", timeout=300)
        yield FaultCluster(compose, specs)
    finally:
        compose.down()
        shutil.rmtree(specs, ignore_errors=True)


@pytest.fixture
def cluster(fault_cluster: FaultCluster) -> Iterator[FaultCluster]:
    """The shared fault cluster, healed after the test (workers running, unpaused, connected)."""
    try:
        yield fault_cluster
    finally:
        fault_cluster.heal()

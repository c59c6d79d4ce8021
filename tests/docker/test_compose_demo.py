"""``docker compose up demo`` and ``--scale worker=4`` for real, as the README tells users to run them.

docker-compose.yml as it is, with only the registry images mapped to local builds
(deploy/compose.local.yml): the demo job must exit 0 with SUCCEEDED and the result files in S3
must check out (``examples.demo.verify``: 197 succeeded, 3 tolerated failures); then the cluster
scaled to four workers, Flower and the metrics exporter included, must be healthy and run the demo
again. The project (``dmap-demo``) publishes the compose file's host ports (9000, 9001, 5555, 9808).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator

import pytest

from .cluster import Compose, inspect, is_healthy, logs, wait_for

pytestmark = pytest.mark.timeout(900)  # may build the images first (about 2 min cold)


@pytest.fixture
def demo(engine: None) -> Iterator[Compose]:
    """The ``dmap-demo`` project, removed (volumes too) before and after."""
    project = Compose("dmap-demo")
    project.down()
    try:
        yield project
    finally:
        project.down()


def _demo_succeeded(project: Compose) -> dict[str, object]:
    name = project.container("demo")
    output = logs(name)
    assert inspect(name)["State"]["ExitCode"] == 0, output[-3000:]
    start = ("\n" + output).rindex("\n{\n")  # the last run's document (a rerun's container keeps its logs)
    execution: dict[str, object] = json.JSONDecoder().raw_decode(output[start:])[0]
    assert execution["status"] == "SUCCEEDED", execution
    return execution


def _verified(project: Compose) -> str:
    done = project.run("run", "--rm", "--entrypoint", "python", "demo", "-m", "examples.demo.verify", check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(r"(\d+) succeeded, (\d+) failed .*, (\d+) pending", done.stderr)
    assert found is not None, done.stderr[-2000:]
    assert found.groups() == ("197", "3", "0")
    return found.group(0)


def test_docker_compose_up_demo_finishes_with_verified_results_then_scales_to_four_workers(demo: Compose) -> None:
    demo.run("up", "demo", timeout=600)
    _demo_succeeded(demo)
    _verified(demo)

    demo.run("up", "-d", "--scale", "worker=4", timeout=300)
    services = [*demo.containers("worker"), demo.container("flower"), demo.container("metrics")]
    assert len(services) == 6
    for name in services:
        wait_for(functools.partial(is_healthy, name), f"{name} to be healthy", 120, every=1.0)
    demo.run("up", "--scale", "worker=4", "demo", timeout=600)
    _demo_succeeded(demo)
    _verified(demo)

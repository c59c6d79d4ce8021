"""The metrics named after AWS's (dmap.metrics_aws), scraped over HTTP from a real metrics server.

Executions run on a private local backend in this process; the counts are read back the way
Prometheus reads them (``GET /metrics``, parsed by prometheus-client's own parser) and compared
with what DescribeExecution / DescribeMapRun say about the same runs.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap import metrics, metrics_aws
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from tests.definitions import map_state

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

ITEMS = 10
FAILING = {2, 5, 8}
_gate = threading.Event()


@dmap.task("AwsMetricsWork")
def work(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Fail the items marked ``fail``; wait for the test's gate on those marked ``wait``."""
    if event.get("wait"):
        _gate.wait(30)
    if event.get("fail"):
        raise ValueError(f"item {event['i']} is marked to fail")
    return event


def _definition(tmp_path: Path, name: str | None = None, **map_fields: Any) -> tuple[Path, str]:
    """A definition file whose stem is the state machine name (unique unless given) and that name."""
    name = name or f"awsm{uuid.uuid4().hex[:8]}"
    state = map_state(
        {"Work": {"Type": "Task", "Resource": "AwsMetricsWork", "End": True}},
        **{"ItemsPath": "$.items", "MaxConcurrency": 1, **map_fields},
    )
    path = tmp_path / uuid.uuid4().hex / f"{name}.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"StartAt": "Fan", "States": {"Fan": state}}))
    return path, name


def _items(*, wait: bool = False) -> dict[str, Any]:
    return {"items": [{"i": i, "fail": i in FAILING, "wait": wait and i == 0} for i in range(ITEMS)]}


@pytest.fixture
def server() -> Iterator[metrics.MetricsServer]:
    """This process's metrics server (the one the coordinator hooks report to), on a free port."""
    started = metrics.start_metrics_server(0, "127.0.0.1")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    """A private local backend (its own store and threads)."""
    made = LocalBackend(Settings())
    try:
        yield made
    finally:
        made.close()


def _scrape(server: metrics.MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_aws_named_metrics_count_executions_and_children_after_runs_with_failures(
    server: metrics.MetricsServer, backend: LocalBackend, tmp_path: Path
) -> None:
    tolerant, machine = _definition(tmp_path, ToleratedFailureCount=len(FAILING))
    strict, _ = _definition(tmp_path, machine)  # the same state machine name, no tolerance

    ok = dmap.run(tolerant, input=_items(), backend=backend)
    failed = dmap.run(strict, input=_items(), backend=backend)

    assert (ok.status, failed.status) == ("SUCCEEDED", "FAILED")
    samples = _scrape(server)
    top = {"state_machine": machine, "map_run": ""}
    assert _value(samples, "dmap_ExecutionsStarted_total", **top) == 2
    assert _value(samples, "dmap_ExecutionsSucceeded_total", **top) == 1
    assert _value(samples, "dmap_ExecutionsFailed_total", **top) == 1
    assert ("dmap_ExecutionsAborted_total", tuple(sorted(top.items()))) not in samples  # none aborted: no series
    for execution in (ok, failed):
        (run,) = execution.map_runs
        children = {"state_machine": f"{machine}/{run.label}", "map_run": run.run_id}
        counts = run.execution_counts
        assert _value(samples, "dmap_ExecutionsSucceeded_total", **children) == counts["succeeded"]
        assert _value(samples, "dmap_ExecutionsFailed_total", **children) == counts["failed"]
        assert _value(samples, "dmap_ExecutionsAborted_total", **children) == counts["aborted"]
        assert _value(samples, "dmap_ExecutionsTimedOut_total", **children) == counts["timedOut"]
        started = counts["total"] - counts["pending"]
        assert _value(samples, "dmap_ExecutionsStarted_total", **children) == started
    (ok_run,) = ok.map_runs
    assert ok_run.execution_counts["failed"] == len(FAILING)  # the tolerant run ran every child
    (failed_run,) = failed.map_runs  # MaxConcurrency 1: the first failure (item 2) ends the run
    assert (failed_run.execution_counts["succeeded"], failed_run.execution_counts["failed"]) == (2, 1)
    assert _value(samples, "dmap_ApproximateOpenMapRunCount") == 0
    assert _value(samples, "dmap_OpenMapRunLimit") == float("inf")
    assert _value(samples, "dmap_ApproximateMapRunBacklogSize") == 0


def test_an_open_map_run_is_counted_until_it_ends(
    server: metrics.MetricsServer, backend: LocalBackend, tmp_path: Path
) -> None:
    path, _ = _definition(tmp_path, ToleratedFailureCount=len(FAILING))
    _gate.clear()
    box: dict[str, dmap.Execution] = {}
    runner = threading.Thread(
        target=lambda: box.setdefault("x", dmap.run(path, input=_items(wait=True), backend=backend))
    )
    runner.start()
    try:
        for _ in range(500):  # until the run is tracked (its first child waits on the gate)
            if _value(_scrape(server), "dmap_ApproximateOpenMapRunCount") == 1:
                break
            time.sleep(0.02)
        assert _value(_scrape(server), "dmap_ApproximateOpenMapRunCount") == 1
    finally:
        _gate.set()
        runner.join(60)
    assert box["x"].status == "SUCCEEDED"
    assert _value(_scrape(server), "dmap_ApproximateOpenMapRunCount") == 0


def test_redis_counters_count_each_event_of_an_execution_once(real_redis: Any) -> None:
    counters = metrics_aws.RedisExecutionCounters(real_redis, prefix=f"t{uuid.uuid4().hex[:6]}", seen_ttl=60)
    arn = "arn:aws:states:local:000000000000:execution:sm:one"
    assert counters.count(arn, "Started", "ExecutionsStarted", "sm") is True
    assert counters.count(arn, "Started", "ExecutionsStarted", "sm") is False  # a resumed coordinator says it again
    assert counters.count(arn, "FAILED#0", "ExecutionsFailed", "sm") is True
    assert counters.count(arn, "Redriven#1", "ExecutionsRedriven", "sm") is True
    assert counters.count(arn, "SUCCEEDED#1", "ExecutionsSucceeded", "sm") is True
    assert counters.read() == {
        ("ExecutionsStarted", "sm"): 1,
        ("ExecutionsFailed", "sm"): 1,
        ("ExecutionsRedriven", "sm"): 1,
        ("ExecutionsSucceeded", "sm"): 1,
    }

"""dmap.metrics: a scrape during a run sees the Map Run counts move; the Redis exporter finds runs."""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import dmap
from dmap import metrics
from dmap.backends.local import LocalBackend
from dmap.errors import ConfigurationError
from dmap.interpreter.context import execution_arn
from dmap.records import new_run_id
from dmap.store import ChildSpec, ChildStatus, RunConfig
from dmap.store.memory import MemoryRunStore
from dmap.store.redis import RedisRunStore

from .conftest import ROOT
from .drift import dashboard_metric_names

ITEMS = 5
GATE = threading.Event()
ENTERED = threading.Semaphore(0)


@dmap.task("MetricsGate")
def gate(event: Any, context: dmap.TaskContext) -> Any:
    """Blocks until the test opens the gate, so a scrape sees children running."""
    ENTERED.release()
    assert GATE.wait(60), "the test never opened the gate"
    return {"seen": event}


DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "Label": "Fan",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Gate",
                "States": {
                    "Gate": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:MetricsGate",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def item_count(samples: dict[Any, float], run: str, status: str) -> float:
    return samples[
        (
            "dmap_map_run_items",
            frozenset({("map_run", run), ("state_machine", "dmap"), ("label", "Fan"), ("status", status)}),
        )
    ]


def run_metric(
    samples: dict[Any, float], name: str, run: str, state_machine: str = "dmap", label: str = "Fan"
) -> float:
    return samples[(name, frozenset({("map_run", run), ("state_machine", state_machine), ("label", label)}))]


@pytest.fixture
def server() -> Iterator[metrics.MetricsServer]:
    running = metrics.start_metrics_server(0, "127.0.0.1")
    yield running
    running.stop()


def test_a_scrape_during_a_local_run_sees_the_counts_move(server: metrics.MetricsServer) -> None:
    GATE.clear()
    backend = LocalBackend()
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    run = new_run_id(execution_arn("dmap", name), "Fan", 0)
    metrics.track_map_run(backend.store, run, state_machine="dmap", label="Fan")
    try:
        execution = dmap.run(DEFINITION, input={"items": list(range(ITEMS))}, backend=backend, name=name, wait=False)
        for _ in range(2):  # MaxConcurrency children are inside the handler
            assert ENTERED.acquire(timeout=30)
        during = scrape(server.port)
        assert item_count(during, run, "running") == 2
        assert item_count(during, run, "succeeded") == 0
        assert run_metric(during, "dmap_map_run_running_children", run) == 2
        assert run_metric(during, "dmap_map_run_max_concurrency", run) == 2
        assert run_metric(during, "dmap_map_run_items_processed_total", run) == 0
        GATE.set()
        deadline = time.monotonic() + 60
        while execution.status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
        after = scrape(server.port)
        assert item_count(after, run, "succeeded") == ITEMS
        assert item_count(after, run, "running") == 0
        assert item_count(after, run, "total") == ITEMS
        assert run_metric(after, "dmap_map_run_items_processed_total", run) == ITEMS
        assert after[("dmap_map_runs_reported", frozenset())] >= 1
    finally:
        GATE.set()
        metrics.finish_map_run(run)
        backend.close()


def test_dispatch_latency_is_recorded_only_while_a_server_runs() -> None:
    server = metrics.start_metrics_server(0, "127.0.0.1")
    try:
        metrics.observe_dispatch(0.004, 3, backend="celery")
        metrics.observe_dispatch(0.5, 0, backend="celery")  # nothing granted: not a dispatch
        samples = scrape(server.port)
    finally:
        server.stop()
    celery = frozenset({("backend", "celery")})
    assert samples[("dmap_dispatched_children_total", celery)] == 3
    assert samples[("dmap_dispatch_latency_seconds_count", celery)] == 1
    assert samples[("dmap_dispatch_latency_seconds_bucket", celery | {("le", "0.005")})] == 1
    assert metrics._state is None  # the stopped server no longer records: the hook is a no-op again
    metrics.observe_dispatch(0.004, 3, backend="celery")


def test_the_hooks_never_import_prometheus_client_and_the_server_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    metrics.track_map_run(MemoryRunStore(), "r-none")
    metrics.observe_dispatch(0.1, 1)
    metrics.finish_map_run("r-none")
    with pytest.raises(ConfigurationError, match=r"pip install 'dmap\[metrics\]'"):
        metrics.start_metrics_server(0, "127.0.0.1")


def test_a_finished_run_stays_reported_for_the_linger_period_then_goes() -> None:
    now = [100.0]
    runs = metrics.ActiveRuns(linger_seconds=60, clock=lambda: now[0])
    store = MemoryRunStore()
    runs.track(metrics.TrackedRun(store, "a"))
    runs.track(metrics.TrackedRun(store, "b"))
    runs.finish("a")
    now[0] += 59
    assert {r.run_id for r in runs()} == {"a", "b"}
    now[0] += 2
    assert {r.run_id for r in runs()} == {"b"}


def _specs(count: int) -> list[ChildSpec]:
    return [ChildSpec(child=i, first=i, items=1, input=f'{{"i":{i}}}', cursor=i + 1) for i in range(count)]


def test_the_redis_exporter_discovers_live_runs_and_forgets_finished_ones(any_redis: Any) -> None:
    now = [1000.0]
    store = RedisRunStore(any_redis, prefix=f"t{uuid.uuid4().hex[:6]}")
    run = str(uuid.uuid4())
    store.create_run(run, RunConfig(max_concurrency=3))
    leases = store.acquire(run, _specs(3), dispatch_lease_ms=60_000).leases
    for lease in leases[:2]:
        assert store.start(run, lease.child, lease.token, lease_ms=60_000).outcome == "run"
    store.complete(run, leases[0].child, leases[0].token, ChildStatus.SUCCEEDED, '{"Status":"SUCCEEDED"}')
    any_redis.rpush("dmap-test-queue", "m1", "m2")
    discovery = metrics.RedisRunDiscovery(store, linger_seconds=30, rescan_seconds=0, clock=lambda: now[0])
    queue = metrics.QueueLengthCollector(any_redis, "dmap-test-queue")
    server = metrics.start_metrics_server(0, "127.0.0.1", runs=discovery, collectors=[queue])
    try:
        samples = scrape(server.port)
        labels = {("map_run", run), ("state_machine", ""), ("label", "")}
        assert samples[("dmap_map_run_items", frozenset({*labels, ("status", "succeeded")}))] == 1
        assert samples[("dmap_map_run_items", frozenset({*labels, ("status", "running")}))] == 1
        assert samples[("dmap_map_run_items", frozenset({*labels, ("status", "pending")}))] == 1
        assert samples[("dmap_map_run_leases", frozenset(labels))] == 2
        assert samples[("dmap_queue_length", frozenset({("queue", "dmap-test-queue")}))] == 2
        for lease in leases[1:]:
            store.start(run, lease.child, lease.token, lease_ms=60_000)
            store.complete(run, lease.child, lease.token, ChildStatus.SUCCEEDED, '{"Status":"SUCCEEDED"}')
        store.set_total(run, items=3, children=3)
        now[0] += 10  # finished, but within the linger period: the final counts are still served
        final = scrape(server.port)
        assert final[("dmap_map_run_items", frozenset({*labels, ("status", "succeeded")}))] == 3
        now[0] += 31
        assert ("dmap_map_run_leases", frozenset(labels)) not in scrape(server.port)
    finally:
        server.stop()
        store.delete_run(run)
        any_redis.delete("dmap-test-queue")


def test_the_grafana_dashboard_queries_only_metrics_dmap_exports(fake_redis: Any) -> None:
    store = MemoryRunStore()
    store.create_run("g", RunConfig())
    runs = metrics.ActiveRuns()
    runs.track(metrics.TrackedRun(store, "g", "sm", "label"))
    exporter = metrics.start_metrics_server(
        0, "127.0.0.1", runs=runs, collectors=[metrics.QueueLengthCollector(fake_redis, "q")]
    )
    hooks = metrics.start_metrics_server(0, "127.0.0.1")
    try:
        metrics.observe_dispatch(0.01, 1, backend="local")
        exported = {name for name, _ in scrape(exporter.port)} | {name for name, _ in scrape(hooks.port)}
    finally:
        exporter.stop()
        hooks.stop()
    used = dashboard_metric_names(ROOT / "deploy" / "grafana" / "dmap-map-runs.json")
    assert len(used) >= 10
    assert used <= exported, sorted(used - exported)


def test_effective_concurrency_waiting_children_and_throttled_calls_are_exported_as_describe_shows_them(
    real_redis: Any,
) -> None:
    from dmap.flow.hooks import ChildFlow
    from dmap.flow.limits import limits_for
    from dmap.flow.rates import make_limit
    from dmap.flow.run import flow_state, update_flow

    store = RedisRunStore(real_redis, prefix=f"t{uuid.uuid4().hex[:6]}")
    run = str(uuid.uuid4())
    store.create_run(run, RunConfig(max_concurrency=8))
    leases = store.acquire(run, _specs(3), dispatch_lease_ms=60_000).leases
    for lease in leases:
        assert store.start(run, lease.child, lease.token, lease_ms=60_000).outcome == "run"
    server = metrics.start_metrics_server(0, "127.0.0.1", runs=lambda: [metrics.TrackedRun(store, run, "m", "Fan")])
    key = f"svc-{uuid.uuid4().hex[:6]}"
    limits = limits_for(store)
    stop = threading.Event()
    try:
        before = scrape(server.port)  # adaptive off: the effective limit is MaxConcurrency
        assert run_metric(before, "dmap_map_run_effective_concurrency", run, "m") == 8
        assert run_metric(before, "dmap_map_run_waiting_children", run, "m") == 0
        update_flow(store, run, adaptive=True, min_concurrency=2)
        flows = [ChildFlow(store, run, lease.child, {"adaptive": True}, should_abort=stop.is_set) for lease in leases]
        flows[0].on_error("Lambda.TooManyRequestsException")  # one cut of the effective limit
        flows[1].on_error("States.TaskFailed")  # not a throttle: neither counted nor cut
        # One token a minute: child 1 takes it, child 2 waits (and is counted waiting) until the test stops it.
        limits.set(make_limit(key, "1/m"))
        flows[1].before_call(key, None, {})
        waiter = threading.Thread(target=flows[2].before_call, args=(key, None, {}), daemon=True)
        waiter.start()
        deadline = time.monotonic() + 30
        while flow_state(store, run, 8)["waiting"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        during = scrape(server.port)
        described = flow_state(store, run, 8)
        assert described["effectiveConcurrency"] < 8 and described["adaptive"]
        assert run_metric(during, "dmap_map_run_effective_concurrency", run, "m") == described["effectiveConcurrency"]
        assert run_metric(during, "dmap_map_run_waiting_children", run, "m") == described["waiting"] == 1
        assert run_metric(during, "dmap_map_run_throttled_calls_total", run, "m") == described["throttledCalls"] == 1
        stop.set()
        waiter.join(timeout=30)
        assert not waiter.is_alive()
        update_flow(store, run, adaptive=False, min_concurrency=None)
        after = scrape(server.port)
        assert run_metric(after, "dmap_map_run_waiting_children", run, "m") == 0
        assert run_metric(after, "dmap_map_run_effective_concurrency", run, "m") == 8  # off: MaxConcurrency again
    finally:
        stop.set()
        server.stop()
        limits.delete(key)
        store.delete_run(run)

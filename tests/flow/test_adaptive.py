"""Adaptive concurrency: the AIMD rule on both run stores, and a real run against a throttling HTTP service."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import dmap
from bench.throttle_server import ThrottlingServer
from dmap.backends.local import LocalBackend
from dmap.flow.adaptive import Adaptive, is_throttle
from dmap.store import ChildSpec, ChildStatus, RunConfig
from dmap.store.memory import MemoryRunStore
from dmap.store.redis import RedisRunStore

from .flows import http_map


def test_throttling_errors_are_recognised_by_name_status_and_user_patterns() -> None:
    for name in ("Lambda.TooManyRequestsException", "ThrottlingException", "SlowDown", "States.Http.StatusCode.429"):
        assert is_throttle(name)
    assert is_throttle("States.Http.StatusCode.503")
    assert not is_throttle("States.Http.StatusCode.500") and not is_throttle("States.TaskFailed")
    assert is_throttle("QuotaExceeded", ["Quota*"])


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, real_redis: Any) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryRunStore()
        return
    client = real_redis.__class__(connection_pool=real_redis.connection_pool)
    yield RedisRunStore(client, prefix=f"flowtest-{uuid.uuid4().hex[:8]}")


def _specs(first: int, count: int) -> list[ChildSpec]:
    return [ChildSpec(c, c, 1, "{}", c + 1) for c in range(first, first + count)]


def test_a_throttle_cuts_the_effective_concurrency_once_per_window_and_acquire_obeys_it(store: Any) -> None:
    run = uuid.uuid4().hex
    store.create_run(run, RunConfig(max_concurrency=20))
    adaptive = Adaptive(store)
    assert adaptive.switch_on(run, floor=2) == (True, 20)
    granted = store.acquire(run, _specs(0, 30), dispatch_lease_ms=60_000).leases
    assert len(granted) == 20
    for lease in granted:
        assert store.start(run, lease.child, lease.token, lease_ms=60_000).outcome == "run"
    time.sleep(0.01)  # a cut is stamped after the children started (ms clock)
    assert adaptive.throttled(run, granted[0].child, 0.0) == (True, 14)
    # The others started before the cut: their throttles say nothing new.
    assert adaptive.throttled(run, granted[1].child, 0.0) == (True, 14)
    assert adaptive.state(run)["throttledCalls"] == 2
    # 20 held, limit 14: nothing is granted until the running children drain below it.
    for lease in granted[:6]:
        store.complete(run, lease.child, lease.token, ChildStatus.SUCCEEDED, "{}")
    assert store.acquire(run, _specs(20, 10), dispatch_lease_ms=60_000).leases == []
    store.complete(run, granted[6].child, granted[6].token, ChildStatus.SUCCEEDED, "{}")
    assert len(store.acquire(run, _specs(20, 10), dispatch_lease_ms=60_000).leases) == 1
    # 14 held again: full. One more finishes; the child started in its place, after the cut, cuts again.
    assert store.acquire(run, _specs(21, 1), dispatch_lease_ms=60_000).leases == []
    child = granted[7]
    store.complete(run, child.child, child.token, ChildStatus.SUCCEEDED, "{}")
    (lease,) = store.acquire(run, _specs(21, 1), dispatch_lease_ms=60_000).leases
    time.sleep(0.002)
    store.start(run, lease.child, lease.token, lease_ms=60_000)
    assert adaptive.throttled(run, lease.child, time.monotonic()) == (True, 9)


def test_successes_grow_it_by_one_per_window_up_to_max_concurrency_and_off_restores_it(store: Any) -> None:
    run = uuid.uuid4().hex
    store.create_run(run, RunConfig(max_concurrency=5))
    adaptive = Adaptive(store)
    adaptive.switch_on(run)
    leases = store.acquire(run, _specs(0, 1), dispatch_lease_ms=60_000).leases
    store.start(run, leases[0].child, leases[0].token, lease_ms=60_000)
    time.sleep(0.002)
    adaptive.throttled(run, 0, time.monotonic())
    assert adaptive.state(run)["effectiveConcurrency"] == 3  # 5 x 0.7 = 3.5 -> 3
    store.complete(run, 0, leases[0].token, ChildStatus.SUCCEEDED, "{}")
    assert adaptive.grow(run) == (True, 3)  # one success is not a window of three
    for child in range(1, 3):
        (lease,) = store.acquire(run, _specs(child, 1), dispatch_lease_ms=60_000).leases
        store.start(run, child, lease.token, lease_ms=60_000)
        store.complete(run, child, lease.token, ChildStatus.SUCCEEDED, "{}")
    assert adaptive.grow(run) == (True, 4)
    assert adaptive.set_floor(run, 5) == (True, 5)
    assert adaptive.switch_off(run) == (False, 5)
    assert "effectiveConcurrency" not in adaptive.state(run)


@pytest.fixture
def throttled_http(http_integration: None) -> Iterator[ThrottlingServer]:
    # Besides 40/s, at most 4 calls in service, and the first ones held until a call is refused: 30
    # children calling at once are throttled for certain, however loaded the machine (no clock decides).
    server = ThrottlingServer(rate=40, capacity=4, latency=0.05, concurrency=4, hold_until_refused=60).start()
    yield server
    server.stop()


def test_an_adaptive_run_against_a_service_that_throttles_above_40_per_second_succeeds_and_cuts_its_concurrency(
    throttled_http: ThrottlingServer,
) -> None:
    backend = LocalBackend()
    try:
        execution = dmap.run(
            http_map(throttled_http.url, max_concurrency=30),
            list(range(150)),
            backend=backend,
            flow={"adaptive": True, "min_concurrency": 2},
        )
    finally:
        backend.close()
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    counts = map_run.item_counts
    assert counts["succeeded"] == counts["total"] == 150
    assert sum(counts[k] for k in ("succeeded", "failed", "timedOut", "aborted", "pending")) == counts["total"]
    assert len(throttled_http.accepted) == 150
    described = map_run.describe()
    # Every 429 the service sent reached the Map Run's count, and at least one of them cut the concurrency.
    assert described["throttledCalls"] == len(throttled_http.rejected) > 0
    assert described["adaptive"] is True and 2 <= described["effectiveConcurrency"] < 30

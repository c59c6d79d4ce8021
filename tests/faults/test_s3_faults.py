"""Scenario 6: S3 answering 503 SlowDown / 500 InternalError to some reads and writes, or to all of them.

A :class:`~tests.faults.s3proxy.FaultProxy` sits between dmap and moto (``AWS_ENDPOINT_URL_S3``
points at it). Transient errors — every third request — are absorbed by boto3's retries: the
20,000-item run succeeds with every item exported once. A permanent failure of the item reads
fails the run with ``States.ItemReaderFailed``, of the result writes with
``States.ResultWriterFailed``, each with a cause naming the object and S3's error code; the
execution ends FAILED, nothing crashes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dmap

from . import audit, flows
from .conftest import FaultCluster
from .s3proxy import INTERNAL, SLOW_DOWN, Fault, FaultProxy

ITEMS = int(os.environ.get("FAULT_ITEMS", "20000"))  # FAULT_ITEMS=2000 for a quicker local try
Proxied = Callable[[Callable[[str, str, int], Fault | None]], FaultProxy]


@pytest.fixture
def proxied(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxied]:
    """Start a fault proxy in front of moto and point boto3 (``AWS_ENDPOINT_URL_S3``) at it."""
    started: list[FaultProxy] = []

    def make(fault: Callable[[str, str, int], Fault | None]) -> FaultProxy:
        proxy = FaultProxy(s3_env, fault).start()
        started.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


def every_third(method: str, path: str, n: int) -> Fault | None:
    """Fail every third request, alternating SlowDown (throttling) and InternalError."""
    if n % 3:
        return None
    return SLOW_DOWN if n % 6 else INTERNAL


@pytest.mark.slow
def test_transient_s3_errors_on_reads_and_writes_are_retried_and_the_run_exports_every_item_once(
    fault_cluster: FaultCluster, s3_client: Any, bucket: str, proxied: Proxied
) -> None:
    cluster = fault_cluster
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(ITEMS))
    proxy = proxied(every_third)
    cluster.start_workers(3, concurrency=1)
    backend = cluster.celery()
    started = time.monotonic()
    execution = dmap.run(flows.fault_map(bucket), input=flows.fault_input(cluster.ns), backend=backend)
    seconds = time.monotonic() - started

    (map_run,) = execution.map_runs
    found = audit.audit_results(s3_client, bucket, map_run.run_id, ITEMS)  # straight from moto
    calls = cluster.fcalls()
    methods = sorted({method for method, _, _ in proxy.injected})
    audit.record(
        audit.Numbers(
            "6 S3 transient errors",
            ITEMS,
            f"{len(proxy.injected)} S3 errors ({', '.join(methods)}) of {len(proxy.injected) + proxy.forwarded}",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            None,
            seconds,
            str(execution.status),
        )
    )
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    found.check_clean()
    found.check_counts(map_run.item_counts)
    assert found.by_group == {"SUCCEEDED": ITEMS, "FAILED": 0, "PENDING": 0}
    assert {"GET", "PUT"} <= set(methods) or {"GET", "POST"} <= set(methods), proxy.injected
    assert calls == dict.fromkeys(range(ITEMS), 1)


def _failed_run(cluster: FaultCluster, bucket: str, items: int) -> tuple[dmap.Execution, float]:
    cluster.start_workers(2, concurrency=1)
    backend = cluster.celery()
    started = time.monotonic()
    execution = dmap.run(flows.fault_map(bucket), input=flows.fault_input(cluster.ns), backend=backend)
    return execution, time.monotonic() - started


@pytest.mark.slow
def test_items_that_s3_never_serves_fail_the_run_with_item_reader_failed_naming_the_object(
    fault_cluster: FaultCluster, s3_client: Any, bucket: str, proxied: Proxied
) -> None:
    items = 500
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(items))
    proxy = proxied(lambda method, path, n: SLOW_DOWN if method == "GET" and flows.ITEMS_KEY in path else None)

    execution, seconds = _failed_run(fault_cluster, bucket, items)

    audit.record(
        audit.Numbers(
            "6 S3 reads always fail",
            items,
            f"{len(proxy.injected)} SlowDown on GET {flows.ITEMS_KEY}",
            0,
            0,
            len(fault_cluster.fcalls()),
            None,
            seconds,
            f"{execution.status} {execution.error}",
        )
    )
    assert execution.status == "FAILED"
    assert execution.error == "States.ItemReaderFailed"
    assert execution.cause is not None and "SlowDown" in execution.cause and flows.ITEMS_KEY in execution.cause
    assert fault_cluster.fcalls() == {}  # nothing ran
    (map_run,) = execution.map_runs
    assert (map_run.status, map_run.error) == ("FAILED", "States.ItemReaderFailed")


@pytest.mark.slow
def test_results_that_s3_never_accepts_fail_the_run_with_result_writer_failed_naming_the_object(
    fault_cluster: FaultCluster, s3_client: Any, bucket: str, proxied: Proxied
) -> None:
    items = 2_000
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(items))
    out = f"/{bucket}/{flows.RESULTS_PREFIX}/"
    proxy = proxied(lambda method, path, n: INTERNAL if method in ("PUT", "POST") and path.startswith(out) else None)

    execution, seconds = _failed_run(fault_cluster, bucket, items)

    (map_run,) = execution.map_runs
    calls = fault_cluster.fcalls()
    audit.record(
        audit.Numbers(
            "6 S3 writes always fail",
            items,
            f"{len(proxy.injected)} InternalError on result writes",
            0,
            0,
            sum(calls.values()) - len(calls),
            None,
            seconds,
            f"{execution.status} {execution.error}",
        )
    )
    assert execution.status == "FAILED"
    assert execution.error == "States.ResultWriterFailed"
    assert execution.cause is not None
    assert f"s3://{bucket}/{flows.RESULTS_PREFIX}/{map_run.run_id}/" in execution.cause
    assert "InternalError" in execution.cause
    assert (map_run.status, map_run.error) == ("FAILED", "States.ResultWriterFailed")
    assert not any(
        k["Key"].startswith(flows.RESULTS_PREFIX) for k in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    )

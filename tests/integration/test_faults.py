"""Crashes on the celery backend: workers and the coordinator killed with SIGKILL, and a poison item.

Leases are short here (``DMAP_LEASE_SECONDS`` 2) so a dead worker costs two seconds, not thirty.
Every check counts what really ran through the handlers' Redis counters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import dmap
from dmap.interpreter.context import execution_arn
from dmap.records import new_run_id

from . import flows
from .conftest import ROOT, Background, Cluster
from .handlers import key


def _holder(cluster: Cluster) -> int:
    cluster.wait_for(lambda: cluster.conn.get(key(cluster.ns, "holder")) is not None, "the held item to start")
    return int(cluster.conn.get(key(cluster.ns, "holder")) or 0)


@pytest.mark.slow
def test_a_worker_killed_with_sigkill_mid_run_costs_a_lease_and_every_item_still_succeeds_once(
    cluster: Cluster,
) -> None:
    cluster.lease_seconds = 2
    workers = cluster.start_workers(3, concurrency=1)
    backend = cluster.celery()
    items, held = 300, 100
    run = Background(
        lambda: dmap.run(
            flows.work_map(max_concurrency=3),
            input=flows.work_input(cluster.ns, items, hold={held}, sleep_ms=5),
            backend=backend,
        )
    )
    holder = _holder(cluster)
    (victim,) = [w for w in workers if w.pid == os.getpgid(holder)]
    victim.kill()  # the main process and its pool child, mid-item
    execution = run.result()

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == flows.expected_output(items)
    (map_run,) = execution.map_runs
    assert map_run.item_counts["succeeded"] == map_run.item_counts["total"] == items
    assert map_run.item_counts["failed"] == map_run.item_counts["aborted"] == 0
    calls = cluster.calls()
    assert calls[held] == 2  # killed once, then run again elsewhere
    assert {i: n for i, n in calls.items() if i != held} == {i: 1 for i in range(items) if i != held}
    assert backend.store.counts(map_run.run_id).reclaimed >= 1


def test_a_child_queued_behind_a_killed_workers_running_child_stays_in_the_queue_for_other_workers(
    cluster: Cluster,
) -> None:
    cluster.lease_seconds = 2
    (victim,) = cluster.start_workers(1, concurrency=1)
    backend = cluster.celery()
    name = f"stranded-{cluster.ns}"
    run = Background(
        lambda: dmap.run(
            flows.work_map(max_concurrency=2),
            input=flows.work_input(cluster.ns, 2, hold={0}),
            backend=backend,
            name=name,
        )
    )
    try:
        _holder(cluster)
        deadline = time.monotonic() + 2  # give the busy worker the chance to reserve child 1, if it will
        while cluster.conn.llen(cluster.queue) and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.kill()

        # Child 1 never started; its message must still be in the queue, not lost with the dead worker
        # (where only DMAP_DISPATCH_LEASE_SECONDS, 600 s by default, would bring it back).
        assert cluster.conn.llen(cluster.queue) == 1
        cluster.start_workers(1, concurrency=1)
        execution = run.result(timeout=60)
        assert execution.status == "SUCCEEDED"
        assert cluster.calls() == {0: 2, 1: 1}
    finally:
        backend.store.abort(new_run_id(execution_arn("dmap", name), "Fan", 0), "stopped")  # no-op once finished


@pytest.mark.slow
def test_a_coordinator_killed_with_sigkill_and_restarted_under_the_same_name_never_reruns_a_started_item(
    cluster: Cluster,
) -> None:
    # The killed coordinator may have been granted permits it never sent; they come back after the
    # dispatch lease, so keep it short.
    cluster.dispatch_lease_seconds = 3
    cluster.start_workers(2, concurrency=2)
    items, name = 400, f"crash-{cluster.ns}"
    command = [sys.executable, "-m", "tests.integration.drive", name, cluster.ns, str(items), "4", "10"]
    first = subprocess.Popen(command, cwd=ROOT, env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cluster.wait_for(lambda: cluster.counter("done") >= items // 3 or first.poll() is not None, "a third of the items")
    first.kill()
    first.communicate(timeout=10)
    started_before = {i for i, n in cluster.calls().items() if n}
    assert 0 < len(started_before) < items, "the coordinator must die mid-run"

    second = subprocess.run(command, cwd=ROOT, env=cluster.env(), capture_output=True, timeout=180, check=False)

    assert second.returncode == 0, second.stderr.decode()[-3000:]
    outcome = json.loads(second.stdout.decode().strip().splitlines()[-1])
    assert outcome["status"] == "SUCCEEDED"
    assert outcome["output"] == flows.expected_output(items)
    assert outcome["item_counts"]["succeeded"] == outcome["item_counts"]["total"] == items
    run_id = new_run_id(execution_arn("dmap", name), "Fan", 0)
    assert outcome["map_run_arn"].endswith(":" + run_id)  # the same Map Run, resumed
    calls = cluster.calls()
    assert all(calls[i] == 1 for i in started_before)
    assert calls == {i: 1 for i in range(items)}


def test_a_restarted_coordinator_resends_children_it_was_granted_but_whose_messages_never_reached_the_queue(
    cluster: Cluster,
) -> None:
    items, limit, name = 30, 10, f"lost-{cluster.ns}"
    command = [sys.executable, "-m", "tests.integration.drive", name, cluster.ns, str(items), str(limit), "0"]
    first = subprocess.Popen(command, cwd=ROOT, env=cluster.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    second: subprocess.Popen[bytes] | None = None
    try:
        # No worker yet: the coordinator takes its 10 permits and sends 10 messages, then waits.
        cluster.wait_for(lambda: cluster.conn.llen(cluster.queue) == limit, "the first 10 children to be sent")
        first.kill()
        first.communicate(timeout=10)
        cluster.conn.delete(cluster.queue)  # as if it had died after taking the permits, before sending

        second = subprocess.Popen(command, cwd=ROOT, env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15  # a restart takes ~2 s here; the dispatch lease is 600 s
        while cluster.conn.llen(cluster.queue) < limit and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cluster.conn.llen(cluster.queue) == limit, "the granted children were not sent again"

        cluster.start_workers(2, concurrency=1)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err.decode()[-3000:]
        assert json.loads(out.decode().strip().splitlines()[-1])["output"] == flows.expected_output(items)
        assert cluster.calls() == {i: 1 for i in range(items)}
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)


@pytest.mark.slow
def test_an_item_that_kills_its_worker_every_time_fails_after_its_attempts_and_the_run_goes_on(
    cluster: Cluster,
) -> None:
    cluster.lease_seconds = 2
    cluster.dispatch_lease_seconds = 5
    cluster.start_workers(2, concurrency=1)
    backend = cluster.celery()
    items, poison = 40, 17
    attempts = backend.settings.max_attempts

    execution = dmap.run(
        flows.work_map(max_concurrency=4, tolerated_count=1),
        input=flows.work_input(cluster.ns, items, poison={poison}),
        backend=backend,
    )

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    assert map_run.item_counts["failed"] == 1
    assert map_run.item_counts["succeeded"] == items - 1 == map_run.item_counts["total"] - 1
    entry = execution.output[poison]
    assert entry["Status"] == "FAILED"
    assert entry["Error"] == "Runtime.ExitError"
    assert f"(item {poison})" in entry["Cause"]
    assert f"stopped responding {attempts} times" in entry["Cause"]
    assert cluster.calls() == {i: (attempts if i == poison else 1) for i in range(items)}
    (record,) = (json.loads(r) for r in backend.store.failures(map_run.run_id, error="Runtime.ExitError"))
    assert (record["Index"], record["Error"]) == (poison, "Runtime.ExitError")

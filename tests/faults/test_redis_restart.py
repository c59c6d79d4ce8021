"""Scenario 3: the run store's Redis SIGKILLed mid-run and started again on the same port and AOF.

Redis runs here as this test's own ``redis-server`` (``appendonly yes``, ``appendfsync everysec``:
a SIGKILL may lose the last second of writes). What happens: the workers log the lost connection
and reconnect; the coordinator rides the outage out (``DMAP_REDIS_OUTAGE_SECONDS``). Were it to end
with :class:`~dmap.errors.BackendError` (dmap's error for an unreachable Redis once the budget is
spent — the last test pins that), it is started again under the same name once Redis is back and
resumes the same Map Run. Either way it finishes: nothing lost, nothing counted twice (a child whose
completion the AOF lost runs again).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap.errors import DmapError
from dmap.store.redis import RedisRunStore
from tests.integration import flows as iflows

from . import audit, flows, tools
from .conftest import FaultCluster, PrivateRedis

ITEMS = int(os.environ.get("FAULT_ITEMS", "20000"))  # FAULT_ITEMS=2000 for a quicker local try
MAX_CONCURRENCY = int(os.environ.get("FAULT_MAX_CONCURRENCY", "2000"))  # e.g. 100: packs under a limit
KILL_AT = 0.4
"""Kill Redis when this fraction of the items has started (before the first ResultWriter checkpoint)."""
DOWN_S = 1.0


@pytest.mark.slow
def test_a_redis_restarted_mid_run_costs_the_coordinator_which_resumes_under_its_name_and_finishes(
    fault_cluster: FaultCluster, private_redis: PrivateRedis, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    cluster = fault_cluster
    cluster.store_url = private_redis.url
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(ITEMS))
    cluster.start_workers(3, concurrency=1)
    name = f"redis-{cluster.ns}"
    run_id = tools.run_id_of(name)
    definition, data = flows.fault_map(bucket, max_concurrency=MAX_CONCURRENCY), flows.fault_input(cluster.ns)
    started = time.monotonic()
    proc = tools.coordinator(cluster.env(), tmp_path, name, definition, data)
    store = RedisRunStore.from_url(private_redis.url)
    try:
        cluster.wait_for(lambda: len(cluster.fcalls()) >= KILL_AT * ITEMS or proc.poll() is not None, "40% started")
        assert proc.poll() is None, tools.outcome(proc, 10)
        private_redis.kill()
        killed_at = time.monotonic()
        time.sleep(DOWN_S)
        private_redis.start()
        granted = store.cursor(run_id)[1]  # what the AOF kept
        first_code, first, first_err = tools.outcome(proc, 60)
        resumed = first_code != 0
        if resumed:  # the coordinator died with Redis: start it again under the same name
            proc = tools.coordinator(cluster.env(), tmp_path, name, definition, data)
        # Time to recover: from the kill until a coordinator granted a new child again.
        cluster.wait_for(
            lambda: store.cursor(run_id)[1] > granted or proc.poll() is not None, "dispatching again", timeout=60
        )
        recovery = time.monotonic() - killed_at
        code, summary, stderr = tools.outcome(proc, 180) if resumed else (first_code, first, first_err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        store.close()
    seconds = time.monotonic() - started

    assert code == 0 and summary is not None, stderr
    found = audit.audit_results(s3_client, bucket, run_id, ITEMS)
    calls = cluster.fcalls()
    errors = re.findall(r"\b(\w+(?:Error|Exception))\b", first_err) if resumed else []  # the last one named
    died = errors[-1] if errors else ("no error shown" if resumed else "lived")
    audit.record(
        audit.Numbers(
            "3 Redis SIGKILL+restart",
            ITEMS,
            f"Redis SIGKILL, down {DOWN_S:g} s (coordinator died: {died})",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            recovery,
            seconds,
            f"{summary['status']}{' after resume' if resumed else ''}",
        )
    )
    assert summary["status"] == "SUCCEEDED", summary
    assert summary["run_id"] == run_id
    found.check_clean()
    found.check_counts(summary["item_counts"])
    assert found.by_group == {"SUCCEEDED": ITEMS, "FAILED": 0, "PENDING": 0}
    assert set(calls) == set(range(ITEMS))  # a child whose completion the AOF lost may have run twice


def test_a_redis_that_goes_away_mid_run_is_reported_as_a_backend_error(
    fault_cluster: FaultCluster, private_redis: PrivateRedis
) -> None:
    cluster = fault_cluster
    cluster.store_url = private_redis.url
    cluster.start_workers(1, concurrency=1)
    backend = cluster.celery(redis_outage_seconds=1)  # a Redis that stays away: give up after a second
    items = 400
    run = tools.Background(
        lambda: dmap.run(
            iflows.work_map(max_concurrency=4), input=iflows.work_input(cluster.ns, items, sleep_ms=5), backend=backend
        )
    )
    cluster.wait_for(lambda: len(cluster.calls()) >= 20, "the run to get going")
    private_redis.kill()

    with pytest.raises(DmapError, match="Redis"):
        run.result(timeout=60)

"""Scenario 1: worker processes SIGKILLed every few seconds while a 20,000-item run goes on.

Kills alternate between a whole ``dmap worker`` (main process and pool child: the machine dies;
a replacement is started) and a pool child alone (Celery's main process forks a new one). Each
kill loses the children the process held; their leases (2 s here) expire, the coordinator
reclaims them and they run again elsewhere. The run must succeed with every item exported once.

``DMAP_DISPATCH_LEASE_SECONDS`` is 15 s here, not 600 s: a whole worker killed between fetching a
message and its pool process accepting it leaves that child in Kombu's ``unacked`` hash, never
started, until the dispatch lease brings it back (about one run in four here;
:mod:`tests.faults.test_fetch_window` pins it). MaxConcurrency 1,500 keeps queue waits far below it.
The scenario runs again with RabbitMQ as the broker, where that window does not exist.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

import pytest

import dmap
from tests.integration.handlers import ready_key

from . import audit, flows, tools
from .conftest import FaultCluster

ITEMS = int(os.environ.get("FAULT_ITEMS", "20000"))  # FAULT_ITEMS=2000 for a quicker local try
MAX_CONCURRENCY = int(os.environ.get("FAULT_MAX_CONCURRENCY", "1500"))  # e.g. 100: packs under a limit
KILL_EVERY_S = 3.0
MOST_KILLS = 8


def _ready_workers(cluster: FaultCluster) -> list[Any]:
    """The live workers of ``cluster`` that finished starting."""
    ready = {int(pid) for pid in cluster.conn.smembers(ready_key(cluster.queue))}
    return [w for w in cluster.workers if w.proc.poll() is None and w.pid in ready]


@pytest.mark.slow
def test_workers_killed_every_few_seconds_lose_no_item_and_count_none_twice(
    fault_cluster: FaultCluster, broker: str, s3_client: Any, bucket: str
) -> None:
    items = ITEMS  # the same run on either broker (the run store stays Redis)
    cluster, rng = fault_cluster, random.Random(7)
    cluster.dispatch_lease_seconds = 15
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(items))
    cluster.start_workers(3, concurrency=1)
    # More attempts than the default 3: with kills every few seconds a reclaimed child may be hit again,
    # and this scenario is about losing nothing, not about giving up on poison items.
    backend = cluster.celery(max_attempts=10)
    name = f"kills-{cluster.ns}"
    run_id = tools.run_id_of(name)
    started = time.monotonic()
    run = tools.Background(
        lambda: dmap.run(
            flows.fault_map(bucket, max_concurrency=MAX_CONCURRENCY),
            input=flows.fault_input(cluster.ns),
            backend=backend,
            name=name,
        )
    )
    cluster.wait_for(lambda: len(cluster.fcalls()) > items // 20, "the run to get going")
    kills, whole, recoveries = 0, 0, []
    waiting: list[tuple[float, int]] = []  # (kill time, reclaimed count then): kills not yet recovered from
    starters: list[threading.Thread] = []
    next_kill = time.monotonic()
    while not run.done() and time.monotonic() - started < 120:
        reclaimed = backend.store.counts(run_id).reclaimed
        now = time.monotonic()
        # Time to recover: from a kill until the coordinator reclaimed the dead process's leases.
        recoveries += [now - at for at, before in waiting if reclaimed > before]
        waiting = [(at, before) for at, before in waiting if reclaimed <= before]
        # Only workers that finished starting: a replacement killed while it boots fails its starter thread.
        if now >= next_kill and kills < MOST_KILLS and (alive := _ready_workers(cluster)):
            victim = rng.choice(alive)
            pool = tools.children_of(victim.pid)
            waiting.append((now, reclaimed))
            if kills % 2 == 0 or not pool:
                victim.kill()  # the whole process group; a replacement starts in the background
                whole += 1
                starters.append(threading.Thread(target=cluster.start_workers, args=(1,), daemon=True))
                starters[-1].start()
            else:
                os.kill(rng.choice(pool), signal.SIGKILL)
            kills += 1
            next_kill = now + KILL_EVERY_S
        time.sleep(0.02)
    execution = run.result(timeout=120)
    seconds = time.monotonic() - started
    for starter in starters:
        starter.join(timeout=60)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    found = audit.audit_results(s3_client, bucket, map_run.run_id, items)
    calls = cluster.fcalls()
    audit.record(
        audit.Numbers(
            "1 worker SIGKILL" if broker == "redis" else "1b worker SIGKILL, RabbitMQ",
            items,
            f"{kills} SIGKILLs ({whole} whole workers, {kills - whole} pool children)",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            max(recoveries, default=None),
            seconds,
            str(execution.status),
        )
    )
    assert kills >= 3, "the run ended before the faults could be injected"
    found.check_clean()
    found.check_counts(map_run.item_counts)
    assert found.by_group == {"SUCCEEDED": items, "FAILED": 0, "PENDING": 0}
    assert set(calls) == set(range(items))  # every item ran; some more than once (their worker died)
    assert backend.store.counts(map_run.run_id).reclaimed >= 1

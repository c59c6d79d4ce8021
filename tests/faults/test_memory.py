"""Scenario 5: handlers that leak memory, and items that blow a worker's memory, in a 20,000-item run.

The workers are started with ``celery -A workers.app worker --max-memory-per-child`` (``dmap worker``
does not expose the flag). Every item leaks 256 KiB into a module-level list, so each pool process
passes the limit every few hundred items and Celery replaces it after the task it is running —
no item is lost or run twice by that. A few items allocate until the suite's OOM killer (a thread
here that SIGKILLs any pool process over 600 MiB, as the kernel's would) kills their process: per
the design (docs/reliability.md) such an item costs a run lease and runs again, so an item that
blows up only once succeeds on its second run, and one that blows up every time fails
``Runtime.ExitError`` after ``DMAP_MAX_ATTEMPTS`` (3) lost workers, within the Map's tolerance.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

import dmap

from . import audit, flows, tools
from .conftest import FaultCluster
from .handlers import key

ITEMS = int(os.environ.get("FAULT_ITEMS", "20000"))  # FAULT_ITEMS=2000 for a quicker local try
LIMIT_KIB = 200 * 1024
"""Celery's ``--max-memory-per-child``: a pool process over it is replaced after its current task."""
LEAK_KB = 256
OOM_MIB = 600
"""The OOM killer's line: a pool process resident above it is SIGKILLed."""
ALWAYS = (ITEMS // 10, ITEMS * 3 // 10)  # 2,000 and 6,000 of 20,000
ONCE = (ITEMS * 3 // 20, ITEMS * 2 // 5)  # 3,000 and 8,000 of 20,000


class OomKiller:
    """SIGKILLs any pool process of the given workers whose resident memory passes ``OOM_MIB``."""

    def __init__(self, cluster: FaultCluster) -> None:
        self.cluster = cluster
        self.killed: set[int] = set()
        """Each process killed, once: a killed process still tearing down 600 MiB can read as resident for a while."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="oom-killer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            for worker in list(self.cluster.workers):
                for pid in tools.children_of(worker.pid):
                    if pid not in self.killed and tools.resident_mib(pid) > OOM_MIB:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            self.killed.add(pid)
                        except ProcessLookupError:
                            pass

    @property
    def kills(self) -> int:
        """How many processes were killed."""
        return len(self.killed)

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.mark.slow
def test_leaking_handlers_are_recycled_and_items_that_exhaust_memory_retry_or_fail_exit_error(
    fault_cluster: FaultCluster, s3_client: Any, bucket: str
) -> None:
    cluster = fault_cluster
    special: dict[int, dict[str, Any]] = {i: {"leak_kb": LEAK_KB} for i in range(ITEMS)}
    special.update({i: {"oom": "always"} for i in ALWAYS})
    special.update({i: {"oom": "once"} for i in ONCE})
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(ITEMS, special))
    workers = cluster.start_celery_workers(2, f"--max-memory-per-child={LIMIT_KIB}", concurrency=2)
    first_pool = {pid for w in workers for pid in tools.children_of(w.pid)}
    backend = cluster.celery()
    killer = OomKiller(cluster)
    started = time.monotonic()
    try:
        execution = tools.Background(
            lambda: dmap.run(
                flows.fault_map(bucket, max_concurrency=1500, tolerated_count=len(ALWAYS)),
                input=flows.fault_input(cluster.ns),
                backend=backend,
            )
        ).result(timeout=240)
    finally:
        killer.stop()
    seconds = time.monotonic() - started

    (map_run,) = execution.map_runs
    found = audit.audit_results(s3_client, bucket, map_run.run_id, ITEMS)
    calls = cluster.fcalls()
    failed = {i: calls.get(i) for i, group in found.groups.items() if group == "FAILED"}
    assert execution.status == "SUCCEEDED", (execution.error, found.failed_errors, "item: runs", failed)
    runners = set(cluster.runners())
    oom_pids = {int(p) for p in cluster.conn.smembers(key(cluster.ns, "oom_pids"))}
    recycled = len(runners - first_pool - oom_pids)
    # Time to recover: from the first run of an item that blew up once to its second run (a lease and a retry).
    runs: dict[int, list[float]] = {}
    for pid in runners:
        for index, at in cluster.ran_by(pid):
            if index in ONCE:
                runs.setdefault(index, []).append(at)
    recovery = max((max(times) - min(times) for times in runs.values()), default=None)
    processes = f"{len(runners)} pool processes ({recycled}+ recycled at {LIMIT_KIB // 1024} MiB)"
    audit.record(
        audit.Numbers(
            "5 memory leak / OOM",
            ITEMS,
            f"{killer.kills} OOM SIGKILLs, {processes}",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            recovery,
            seconds,
            str(execution.status),
        )
    )
    found.check_clean()
    found.check_counts(map_run.item_counts)
    assert found.by_group == {"SUCCEEDED": ITEMS - len(ALWAYS), "FAILED": len(ALWAYS), "PENDING": 0}
    assert {i for i, group in found.groups.items() if group == "FAILED"} == set(ALWAYS)
    assert found.failed_errors == {"Runtime.ExitError": len(ALWAYS)}
    attempts = backend.settings.max_attempts
    assert {i: calls[i] for i in (*ALWAYS, *ONCE)} == {**dict.fromkeys(ALWAYS, attempts), **dict.fromkeys(ONCE, 2)}
    assert killer.kills == len(ALWAYS) * attempts + len(ONCE)
    assert len(runners) > len(first_pool) + killer.kills  # Celery replaced leaking processes too
    assert {i: n for i, n in calls.items() if n != 1} == {i: calls[i] for i in (*ALWAYS, *ONCE)}

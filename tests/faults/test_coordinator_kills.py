"""Scenario 2: the coordinator SIGKILLed twice mid-run and restarted under the same execution name.

The coordinator is a process of its own (:mod:`tests.faults.drive`), as it is in production. Each
time it is killed the workers go on with what is queued; the restarted process finds the Map Run
in the run store, sends again the children it had been granted but may never have sent, and goes
on reading where the store's cursor says. No item may run twice (the workers never died), none may
be lost, and the exported files must hold every item once.

The second kill comes after the ResultWriter's first checkpoint (10,000 records): before the fix
pinned by :mod:`tests.faults.test_result_resume`, the restarted coordinator overwrote the
checkpointed files and the export lost 9,999 items while the Map Run counted 20,000 successes.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from . import audit, flows, tools
from .conftest import FaultCluster

ITEMS = int(os.environ.get("FAULT_ITEMS", "20000"))  # FAULT_ITEMS=2000 for a quicker local try
MAX_CONCURRENCY = int(os.environ.get("FAULT_MAX_CONCURRENCY", "2000"))  # e.g. 100: packs under a limit
KILL_AT = (0.3, 0.65)
"""Kill the coordinator when these fractions of the items have started."""


@pytest.mark.slow
def test_a_coordinator_killed_twice_and_restarted_under_its_name_finishes_with_every_item_run_once(
    fault_cluster: FaultCluster, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    cluster = fault_cluster
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(ITEMS))
    cluster.start_workers(3, concurrency=1)
    backend = cluster.celery()
    name = f"coord-{cluster.ns}"
    run_id = tools.run_id_of(name)
    definition, data = flows.fault_map(bucket, max_concurrency=MAX_CONCURRENCY), flows.fault_input(cluster.ns)
    started = time.monotonic()
    proc = tools.coordinator(cluster.env(), tmp_path, name, definition, data)
    recoveries, ran_before = [], 0
    try:
        for fraction in KILL_AT:

            def far_enough(f: float = fraction, p: subprocess.Popen[bytes] = proc) -> bool:
                return len(cluster.fcalls()) >= f * ITEMS or p.poll() is not None

            cluster.wait_for(far_enough, f"{fraction:.0%} of the items to start", timeout=120)
            assert proc.poll() is None, tools.outcome(proc, 10)
            proc.kill()
            killed_at = time.monotonic()
            proc.communicate(timeout=10)
            granted = backend.store.cursor(run_id)[1]
            ran_before = len(cluster.fcalls())
            proc = tools.coordinator(cluster.env(), tmp_path, name, definition, data)

            # Time to recover: from the kill until the restarted coordinator granted a new child.
            def dispatching(g: int = granted, p: subprocess.Popen[bytes] = proc) -> bool:
                return backend.store.cursor(run_id)[1] > g or p.poll() is not None

            cluster.wait_for(dispatching, "the restarted coordinator to dispatch", timeout=60)
            recoveries.append(time.monotonic() - killed_at)
        code, summary, stderr = tools.outcome(proc, 180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    seconds = time.monotonic() - started

    assert code == 0 and summary is not None, stderr
    assert summary["run_id"] == run_id  # the same Map Run, resumed twice
    found = audit.audit_results(s3_client, bucket, run_id, ITEMS)
    calls = cluster.fcalls()
    audit.record(
        audit.Numbers(
            "2 coordinator SIGKILL",
            ITEMS,
            f"{len(KILL_AT)} coordinator SIGKILLs + restarts",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            max(recoveries),
            seconds,
            summary["status"],
        )
    )
    assert summary["status"] == "SUCCEEDED", summary
    assert 0 < ran_before < ITEMS
    found.check_clean()
    found.check_counts(summary["item_counts"])
    assert found.by_group == {"SUCCEEDED": ITEMS, "FAILED": 0, "PENDING": 0}
    assert calls == dict.fromkeys(range(ITEMS), 1)  # nothing that had started (or finished) ran again

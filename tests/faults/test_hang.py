"""Scenario 4: handlers that hang, on a Task with ``TimeoutSeconds: 1``, in a 20,000-item run.

A hanging item fails ``States.Timeout`` after a second and its worker slot comes back at once: the
same process goes on with the next items while the abandoned handler thread still sleeps (Python
cannot kill a thread; the hang outlives the whole run here). The Map's ToleratedFailureCount
absorbs the timeouts and the run succeeds; nothing runs twice, since no worker died.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import dmap

from . import audit, flows, tools
from .conftest import FaultCluster
from .handlers import key

ITEMS = int(os.environ.get("FAULT_ITEMS", "20000"))  # FAULT_ITEMS=2000 for a quicker local try
HANGING = tuple(ITEMS * k // 20 for k in (1, 4, 7, 10, 13))  # 1,000 ... 13,000 of 20,000
"""Where the hangs sit. The last leaves 7,000 items (about 5 s of work) for after its timeout: a hang
near the end (19,000 once) can time out after the other workers took the rest, and then its process
has nothing left to go on with, which would read as a slot that never came back."""
HANG_S = 300
"""Longer than the run: each hang is still asleep when the run ends."""


@pytest.mark.slow
def test_hanging_handlers_time_out_free_their_slot_and_are_tolerated(
    fault_cluster: FaultCluster, s3_client: Any, bucket: str
) -> None:
    cluster = fault_cluster
    special = {i: {"hang": True, "hang_s": HANG_S} for i in HANGING}
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(ITEMS, special))
    cluster.start_workers(3, concurrency=1)
    backend = cluster.celery()
    definition = flows.fault_map(bucket, tolerated_count=len(HANGING), timeout_seconds=1)
    started = time.monotonic()
    run = tools.Background(lambda: dmap.run(definition, input=flows.fault_input(cluster.ns), backend=backend))
    execution = run.result(timeout=180)
    seconds = time.monotonic() - started

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    found = audit.audit_results(s3_client, bucket, map_run.run_id, ITEMS)
    calls = cluster.fcalls()
    # The slot came back: after each hanging item, its process started more items; how long that took.
    after: dict[int, float] = {}
    for pid in cluster.runners():
        ran = cluster.ran_by(pid)
        for position, (index, at) in enumerate(ran):
            if index in HANGING and position + 1 < len(ran):
                after[index] = ran[position + 1][1] - at
    audit.record(
        audit.Numbers(
            "4 hanging handler",
            ITEMS,
            f"{len(HANGING)} handlers hung {HANG_S} s (TimeoutSeconds 1)",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            max(after.values(), default=None),
            seconds,
            str(execution.status),
        )
    )
    found.check_clean()
    found.check_counts(map_run.item_counts)
    assert found.by_group == {"SUCCEEDED": ITEMS - len(HANGING), "FAILED": len(HANGING), "PENDING": 0}
    assert {i for i, group in found.groups.items() if group == "FAILED"} == set(HANGING)
    assert found.failed_errors == {"States.Timeout": len(HANGING)}
    assert map_run.item_counts["failed"] == len(HANGING)
    assert calls == dict.fromkeys(range(ITEMS), 1)
    assert set(after) == set(HANGING)  # every hanging item's process went on with other items...
    assert int(cluster.conn.get(key(cluster.ns, "hangs_returned")) or 0) == 0  # ...while the hang still slept

"""A handler that returns what is not JSON fails its item with ``Runtime.MarshalError``; the worker carries on.

NaN, infinities, bytes, sets, cycles, arbitrary objects, tuple keys, integers too long to print and
values nested past the recursion limit: each item fails with AWS's Lambda error, and the item after
it, on the same thread (local) or the same worker process (celery), succeeds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

import dmap
from dmap import control
from dmap.backends.local import LocalBackend

from .conftest import HardCluster
from .flows import distributed_map
from .handlers import NOT_JSON

pytestmark = pytest.mark.timeout(120)

KINDS = sorted(NOT_JSON)


def one_at_a_time() -> dict[str, Any]:
    """A Map of ``HardeningNotJson`` children run one after the other, every failure tolerated."""
    return distributed_map(resource="HardeningNotJson", MaxConcurrency=1, ToleratedFailurePercentage=100)


def assert_marshal_error(entry: Any, kind: str) -> None:
    assert entry["Status"] == "FAILED", (kind, entry)
    assert entry["Error"] == "Runtime.MarshalError", (kind, entry)
    cause = json.loads(entry["Cause"])
    assert cause["errorType"] == "Runtime.MarshalError"
    assert cause["errorMessage"].startswith("Unable to marshal response"), cause


@pytest.mark.parametrize("kind", KINDS)
def test_a_non_json_result_fails_its_item_and_the_next_item_succeeds_on_the_local_backend(
    kind: str, local_backend: Callable[..., LocalBackend]
) -> None:
    items = [{"kind": kind}, {"kind": "ok"}]

    execution = dmap.run(one_at_a_time(), input=items, backend=local_backend())

    assert execution.status == "SUCCEEDED", execution.cause
    failed, after = execution.output
    assert_marshal_error(failed, kind)
    assert after == {"ok": True, "pid": os.getpid()}


def test_non_json_results_fail_their_items_and_the_same_worker_process_runs_the_next_ones(
    hard_cluster: HardCluster,
) -> None:
    (worker,) = hard_cluster.start_workers(1, concurrency=1)
    backend = hard_cluster.celery()
    items = [{"kind": kind} for pair in zip(KINDS, ["ok"] * len(KINDS), strict=True) for kind in pair]

    execution = dmap.run(one_at_a_time(), input=items, backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause, worker.tail())
    outputs = execution.output
    for kind, entry in zip(KINDS, outputs[0::2], strict=True):
        assert_marshal_error(entry, kind)
    oks = outputs[1::2]
    assert all(entry["ok"] is True for entry in oks), oks
    pids = {entry["pid"] for entry in oks}
    assert len(pids) == 1, f"the pool process was replaced: {pids}"
    failures = list(control.list_failures(execution.map_runs[0].map_run_arn, backend=backend))
    assert sorted(f.index for f in failures) == list(range(0, len(items), 2))
    assert {f.worker.rsplit(":", 1)[1] for f in failures} == {str(pid) for pid in pids}
    assert worker.proc.poll() is None

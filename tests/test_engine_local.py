"""The engine on the embedded ``local`` backend, without any server: concurrency, tolerance, batching, counts.

The same coordinator serves the celery backend (``tests/integration`` runs these behaviours on real
workers); here every check is in-process and fast. Concurrency is measured inside the handlers with
a lock-protected counter, and "reaches the limit" with a barrier only that many children can pass.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend

THRESHOLD = ("States.ExceedToleratedFailureThreshold", "The specified tolerated failure threshold was exceeded")
COUNT_KEYS = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total", "resultsWritten")


class Probe:
    """A handler that counts calls per item, tracks the peak of concurrent calls and fails marked items."""

    def __init__(self, *, barrier: int = 0, fail: frozenset[int] = frozenset()) -> None:
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.calls: Counter[int] = Counter()
        self.fail = fail
        self.barrier = threading.Barrier(barrier, timeout=10) if barrier else None
        self.barrier_items = barrier

    def __call__(self, event: Any, context: dmap.TaskContext) -> Any:
        items = event["Items"] if isinstance(event, dict) and "Items" in event else [event]
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.calls.update(item["i"] for item in items)
        try:
            if self.barrier is not None and items[0]["i"] < self.barrier_items:
                self.barrier.wait()  # passes only when that many children run at once
            bad = [item["i"] for item in items if item["i"] in self.fail]
            if bad:
                raise KeyError(f"items {bad}")
            return [{"i": item["i"]} for item in items] if "Items" in event else {"i": event["i"]}
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    """A private local backend (its own threads and in-memory run store)."""
    made = LocalBackend()
    yield made
    made.close()


@pytest.fixture
def probe_name(register_handler: Any) -> Callable[[Probe], str]:
    """Register probes under unique resource names; unregistered afterwards."""
    return lambda probe: str(register_handler("EngineProbe", probe))


def distributed(resource: str, **fields: Any) -> dict[str, Any]:
    """A DISTRIBUTED Map over ``$.items`` whose child is one Task state."""
    state = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": resource, "End": True}},
        },
        "End": True,
        **fields,
    }
    return {"StartAt": "Fan", "States": {"Fan": state}}


def items(count: int) -> dict[str, Any]:
    """An execution input with ``count`` items ``{"i": n}``."""
    return {"items": [{"i": i} for i in range(count)]}


def counts(**values: int) -> dict[str, int]:
    """A full AWS counts dict: the given values, zeros elsewhere."""
    return {key: values.get(key, 0) for key in COUNT_KEYS}


def test_a_distributed_map_runs_at_most_max_concurrency_children_at_once_and_reaches_it(
    backend: LocalBackend, probe_name: Callable[[Probe], str]
) -> None:
    probe = Probe(barrier=5)
    execution = dmap.run(distributed(probe_name(probe), MaxConcurrency=5), input=items(300), backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert probe.peak == 5
    assert execution.output == [{"i": i} for i in range(300)]
    assert probe.calls == Counter(range(300))


def test_max_concurrency_zero_does_not_limit_the_children(
    backend: LocalBackend, probe_name: Callable[[Probe], str]
) -> None:
    probe = Probe(barrier=20)
    execution = dmap.run(distributed(probe_name(probe), MaxConcurrency=0), input=items(40), backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert probe.peak >= 20
    assert execution.map_runs[0].max_concurrency == 0


def test_a_successful_map_run_reports_aws_shaped_counts_and_record(
    backend: LocalBackend, probe_name: Callable[[Probe], str]
) -> None:
    probe = Probe()
    execution = dmap.run(distributed(probe_name(probe), MaxConcurrency=3), input=items(25), backend=backend)

    (map_run,) = execution.map_runs
    assert map_run.status == "SUCCEEDED"
    assert map_run.item_counts == map_run.execution_counts == counts(succeeded=25, total=25, resultsWritten=25)
    assert map_run.map_run_arn.startswith("arn:aws:states:")
    assert ":mapRun:dmap/" in map_run.map_run_arn
    assert map_run.execution_arn == execution.execution_arn
    described = map_run.describe()
    assert described["itemCounts"] == map_run.item_counts
    assert (described["maxConcurrency"], described["status"]) == (3, "SUCCEEDED")
    assert execution.describe()["mapRunArns"] == [map_run.map_run_arn]


def test_a_batch_with_one_failed_item_fails_all_its_items_and_counts_split_items_from_children(
    backend: LocalBackend, probe_name: Callable[[Probe], str]
) -> None:
    probe = Probe(fail=frozenset({91}))
    definition = distributed(probe_name(probe), ItemBatcher={"MaxItemsPerBatch": 10}, ToleratedFailureCount=5)
    execution = dmap.run(definition, input=items(95), backend=backend)  # 9 batches of 10, one of 5

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    assert map_run.item_counts == counts(succeeded=90, failed=5, total=95, resultsWritten=95)
    assert map_run.execution_counts == counts(succeeded=9, failed=1, total=10, resultsWritten=10)
    assert probe.calls == Counter(range(95))


def test_a_failed_batch_over_the_count_fails_the_map_run_though_only_one_item_raised(
    backend: LocalBackend, probe_name: Callable[[Probe], str]
) -> None:
    probe = Probe(fail=frozenset({91}))
    definition = distributed(probe_name(probe), ItemBatcher={"MaxItemsPerBatch": 10}, ToleratedFailureCount=4)
    execution = dmap.run(definition, input=items(95), backend=backend)

    assert (execution.status, execution.error, execution.cause) == ("FAILED", *THRESHOLD)
    assert execution.map_runs[0].item_counts["failed"] == 5


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"ToleratedFailureCount": 4}, "SUCCEEDED"),
        ({"ToleratedFailureCount": 3}, "FAILED"),
        ({"ToleratedFailurePercentage": 10}, "SUCCEEDED"),
        ({"ToleratedFailurePercentage": 9.99}, "FAILED"),
        ({"ToleratedFailurePercentage": 100}, "SUCCEEDED"),
        ({"ToleratedFailureCount": 10, "ToleratedFailurePercentage": 5}, "FAILED"),
        ({"ToleratedFailureCount": 3, "ToleratedFailurePercentage": 50}, "FAILED"),
        ({}, "FAILED"),
    ],
)
def test_thresholds_are_strict_and_either_one_set_fails_the_run_when_exceeded(
    backend: LocalBackend, probe_name: Callable[[Probe], str], fields: dict[str, Any], status: str
) -> None:
    probe = Probe(fail=frozenset({1, 11, 21, 31}))  # 4 of 40 items: 10 %
    execution = dmap.run(distributed(probe_name(probe), **fields), input=items(40), backend=backend)

    assert execution.status == status
    (map_run,) = execution.map_runs
    assert map_run.status == status
    if status == "FAILED":
        assert (execution.error, execution.cause) == THRESHOLD
        assert (map_run.error, map_run.cause) == THRESHOLD
    else:
        assert map_run.item_counts == counts(succeeded=36, failed=4, total=40, resultsWritten=40)
    settled = sum(map_run.item_counts[k] for k in COUNT_KEYS[:6])
    assert settled == map_run.item_counts["total"] == 40


def test_a_run_over_its_threshold_starts_no_further_child(
    backend: LocalBackend, probe_name: Callable[[Probe], str]
) -> None:
    probe = Probe(fail=frozenset({0, 1, 2}))
    definition = distributed(probe_name(probe), MaxConcurrency=1, ToleratedFailureCount=2)
    execution = dmap.run(definition, input=items(200), backend=backend)

    assert (execution.status, execution.error, execution.cause) == ("FAILED", *THRESHOLD)
    assert probe.calls == Counter(range(3))
    item_counts = execution.map_runs[0].item_counts
    assert (item_counts["failed"], item_counts["succeeded"], item_counts["total"]) == (3, 0, 200)


def test_a_tolerated_failure_keeps_its_place_in_the_output_with_the_handlers_error_and_lambda_cause(
    backend: LocalBackend, probe_name: Callable[[Probe], str]
) -> None:
    probe = Probe(fail=frozenset({2}))
    execution = dmap.run(distributed(probe_name(probe), ToleratedFailureCount=1), input=items(4), backend=backend)

    assert execution.status == "SUCCEEDED"
    first, second, failed, last = execution.output
    assert (first, second, last) == ({"i": 0}, {"i": 1}, {"i": 3})
    assert (failed["Status"], failed["Error"]) == ("FAILED", "KeyError")
    assert json.loads(failed["Cause"])["errorType"] == "KeyError"


def test_a_pass_only_child_with_item_selector_and_math_add_computes_every_item(backend: LocalBackend) -> None:
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "Add",
                    "States": {
                        "Add": {
                            "Type": "Pass",
                            "Parameters": {"sum.$": "States.MathAdd($.value, $.index)"},
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }
    execution = dmap.run(definition, input={"items": list(range(0, 3000, 3))}, backend=backend)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == [{"sum": 4 * i} for i in range(1000)]
    assert execution.map_runs[0].item_counts == counts(succeeded=1000, total=1000, resultsWritten=1000)


def test_the_first_child_is_dispatched_before_the_window_reads_more_than_its_first_fill(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmap import coordinator

    read = 0
    read_at_first_dispatch: list[int] = []
    open_children = coordinator.Coordinator._children

    def counted(self: coordinator.Coordinator, next_item: int, next_child: int) -> Iterator[Any]:
        nonlocal read
        for spec in open_children(self, next_item, next_child):
            read += 1
            yield spec

    dispatch = backend.dispatch

    def observed(plan: Any, leases: Any) -> None:
        if not read_at_first_dispatch:
            read_at_first_dispatch.append(read)
        dispatch(plan, leases)

    monkeypatch.setattr(coordinator.Coordinator, "_children", counted)
    monkeypatch.setattr(backend, "dispatch", observed)
    definition = distributed("arn:aws:states:::lambda:invoke", ItemBatcher={"MaxItemsPerBatch": 100})
    state = definition["States"]["Fan"]
    state["ItemProcessor"]["States"]["Work"] = {"Type": "Pass", "Result": 1, "End": True}
    padding = "x" * 200
    batch = 100 * len(json.dumps({"i": 0, "pad": padding}))  # ~21,000 characters of input per child
    source = {"items": [{"i": i, "pad": padding} for i in range(30_000)]}

    execution = dmap.run(definition, input=source, backend=backend)

    assert execution.status == "SUCCEEDED", execution.cause
    assert read == 300
    # The whole window (4 MiB) would be ~200 children read before the first grant.
    first_fill = coordinator.FIRST_FILL_BYTES // batch + 1
    assert read_at_first_dispatch and read_at_first_dispatch[0] <= first_fill < coordinator.WINDOW_BYTES // batch

"""Early tolerance on the embedded backend: a doomed Map Run stops after about ``pct x total`` failures.

A ToleratedFailurePercentage is judged against the total number of items (AWS: failed items x 100 >
percentage x total, strict). The coordinator counts the source in the background while it
dispatches, so the rule applies long before the reader's end: a 0 % run fails on its first
failures, a 5 % run of 100,000 broken items after about 5,000 of them — not after 100,000. The
total shows in describe-map-run while the run goes on. No assertion here depends on timing: the
handler counts its calls; a run is held RUNNING by a gate the test opens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dmap
from dmap import control
from dmap.api import start
from dmap.backends.local import LocalBackend
from dmap.cli import app
from dmap.counting import TotalCounter
from dmap.errors import StorageError

THRESHOLD = ("States.ExceedToleratedFailureThreshold", "The specified tolerated failure threshold was exceeded")
STATUSES = ("pending", "running", "succeeded", "failed", "timedOut", "aborted")


class Broken:
    """A handler that always fails, counting its calls; items from ``hold_from`` on first wait for ``gate``."""

    def __init__(self, gate: threading.Event | None = None, hold_from: int = 0) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.gate = gate
        self.hold_from = hold_from

    def __call__(self, event: Any, context: dmap.TaskContext) -> Any:
        with self.lock:
            self.calls += 1
        if self.gate is not None and int(event["i"]) >= self.hold_from:
            self.gate.wait(60)
        raise ValueError("this handler is broken")


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    """A private local backend (its own threads and in-memory run store)."""
    made = LocalBackend()
    yield made
    made.close()


@pytest.fixture
def handler(register_handler: Any) -> Callable[[Broken], str]:
    """Register handlers under unique names; unregistered afterwards."""
    return lambda probe: str(register_handler("Broken", probe))


def reading(resource: str, input_type: str, *, percentage: float, max_concurrency: int = 0) -> dict[str, Any]:
    """A DISTRIBUTED Map reading a getObject manifest (the key comes from ``--manifest``)."""
    state = {
        "Type": "Map",
        "MaxConcurrency": max_concurrency,
        "ToleratedFailurePercentage": percentage,
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": input_type},
            "Parameters": {"Bucket": "unused", "Key": "unused"},
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": resource, "End": True}},
        },
        "End": True,
    }
    return {"StartAt": "Fan", "States": {"Fan": state}}


def manifest(folder: Path, count: int, kind: str) -> Path:
    """A local manifest of ``count`` items ``{"i": n}`` (CSV with a header row, or JSONL)."""
    path = folder / "data" / f"items-{count}.{kind}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        if kind == "csv":
            f.write("i,name\n")
            f.writelines(f"{i},item {i}\n" for i in range(count))
        else:
            f.writelines(json.dumps({"i": i}) + "\n" for i in range(count))
    return path


def assert_threshold_failure(execution: dmap.Execution, total: int) -> dict[str, int]:
    """FAILED with AWS's threshold error, and counts that add up to the real total."""
    assert execution.status == "FAILED"
    assert (execution.error, execution.cause) == THRESHOLD
    (map_run,) = execution.map_runs
    counts = map_run.item_counts
    assert counts["total"] == total
    assert counts["running"] == 0
    assert sum(counts[k] for k in STATUSES) == total
    return counts


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_zero_percent_tolerance_fails_a_2000_item_manifest_on_its_first_failures(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path, kind: str
) -> None:
    broken = Broken()
    definition = reading(handler(broken), kind.upper(), percentage=0, max_concurrency=4)
    execution = dmap.run(definition, manifest=manifest(tmp_path, 2_000, kind), backend=backend)
    counts = assert_threshold_failure(execution, 2_000)
    print(f"0 % of 2,000 {kind} items: {broken.calls} handler calls before the run failed")
    assert broken.calls <= 4 + 20  # MaxConcurrency and a little, not 2,000 (1,374 before early tolerance)
    assert counts["failed"] == broken.calls


def test_a_five_percent_tolerance_stops_a_100000_item_csv_run_after_about_5000_failures(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path
) -> None:
    broken = Broken()
    definition = reading(handler(broken), "CSV", percentage=5)
    execution = dmap.run(definition, manifest=manifest(tmp_path, 100_000, "csv"), backend=backend)
    counts = assert_threshold_failure(execution, 100_000)
    print(f"5 % of 100,000 csv items: {broken.calls} handler calls, {counts['failed']} failed items")
    assert counts["failed"] > 5_000  # the rule is strict: 5,000 failures of 100,000 are tolerated
    assert broken.calls < 10_000  # not 100,000 (90,119 before early tolerance)


def test_with_an_item_batcher_the_percentage_is_judged_in_items_against_the_counted_total(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path
) -> None:
    broken = Broken()
    definition = reading(handler(broken), "JSONL", percentage=5)
    definition["States"]["Fan"]["ItemBatcher"] = {"MaxItemsPerBatch": 10}
    execution = dmap.run(definition, manifest=manifest(tmp_path, 20_000, "jsonl"), backend=backend)
    counts = assert_threshold_failure(execution, 20_000)
    print(f"5 % of 20,000 items in batches of 10: {broken.calls} batches ran, {counts['failed']} failed items")
    assert counts["failed"] > 1_000  # 1,000 failed items of 20,000 are tolerated
    assert counts["failed"] == 10 * broken.calls  # a failed batch fails all its items
    assert broken.calls < 400  # about 100 batches, not 2,000


def test_a_percentage_set_by_update_map_run_starts_the_count_and_applies_at_once(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path
) -> None:
    gate = threading.Event()
    broken = Broken(gate)
    definition = reading(handler(broken), "JSONL", percentage=100, max_concurrency=2)
    definition["States"]["Fan"].pop("ToleratedFailurePercentage")
    definition["States"]["Fan"]["ToleratedFailureCount"] = 10**6  # nothing to count for
    execution = start(definition, manifest=manifest(tmp_path, 5_000, "jsonl"), backend=backend)
    try:
        wait_for(lambda: bool(execution.map_runs) and broken.calls == 2, "the first two children to start")
        arn = execution.map_runs[0].map_run_arn
        assert not control.map_run_progress(arn, backend=backend).total_known
        dmap.update_map_run(arn, tolerated_failure_percentage=0, backend=backend)
        wait_for(lambda: control.map_run_progress(arn, backend=backend).total_known, "the count to start and end")
    finally:
        gate.set()
    wait_for(lambda: execution.status != "RUNNING", "the run to end")
    assert (execution.error, execution.cause) == THRESHOLD
    assert broken.calls < 100  # not 5,000


def test_a_count_only_tolerance_does_not_read_the_source_twice(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[object] = []
    monkeypatch.setattr("dmap.counting.count_source", lambda *a, **k: counted.append(a))
    definition = reading(handler(Broken()), "JSONL", percentage=100)
    definition["States"]["Fan"]["ToleratedFailureCount"] = 3
    execution = dmap.run(definition, manifest=manifest(tmp_path, 500, "jsonl"), backend=backend)
    assert (execution.error, execution.cause) == THRESHOLD
    assert counted == []  # a count threshold needs no total


def test_a_count_that_fails_does_not_fail_the_run_it_only_leaves_the_total_unknown(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> int:
        raise StorageError("s3 is having a bad day", code="SlowDown")

    monkeypatch.setattr("dmap.counting.count_source", unreachable)
    broken = Broken()
    execution = dmap.run(
        reading(handler(broken), "JSONL", percentage=50), manifest=manifest(tmp_path, 300, "jsonl"), backend=backend
    )
    # Judged once the reader reached the end, as without early tolerance: the count's error is nowhere.
    counts = assert_threshold_failure(execution, 300)
    assert counts["failed"] > 150


def test_the_background_count_reports_its_total_once_and_swallows_its_failures() -> None:
    reported: list[int] = []
    ok = TotalCounter(lambda cancelled: 42, reported.append, name="ok")
    ok.start()
    ok.join(10)
    failing = TotalCounter(lambda cancelled: 1 // 0, reported.append, name="failing")
    failing.start()
    failing.join(10)
    uncountable = TotalCounter(lambda cancelled: None, reported.append, name="uncountable")
    uncountable.start()
    uncountable.join(10)
    assert (reported, ok.total, failing.total, uncountable.total) == ([42], 42, None, None)


def test_describe_map_run_shows_the_counted_total_while_the_run_goes_on(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    broken = Broken(gate)
    definition = reading(handler(broken), "JSONL", percentage=50, max_concurrency=2)
    execution = start(definition, manifest=manifest(tmp_path, 5_000, "jsonl"), backend=backend)
    try:
        wait_for(lambda: bool(execution.map_runs) and broken.calls == 2, "the first two children to start")
        arn = execution.map_runs[0].map_run_arn
        # Only 2 items are granted; the count runs beside them and declares the source's 5,000.
        wait_for(lambda: dmap.describe_map_run(arn, backend=backend).item_counts["total"] == 5_000, "the total")
        live = dmap.describe_map_run(arn, backend=backend)
        assert live.status == "RUNNING"
        assert live.item_counts == {
            **dict.fromkeys(STATUSES, 0),
            "running": 2,
            "pending": 4_998,
            "total": 5_000,
            "resultsWritten": 0,
        }
        assert live.execution_counts["total"] == 5_000  # no ItemBatcher: one child per item
        progress = control.map_run_progress(arn, backend=backend)
        assert (progress.total, progress.total_known, progress.done) == (5_000, True, 0)
        assert progress.eta_seconds is None  # nothing done yet: no rate to estimate from

        monkeypatch.setattr("dmap.backends.get_backend", lambda *a, **k: backend)
        runner = CliRunner()
        shown = runner.invoke(app, ["describe-map-run", arn])
        assert shown.exit_code == 0, shown.output
        body = json.loads(shown.stdout)
        assert (body["status"], body["itemCounts"]["total"]) == ("RUNNING", 5_000)
        assert "eta" not in json.dumps(body).lower()  # AWS's DescribeMapRun shape: no dmap keys inside
        table = runner.invoke(app, ["describe-map-run", arn, "--output", "table"])
        assert table.exit_code == 0, table.output
        assert "5,000" in table.stdout and "ETA" in table.stdout
        print(table.stdout)
    finally:
        gate.set()
    wait_for(lambda: execution.status != "RUNNING", "the run to end")
    assert_threshold_failure(execution, 5_000)


def test_the_eta_follows_the_rate_since_the_map_run_started(
    backend: LocalBackend, handler: Callable[[Broken], str], tmp_path: Path
) -> None:
    gate = threading.Event()
    broken = Broken(gate, hold_from=100)  # 100 items fail at once, then the run holds on item 100
    definition = reading(handler(broken), "JSONL", percentage=90, max_concurrency=1)
    execution = start(definition, manifest=manifest(tmp_path, 1_000, "jsonl"), backend=backend)
    try:
        wait_for(lambda: bool(execution.map_runs) and broken.calls == 101, "item 100 to start")
        arn = execution.map_runs[0].map_run_arn
        wait_for(lambda: control.map_run_progress(arn, backend=backend).total_known, "the count")
        started = dmap.describe_map_run(arn, backend=backend).start_date
        epoch = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        progress = control.map_run_progress(arn, backend=backend, now=epoch + 10)  # as if 10 s had passed
        assert (progress.done, progress.total, progress.total_known) == (100, 1_000, True)
        assert progress.items_per_second == pytest.approx(10.0)
        assert progress.eta_seconds == pytest.approx(90.0)  # 900 items left at 10 items/s
    finally:
        gate.set()
    wait_for(lambda: execution.status != "RUNNING", "the run to end")
    assert control.map_run_progress(execution.map_runs[0].map_run_arn, backend=backend).eta_seconds == 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` (a give-up, not a timing check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.01)

"""One case of the scale benchmark, in its own process: ``python -m bench.scale_case '<json spec>'``.

``bench.scale`` starts this module once per case so that the process's RSS is the coordinator's
(the local backend runs its children in this process too; celery children run on the workers) and
samples it from outside; this process prints one ``RESULT {json}`` line with its own timings and
its peak RSS (``VmHWM``). Two modes:

* ``reader``: the ItemReader alone (``dmap.readers.open_items``) over the whole object: items/s.
* ``run``: ``dmap.run`` of a DISTRIBUTED Map with that ItemReader, a Pass child and a ResultWriter
  (JSONL, COMPACT), optionally an ItemBatcher: wall time, time to the first dispatch and to the first
  child's start (the Pass child outputs its own ``$$.Execution.StartTime``), dispatch rate.

With ``time_limit`` a run still going at the limit reports how far it got and exits at once
(``partial: true``); the orchestrator extrapolates. Environment: ``DMAP_S3_ROOT`` or the
``AWS_*`` variables of moto, and for celery ``DMAP_REDIS_URL``/``DMAP_BROKER_URL``/``DMAP_QUEUE``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dmap
from dmap.backends.celery import CeleryBackend
from dmap.backends.local import LocalBackend
from dmap.child import ChildPlan
from dmap.readers import ReaderSpec, open_items
from dmap.sources import GET_OBJECT
from dmap.storage import get_storage
from dmap.store import Lease

from . import tasks as _tasks  # noqa: F401 - registers the BenchNoop handler of the task children
from .scale_data import BUCKET, RESULTS


def status_kb(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``) in KiB; 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dmap.task("ScaleSleep")
def sleep_handler(event: Any, context: dmap.TaskContext) -> None:
    """A slow child: sleeps ``BatchInput.sleep`` seconds (work slower than the reader, so children queue up)."""
    time.sleep(float(event["BatchInput"]["sleep"]))


class Counting:
    """Mixin of a backend: the wall times of the first and last dispatch, and how many children went out."""

    first_dispatch: float | None = None
    last_dispatch: float = 0.0
    dispatched: int = 0
    run_id: str | None = None
    progress: list[tuple[float, int]]

    def watch(self, every: float) -> None:
        """Note ``(epoch seconds, items finished)`` every ``every`` seconds, in a daemon thread."""
        self.progress = []

        def sample() -> None:
            while True:
                time.sleep(every)
                if self.run_id is not None:
                    counts = self.store.counts(self.run_id).items  # type: ignore[attr-defined]
                    self.progress.append((time.time(), counts.succeeded + counts.failed))

        threading.Thread(target=sample, name="scale-progress", daemon=True).start()

    def dispatch(self, plan: ChildPlan, leases: Sequence[Lease]) -> None:
        self._sending(plan, len(leases))
        super().dispatch(plan, leases)  # type: ignore[misc]
        self._sent(len(leases))

    def dispatch_packs(self, plan: ChildPlan, packs: Sequence[Sequence[Lease]]) -> None:
        """The celery backend's paced dispatch (it does not go through :meth:`dispatch`)."""
        count = sum(len(pack) for pack in packs)
        self._sending(plan, count)
        super().dispatch_packs(plan, packs)  # type: ignore[misc]
        self._sent(count)

    def _sending(self, plan: ChildPlan, count: int) -> None:
        if count:
            if self.first_dispatch is None:
                self.first_dispatch = time.time()
            self.run_id = plan.run_id

    def _sent(self, count: int) -> None:
        if count:
            self.dispatched += count
            self.last_dispatch = time.time()


class CountingLocal(Counting, LocalBackend):
    """The local backend, counted."""


class CountingCelery(Counting, CeleryBackend):
    """The celery backend, counted."""


def definition(spec: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's Map: ItemReader -> (ItemBatcher) -> Pass child -> ResultWriter (JSONL, COMPACT)."""
    output: dict[str, Any] = {"t.$": "$$.Execution.StartTime"}
    batched = bool(spec.get("batch") or spec.get("batch_bytes"))
    if batched:
        output["n.$"] = "States.ArrayLength($.Items)"
    child: dict[str, Any] = {"Type": "Pass", "Parameters": output, "End": True}
    if spec.get("child") == "task":  # a handler: the child can block, so the local backend uses its pool
        selector = {"t.$": "$$.Execution.StartTime"}
        resource = "ScaleSleep" if spec.get("sleep") else "BenchNoop"
        child = {"Type": "Task", "Resource": resource, "ResultSelector": selector, "End": True}
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemReader": {
            "Resource": GET_OBJECT,
            "ReaderConfig": {"InputType": spec["input_type"]},
            "Parameters": {"Bucket": BUCKET, "Key": spec["key"]},
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "Noop",
            "States": {"Noop": child},
        },
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": RESULTS, "Prefix": spec["name"]},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"},
        },
        "End": True,
    }
    if batched:
        batcher = {"MaxItemsPerBatch": spec.get("batch"), "MaxInputBytesPerBatch": spec.get("batch_bytes")}
        if spec.get("sleep"):
            batcher["BatchInput"] = {"sleep": spec["sleep"]}
        state["ItemBatcher"] = {k: v for k, v in batcher.items() if v}
    return {"StartAt": "Fan", "States": {"Fan": state}}


def measure_reader(spec: dict[str, Any]) -> dict[str, Any]:
    """Read every item of the object with the ItemReader alone."""
    reader = ReaderSpec(resource=GET_OBJECT, bucket=BUCKET, key=spec["key"], input_type=spec["input_type"])
    wall, start = time.time(), time.perf_counter()
    items = open_items(reader, get_storage())
    first_item = None
    count = 0
    for _ in items:
        if first_item is None:
            first_item = time.perf_counter() - start
        count += 1
    elapsed = time.perf_counter() - start
    return {
        "items": count,
        "seconds": elapsed,
        "reader_rate": count / elapsed,
        "first_item_s": first_item,
        "steady": [wall + (first_item or 0.0), wall + elapsed],
    }


def first_start(output: dict[str, Any]) -> float | None:
    """The earliest child start among the first records of the first result file (epoch seconds)."""
    details = output.get("ResultWriterDetails") or {}
    manifest_key = str(details.get("Key", ""))
    base = manifest_key.rsplit("/", 1)[0]
    storage = get_storage()
    earliest: float | None = None
    with storage.open_read(RESULTS, f"{base}/SUCCEEDED_0.json") as stream:
        for _, line in zip(range(256), stream, strict=False):
            moment = datetime.fromisoformat(json.loads(line)["t"].replace("Z", "+00:00")).timestamp()
            earliest = moment if earliest is None else min(earliest, moment)
    return earliest


def measure_run(spec: dict[str, Any]) -> dict[str, Any]:
    """``dmap.run`` the benchmark's Map once; see the module docstring."""
    backend: CountingLocal | CountingCelery = CountingLocal() if spec["backend"] == "local" else CountingCelery()
    wall = time.time()
    limit = spec.get("time_limit")
    if limit:
        watchdog = threading.Thread(target=_stop_at, args=(backend, wall, float(limit), spec), daemon=True)
        watchdog.start()
    backend.watch(float(spec.get("progress_every", 5.0)))
    start = time.perf_counter()
    execution = dmap.run(definition(spec), backend=backend)
    elapsed = time.perf_counter() - start
    hwm = status_kb("VmHWM")
    if execution.status != "SUCCEEDED":
        raise RuntimeError(f"{spec['name']}: {execution.status} {execution.error}: {execution.cause}")
    succeeded = int((execution.map_runs[-1].item_counts or {}).get("succeeded", 0))
    started = first_start(execution.output)
    result = {
        "items": succeeded,
        "children": backend.dispatched,
        "seconds": elapsed,
        "run_rate": succeeded / elapsed,
        "dispatch_rate": _dispatch_rate(backend),
        "first_dispatch_s": (backend.first_dispatch or wall) - wall,
        "first_start_s": None if started is None else started - wall,
        "peak_rss_kb": hwm,
        "steady": [backend.first_dispatch or wall, wall + elapsed],
        "progress": backend.progress,
        "partial": False,
    }
    backend.close()
    return result


def _dispatch_rate(backend: CountingLocal | CountingCelery) -> float:
    """Items sent per second between the first and the last dispatch (the store's cursor counts them)."""
    span = backend.last_dispatch - (backend.first_dispatch or backend.last_dispatch)
    if backend.run_id is None or span <= 0:
        return float("nan")
    return backend.store.cursor(backend.run_id)[2] / span


def _stop_at(backend: CountingLocal | CountingCelery, wall: float, limit: float, spec: dict[str, Any]) -> None:
    """At the time limit: report how far the run got, then end the process (no drawn-out stop)."""
    time.sleep(max(0.0, wall + limit - time.time()))
    elapsed = time.time() - wall
    done = 0
    if backend.run_id is not None:
        counts = backend.store.counts(backend.run_id).items
        done = counts.succeeded + counts.failed
    report(
        {
            "items": done,
            "children": backend.dispatched,
            "seconds": elapsed,
            "run_rate": done / elapsed,
            "dispatch_rate": _dispatch_rate(backend),
            "first_dispatch_s": (backend.first_dispatch or wall) - wall,
            "first_start_s": None,
            "peak_rss_kb": status_kb("VmHWM"),
            "steady": [backend.first_dispatch or wall, wall + elapsed],
            "progress": backend.progress,
            "partial": True,
        }
    )
    os._exit(0)


def report(result: dict[str, Any]) -> None:
    """Print the case's one result line."""
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the case given as JSON in the first argument and print its result."""
    spec = json.loads((argv if argv is not None else sys.argv[1:])[0])
    result = measure_reader(spec) if spec["mode"] == "reader" else measure_run(spec)
    result["peak_rss_kb"] = max(result.get("peak_rss_kb", 0), status_kb("VmHWM"))
    report(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

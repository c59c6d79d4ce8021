"""Console benchmark: ``python -m bench.console`` — page load times on a 1,000,000-item Map Run with 50,000 failures.

Exact command (Redis at ``--redis``, default ``BENCH_REDIS_URL`` or ``redis://127.0.0.1:6379/8``; the
keys it makes are deleted at the end)::

    . .venv/bin/activate && python -m bench.console

1. **Build** (not measured): a RUNNING Map Run of ``--items`` one-item children in the celery backend's
   run store and journal. ``--failures`` children FAILED (50,000, spread evenly, under five error
   names, with a cause and an input like a handler's): those go through the store's own scripts
   (``acquire``, ``start.lua``, ``complete.lua``). The succeeded ones are written as those scripts
   leave them once their results are taken (status nibble, counters), the way ``bench.redrive
   --build direct`` does; the last ``--running`` children are granted and started (in flight). The
   activity record (the chart and the run-time percentiles) is then written in the layout the
   scripts use, as if the run had taken ``--seconds``: the build itself finishes in about a minute,
   which would make a chart of one spike.
2. **Serve**: ``dmap serve``'s app (:func:`dmap.server.create_app`) on uvicorn in this process, with
   30 more finished executions in the journal.
3. **Measure**: each page ``--repeat`` times over HTTP (httpx, one keep-alive connection), median and
   slowest: the executions page, the execution page, the Map Run page (first failures page),
   a failures page deep in the index (after child 900,000), a page filtered by error, the live
   JSON the page polls, and the whole failures download (50,000 JSON lines, streamed).

It prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from dmap import control
from dmap.backends.celery import CeleryBackend
from dmap.config import Settings
from dmap.interpreter.context import iso_now
from dmap.records import MapRun, map_run_arn, new_execution
from dmap.store import ChildSpec, ChildStatus, RunConfig
from dmap.store.activity import bucket_width, duration_bucket
from dmap.store.redis import RedisRunStore

LEASE_MS = 3_600_000
NEVER = 2**53
ERRORS = ("Lambda.TooManyRequestsException", "States.TaskFailed", "ValueError", "KeyError", "States.Timeout")
DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "MaxConcurrency": 64,
            "ToleratedFailurePercentage": 10,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Work",
                "States": {"Work": {"Type": "Task", "Resource": "Work", "End": True}},
            },
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "out", "Prefix": "r"},
            },
            "End": True,
        }
    },
}


def fail_round(store: RedisRunStore, run: str, children: Sequence[int]) -> None:
    """Grant, start and fail ``children`` (consecutive in the cursor's eyes) through the store's scripts, pipelined."""
    keys = store._k(run)
    leases = []
    for c in children:
        store.client.hset(keys[0], mapping={"cc": c, "ci": c, "cr": c})  # the children before it: written directly
        spec = ChildSpec(c, c, 1, json.dumps({"id": f"item-{c}", "size": c % 977}), cursor=c + 1)
        leases += store.acquire(run, [spec], dispatch_lease_ms=LEASE_MS).leases
    pipe = store.client.pipeline(transaction=False)
    for lease in leases:
        store._scripts["start"](keys=keys, args=[lease.child, lease.token, LEASE_MS, "bench-host:4242"], client=pipe)
    pipe.execute()
    pipe = store.client.pipeline(transaction=False)
    for lease in leases:
        error = ERRORS[(lease.child * 7919) % 97 % len(ERRORS)]  # the five names mixed along the run
        cause = json.dumps({"errorMessage": f"item-{lease.child} could not be processed", "errorType": error})
        record = {"Child": lease.child, "Index": lease.child, "Items": 1, "Status": "FAILED"}
        record |= {"Input": json.dumps({"id": f"item-{lease.child}"}), "Error": error, "Cause": cause}
        record |= {"Attempts": 1, "Worker": "bench-host:4242"}
        args: list[Any] = [lease.child, lease.token, int(ChildStatus.FAILED), json.dumps(record), error]
        store._scripts["complete"](keys=keys, args=args, client=pipe)
    pipe.execute()


def build(store: RedisRunStore, run: str, items: int, failures: int, running: int) -> None:
    """The Map Run's state (see the module docstring)."""
    # 10,000 permits while building (500 failing children are granted at once), MaxConcurrency 64 after.
    store.create_run(run, RunConfig(max_concurrency=0, tolerated_failure_count=NEVER, tolerated_failure_percentage=100))
    keys, pipe = store._k(run), store.client.pipeline(transaction=False)
    done = items - running
    failing = [(k * done) // failures + (done // failures) // 2 for k in range(failures)]  # spread evenly
    broken = set(failing)
    succeeded = done - len(failing)
    for first in range(0, done, 4096):  # SUCCEEDED (2) for every child but the failing ones (still PENDING)
        wins = [c for c in range(first, min(first + 4096, done)) if c not in broken]
        ops = [op for c in wins for op in ("SET", "u4", f"#{c}", 2)]
        pipe.execute_command("BITFIELD", keys[1], *ops)  # type: ignore[no-untyped-call]
    pipe.execute()
    for start in range(0, len(failing), 500):
        fail_round(store, run, failing[start : start + 500])
    for field in ("i2", "e2"):
        pipe.hincrby(keys[0], field, succeeded)
    pipe.hset(keys[0], mapping={"cc": done, "ci": done, "cr": done})
    pipe.execute()
    store.update_config(run, max_concurrency=64)
    specs = [ChildSpec(c, c, 1, json.dumps({"id": f"item-{c}"}), cursor=c + 1) for c in range(done, items)]
    leases = store.acquire(run, specs, dispatch_lease_ms=LEASE_MS).leases
    for lease in leases:
        store.start(run, lease.child, lease.token, lease_ms=LEASE_MS, worker="bench-host:4242")
    store.declare_total(run, items=items, children=items)


def write_activity(store: RedisRunStore, run: str, done: int, failed: int, seconds: int) -> float:
    """The activity record of a run that finished ``done`` items (``failed`` of them) evenly over ``seconds``."""
    key = store._k(run)[11]
    first = int(time.time()) - seconds
    fields: dict[str, int] = {"t0": first}
    second = first
    while second < first + seconds:
        width = bucket_width(second - first)
        share = width / seconds
        wave = 1 + 0.25 * math.sin((second - first) / 300)  # a little variation, so the chart shows a line
        fields[f"d{second}"] = int(done * share * wave)
        fields[f"f{second}"] = int(failed * share * (2 - wave))
        second += width
    for ms, count in ((120, 0.2), (180, 0.35), (260, 0.3), (900, 0.1), (4000, 0.05)):
        fields[f"h{duration_bucket(ms)}"] = int(done * count)
    store.client.delete(key)
    store.client.hset(key, mapping=fields)  # type: ignore[arg-type]
    return float(first)


def timed(client: httpx.Client, url: str, repeat: int, *, stream: bool = False) -> tuple[float, float, int]:
    """Median and slowest seconds of ``repeat`` GETs of ``url``, and the size of the last body."""
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        if stream:
            with client.stream("GET", url) as response:
                size = sum(len(chunk) for chunk in response.iter_bytes())
        else:
            response = client.get(url)
            size = len(response.content)
        assert response.status_code == 200, (url, response.status_code)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), size


def serve(backend: Any) -> tuple[Any, str]:
    """The app on uvicorn in a thread; (server, base URL)."""
    import uvicorn

    from dmap.server import create_app

    app = create_app(backend, backend.settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"))
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--failures", type=int, default=50_000, help="children that fail, spread evenly")
    parser.add_argument("--running", type=int, default=64, help="children left in flight")
    parser.add_argument("--seconds", type=int, default=3000, help="how long the activity record says the run took")
    parser.add_argument("--repeat", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    settings = Settings(redis_url=args.redis, broker_url=args.redis, queue=f"bench-console-{uuid.uuid4().hex[:6]}")
    backend = CeleryBackend(settings)
    store = backend.store
    assert isinstance(store, RedisRunStore)
    name = f"console-bench-{uuid.uuid4().hex[:8]}"
    execution = new_execution("console-bench", name, {"bucket": "b", "key": "k"})
    run_id = str(uuid.uuid4())
    map_run = MapRun(map_run_arn("console-bench", "Fan", run_id), execution.execution_arn, "Fan", "Fan")
    map_run.max_concurrency, map_run.tolerated_failure_percentage = 64, 10.0
    made: list[str] = []
    try:
        started = time.perf_counter()
        build(store, run_id, args.items, args.failures, args.running)
        done = args.items - args.running
        failed = args.failures
        first = write_activity(store, run_id, done, failed, args.seconds)
        map_run.start_date = execution.start_date = _iso(first - 2)
        execution.map_runs = [map_run]
        backend.journal.save_execution(execution, definition=DEFINITION)
        backend.journal.save_map_run(map_run)
        made.append(execution.execution_arn)
        for number in range(30):
            other = new_execution("console-bench", f"{name}-other-{number}", {"n": number})
            other.status, other.stop_date = "SUCCEEDED", iso_now()  # type: ignore[assignment]
            backend.journal.save_execution(other, definition=DEFINITION)
            made.append(other.execution_arn)
        print(f"built {args.items:,} items, {failed:,} failures in {time.perf_counter() - started:.1f} s")
        counts = control.describe_map_run(map_run.map_run_arn, backend=backend).item_counts
        print("describe-map-run itemCounts:", json.dumps(counts))

        server, base = serve(backend)
        arn = quote(map_run.map_run_arn, safe=":/")
        deep = control._token("failures", (args.items * 9) // 10)
        pages = [
            ("executions page", "/", False),
            ("execution page", f"/executions/{quote(execution.execution_arn, safe=':/')}", False),
            ("Map Run page (first failures page)", f"/map-runs/{arn}", False),
            ("failures page after child 900,000", f"/map-runs/{arn}?token={deep}", False),
            ("failures filtered by error", f"/map-runs/{arn}?error=ValueError", False),
            ("live JSON (polled every 1.5 s)", f"/map-runs/{arn}/live.json", False),
            ("failures download, all as JSONL", f"/map-runs/{arn}/failures.jsonl", True),
        ]
        with httpx.Client(base_url=base, timeout=300) as client:
            client.get("/")  # warm: templates compiled, connections open
            for label, url, stream in pages:
                repeat = 3 if stream else args.repeat
                median, slowest, size = timed(client, url, repeat, stream=stream)
                print(
                    f"{label:40s} median {median * 1000:8.1f} ms  slowest {slowest * 1000:8.1f} ms  {size:>12,} bytes"
                )
        server.should_exit = True
    finally:
        store.delete_run(run_id)
        prefix = "dmap:j:"
        for arn_made in made:
            store.client.delete(f"{prefix}x:{arn_made}", f"{prefix}d:{arn_made}")
            store.client.zrem(f"{prefix}xs", arn_made)
        store.client.delete(f"{prefix}m:{map_run.map_run_arn}")
        backend.close()


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


if __name__ == "__main__":
    main()

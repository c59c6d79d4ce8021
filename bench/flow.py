"""Flow-control benchmarks (DESIGN §13): ``python -m bench.flow [adaptive|limits|plan ...]``.

* ``adaptive`` — 5,000 items, MaxConcurrency 200, each child POSTs to an HTTP service that answers 429
  above 40 calls/s (``bench.throttle_server``, 0.1 s per call): the same run without and with
  ``--adaptive``; prints the 429s the service sent, the run time, and the effective concurrency over time.
* ``limits`` — ``dmap.set_limit(host, "40/s")``, two Map Runs at once on three ``dmap worker`` processes:
  the busiest 1-second window the service saw and its 429s.
* ``plan`` — ``dmap plan`` over a 1,000,000-line JSONL manifest (and 100,000 lines, for the memory
  comparison) in a fresh process: seconds and peak RSS.

Local backend with 200 threads for ``adaptive`` (200 children really run at once; a prefork pool of
200 processes does not fit this machine); real celery workers for ``limits``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from tests.flow.flows import http_map

from .harness import ROOT, Workers
from .tasks import BENCH_REDIS_URL
from .throttle_server import ThrottlingServer


def _sampler(backend: Any, holder: dict[str, Any], stop: threading.Event, out: list[tuple[float, int, int]]) -> None:
    import dmap

    t0 = time.monotonic()
    while not stop.wait(1.0):
        execution = holder.get("execution")
        if execution is None or not execution.map_runs:
            continue
        run = dmap.describe_map_run(execution.map_runs[-1].map_run_arn, backend=backend).describe()
        out.append((round(time.monotonic() - t0), run["effectiveConcurrency"], run["itemCounts"]["succeeded"]))


def adaptive_once(items: int, adaptive: bool) -> dict[str, Any]:
    """One run against a fresh throttling service; what the service and the Map Run saw."""
    import dmap
    from dmap.api import start
    from dmap.backends.local import LocalBackend

    os.environ["DMAP_INTEGRATIONS"] = "http"
    server = ThrottlingServer(rate=40, capacity=4, latency=0.1).start()
    backend = LocalBackend(threads=200)
    holder: dict[str, Any] = {}
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sampler, args=(backend, holder, stop, samples), daemon=True)
    sampler.start()
    began = time.monotonic()
    try:
        flow = {"adaptive": True, "min_concurrency": 1} if adaptive else None
        execution = start(http_map(server.url, max_concurrency=200), list(range(items)), backend=backend, flow=flow)
        holder["execution"] = execution
        while execution.status == "RUNNING":
            time.sleep(0.2)
        elapsed = time.monotonic() - began
    finally:
        stop.set()
        sampler.join()
        backend.close()
        server.stop()
    run = dmap.describe_map_run(execution.map_runs[-1].map_run_arn, backend=backend).describe()
    return {
        "adaptive": adaptive,
        "status": str(execution.status),
        "succeeded": run["itemCounts"]["succeeded"],
        "seconds": round(elapsed, 1),
        "calls": len(server.accepted) + len(server.rejected),
        "throttled": len(server.rejected),
        "throttledCallsCounted": run["throttledCalls"],
        "effectiveOverTime": samples,
    }


def adaptive(items: int = 5000) -> None:
    """Without and with adaptive concurrency, same service, same items."""
    results = [adaptive_once(items, False), adaptive_once(items, True)]
    for r in results:
        series = r.pop("effectiveOverTime")
        print(json.dumps(r))
        if r["adaptive"]:
            print("effective concurrency over time (s, effective, succeeded):", series[:: max(1, len(series) // 40)])
    off, on = results[0]["throttled"], results[1]["throttled"]
    print(f"429s without adaptive: {off}; with: {on}; ratio {off / max(on, 1):.1f}x")


def limits(items: int = 400) -> None:
    """Two Map Runs at once under one 40/s limit, on three worker processes."""
    import dmap
    from dmap.api import start
    from dmap.backends.celery import CeleryBackend
    from dmap.config import Settings

    os.environ["DMAP_INTEGRATIONS"] = "http"
    conn = redis.Redis.from_url(BENCH_REDIS_URL)
    workers = Workers(count=3, concurrency=8)
    server = ThrottlingServer(rate=40, capacity=5).start()
    workers.start(conn)
    backend = CeleryBackend(Settings(redis_url=BENCH_REDIS_URL, broker_url=BENCH_REDIS_URL, queue=workers.queue))
    limit = dmap.set_limit(server.host, "40/s", backend=backend)
    try:
        began = time.monotonic()
        runs = [
            start(http_map(server.url, max_concurrency=12, max_attempts=0), list(range(items)), backend=backend)
            for _ in range(2)
        ]
        while any(r.status == "RUNNING" for r in runs):
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        late = sum(m.describe().get("lateTokens", 0) for r in runs for m in r.map_runs)
    finally:
        dmap.delete_limit(limit.key, backend=backend)
        workers.stop()
        server.stop()
    calls = len(server.accepted) + len(server.rejected)
    print(
        json.dumps(
            {
                "statuses": [str(r.status) for r in runs],
                "calls": calls,
                "seconds": round(elapsed, 1),
                "callsPerSecond": round(calls / elapsed, 1),
                "busiestSecond": server.busiest_second(),
                "burst": limit.burst,
                "throttled": len(server.rejected),
                "lateTokens": late,
            }
        )
    )


_PLAN = """
import json, resource, sys, time
from dmap.flow.plan import plan
t = time.monotonic()
p = plan(json.loads(sys.argv[1]), sys.argv[2])
rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(json.dumps({"items": p.items, "children": p.children, "bytes": p.bytes,
  "seconds": round(time.monotonic() - t, 2), "standardDollars": p.standard.dollars, "peakRssMB": rss}))
"""


def plan(lines: int = 1_000_000) -> None:
    """``dmap plan`` on a big JSONL manifest, in a fresh process each (peak RSS is per process)."""
    definition = http_map("http://127.0.0.1:9/x", max_concurrency=100)
    with tempfile.TemporaryDirectory() as folder:
        for count in (lines // 10, lines):
            path = Path(folder) / f"items-{count}.jsonl"
            with path.open("w") as out:
                for i in range(count):
                    out.write(f'{{"id": {i}, "key": "objects/{i:08d}.json", "size": {i % 9973}}}\n')
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            done = subprocess.run(
                [sys.executable, "-c", _PLAN, json.dumps(definition), str(path)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"{count:,} lines:", done.stdout.strip())


def main(argv: list[str]) -> None:
    """Run the phases named on the command line (all by default)."""
    phases = argv or ["plan", "limits", "adaptive"]
    for phase in phases:
        print(f"== {phase}", flush=True)
        {"adaptive": adaptive, "limits": limits, "plan": plan}[phase]()


if __name__ == "__main__":
    main(sys.argv[1:])

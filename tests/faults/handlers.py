"""The Task handler of the fault-injection suite, imported by the test process and every worker.

``FaultWork`` records each run of an item in Redis (``faults:<ns>:calls``, a hash item index ->
runs), so a test counts what really ran across processes, then does what the item asks:

* ``hang`` — sleep ``hang_s`` seconds without looking at cancellation (a stuck handler);
* ``leak_kb`` — keep that many KiB in a module-level list (a handler that leaks across calls);
* ``oom`` — allocate until the process is killed by the suite's OOM killer, on every run
  (``"always"``) or only on the first run (``"once"``); stops growing at ``OOM_CAP_MB`` and gives
  up (fails) only if no killer has struck ``OOM_WAIT_S`` later;
* ``sleep_ms`` — sleep that long (from the Map input, shared by all items).

Each run is also appended to ``faults:<ns>:ran:<pid>`` as ``"<index>@<epoch seconds>"`` (what each
process started, in order); a
``hang`` item bumps ``faults:<ns>:hangs_returned`` when its sleep finally ends. It returns
``{"i", "double"}``. The counters live in the fault suite's Redis database
(``FAULTS_REDIS_URL``, DB 10), never in a run store that a test restarts. It owns no dmap behaviour.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

import dmap

REDIS_URL = os.environ.get("FAULTS_REDIS_URL", "redis://127.0.0.1:6379/10")
"""The suite's database: handler counters and worker-ready markers (never a run store under test)."""
OOM_CAP_MB = 1024
"""An ``oom`` item stops allocating here (well past the suite's 600 MiB killer line)."""
OOM_WAIT_S = 60.0
"""How long an ``oom`` item then holds its memory waiting to be killed before it fails: a loaded CI
machine can starve the killer thread for seconds, and an item that failed instead of dying would
count against the Map's tolerance."""

_clients: dict[int, redis.Redis] = {}
_leaked: list[bytearray] = []


def client() -> redis.Redis:
    """This process's client of the suite's database (re-created after a fork)."""
    conn = _clients.get(os.getpid())
    if conn is None:
        _clients.clear()
        conn = _clients[os.getpid()] = redis.Redis.from_url(REDIS_URL)
    return conn


def key(ns: str, name: str) -> str:
    """The Redis key of one of a test's counters."""
    return f"faults:{ns}:{name}"


def _allocate_until_killed(conn: redis.Redis, ns: str) -> None:
    """Grow this process by 16 MiB steps (touched, so resident) until something kills it."""
    conn.sadd(key(ns, "oom_pids"), os.getpid())
    hoard: list[bytearray] = []
    for _ in range(OOM_CAP_MB // 16):
        hoard.append(bytearray(b"x" * (16 * 1024 * 1024)))
        time.sleep(0.01)
    time.sleep(OOM_WAIT_S)
    raise MemoryError(f"held {OOM_CAP_MB} MiB for {OOM_WAIT_S:.0f} s and nobody killed process {os.getpid()}")


@dmap.task("FaultWork")
def work(event: Any, context: dmap.TaskContext) -> Any:
    """Count the run, then hang, leak, blow up memory or sleep as the item asks; return ``{"i", "double"}``."""
    value, ns = event["v"], str(event["ns"])
    index = int(value["i"])
    conn = client()
    pipe = conn.pipeline(transaction=False)
    pipe.hincrby(key(ns, "calls"), str(index), 1)
    pipe.rpush(key(ns, f"ran:{os.getpid()}"), f"{index}@{time.time():.3f}")
    runs = int(pipe.execute()[0])
    oom = value.get("oom")
    if oom == "always" or (oom == "once" and runs == 1):
        _allocate_until_killed(conn, ns)
    if value.get("hang"):
        time.sleep(float(value.get("hang_s", 30)))  # deliberately deaf to context.cancelled
        conn.incr(key(ns, "hangs_returned"))
    leak = int(value.get("leak_kb", 0))
    if leak:
        _leaked.append(bytearray(b"l" * (leak * 1024)))
    pause = float(event.get("sleep_ms", 0))
    if pause:
        time.sleep(pause / 1000.0)
    return {"i": index, "double": 2 * index}

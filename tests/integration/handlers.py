"""Task handlers of the integration tests, imported by the test process and by every ``dmap worker``.

The handlers report what really happened through Redis (the integration database, never the
run store's keys), so a test can check a property that holds across processes:

* ``itest:<ns>:running`` / ``itest:<ns>:peak`` — children inside a handler now, and the highest
  value seen per *phase* (``itest:<ns>:phase``), updated atomically by one Lua script on entry;
* ``itest:<ns>:calls`` — a hash item index -> how many times a handler ran that item;
* ``itest:<ns>:done`` — handler invocations that returned.

An event is one selected item ``{"i", "ns", "sleep_ms", "fail", "poison", "hold"}`` or a batch
``{"Items": [...]}`` of them. The module also marks a worker ready in Redis (``itest:ready:<queue>``)
from Celery's ``worker_ready`` signal, so fixtures need neither log scraping nor remote control.
It owns no dmap behaviour: the engine under test is whatever ``dmap`` is installed.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import redis
from celery.signals import worker_ready

import dmap

REDIS_URL = os.environ.get("ITEST_REDIS_URL", "redis://127.0.0.1:6379/13")
"""The integration Redis database (run store, broker and these counters alike)."""

_ENTER = """
local phase = redis.call('GET', KEYS[3]) or '0'
local n = redis.call('INCR', KEYS[1])
local peak = tonumber(redis.call('HGET', KEYS[2], phase) or '0')
if n > peak then
  redis.call('HSET', KEYS[2], phase, n)
end
return n
"""

_clients: dict[int, tuple[redis.Redis, Any]] = {}


def client() -> redis.Redis:
    """This process's client of the integration database (re-created after a fork)."""
    found = _clients.get(os.getpid())
    if found is None:
        conn = redis.Redis.from_url(REDIS_URL)
        found = (conn, conn.register_script(_ENTER))
        _clients.clear()
        _clients[os.getpid()] = found
    return found[0]


def key(ns: str, name: str) -> str:
    """The Redis key of one of a test's counters."""
    return f"itest:{ns}:{name}"


def ready_key(queue: str) -> str:
    """The set of worker pids listening on ``queue`` that finished starting."""
    return f"itest:ready:{queue}"


@worker_ready.connect
def _mark_ready(sender: Any = None, **_: Any) -> None:
    queue = os.environ.get("DMAP_QUEUE", "dmap")
    client().sadd(ready_key(queue), os.getpid())


def _items(event: Any) -> list[dict[str, Any]]:
    return list(event["Items"]) if isinstance(event, dict) and "Items" in event else [event]


def _hold(conn: redis.Redis, ns: str) -> None:
    """Block (at most a minute) until released, after saying which process holds the item."""
    conn.set(key(ns, "holder"), os.getpid())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not conn.exists(key(ns, "release")):
        time.sleep(0.02)


@dmap.task("ITestWork")
def work(event: Any, context: dmap.TaskContext) -> Any:
    """Count, optionally sleep, then fail, kill this process, or return ``{"i", "double"}`` per item.

    A batch fails as a whole when any of its items has ``fail`` (AWS: a failed batch fails all
    its items). ``poison`` kills the worker process with SIGKILL, and only inside a test worker.
    ``hold`` blocks an item's *first* run until ``itest:<ns>:release`` exists, after writing the
    process id to ``itest:<ns>:holder`` (so a test knows which worker to kill).
    """
    items = _items(event)
    ns = str(items[0]["ns"])
    conn = client()
    _clients[os.getpid()][1](keys=[key(ns, "running"), key(ns, "peak"), key(ns, "phase")])
    try:
        pipe = conn.pipeline(transaction=False)
        for item in items:
            pipe.hincrby(key(ns, "calls"), str(item["i"]), 1)
        attempts = pipe.execute()
        if any(item.get("hold") and n == 1 for item, n in zip(items, attempts, strict=True)):
            _hold(conn, ns)
        if any(item.get("poison") for item in items):
            if not os.environ.get("ITEST_WORKER"):
                raise RuntimeError("a poison item ran outside a test worker; refusing to kill this process")
            os.kill(os.getpid(), signal.SIGKILL)
        pause = max(float(item.get("sleep_ms", 0)) for item in items)
        if pause:
            time.sleep(pause / 1000.0)
        failing = [item["i"] for item in items if item.get("fail")]
        if failing:
            raise ValueError(f"items {failing} are marked to fail")
        conn.incr(key(ns, "done"))
        results = [{"i": item["i"], "double": 2 * int(item["i"])} for item in items]
        return results if "Items" in event else results[0]
    finally:
        conn.decr(key(ns, "running"))


@dmap.task("ITestNoop")
def noop(event: Any, context: dmap.TaskContext) -> Any:
    """Return the event unchanged (benchmarks and smoke tests)."""
    return event


@dmap.task("ITestHandToken")
def hand_token(event: Any, context: dmap.TaskContext) -> Any:
    """The callback pattern's handler: hand the task token to the test (``itest:<ns>:tokens``) and return.

    The event is ``{"i", "ns", "token"}``; each call is counted in ``itest:<ns>:calls`` like ITestWork's.
    """
    import json

    conn = client()
    conn.hincrby(key(event["ns"], "calls"), str(event["i"]), 1)
    conn.rpush(key(event["ns"], "tokens"), json.dumps({"i": event["i"], "token": event["token"]}))
    return None

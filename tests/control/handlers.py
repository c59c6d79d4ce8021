"""Task handlers of the control-plane tests, imported by the test process, ``dmap`` CLI subprocesses and workers.

What really happened is recorded in Redis (``CTL_REDIS_URL``, DB 12 by default, never the run
store's keys), so a test can check it across processes:

* ``ctl:<ns>:calls`` — item index -> how many times the handler was invoked for it;
* ``ctl:<ns>:ok`` — item index -> how many of those invocations returned successfully;
* ``ctl:<ns>:fixed`` — once this key exists, items marked ``fail`` succeed ("the bug was fixed");
* ``ctl:<ns>:held`` — the items whose call blocks: the first ``hold`` calls to start (whichever
  items they are, so they surely occupy worker slots) block until ``ctl:<ns>:release`` exists;
  so does the first call of an item marked ``gate``.

An event is ``{"i", "ns", "fail", "hold", "gate", "sleep_ms"}``. The module also marks a worker ready
(``ctl:ready:<queue>``, from Celery's ``worker_ready`` signal) so fixtures need no log scraping.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery.signals import worker_ready

import dmap

REDIS_URL = os.environ.get("CTL_REDIS_URL", "redis://127.0.0.1:6379/12")
"""The Redis database of these tests (run store, broker and the counters alike)."""

_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """This process's client (re-created after a prefork fork)."""
    conn = _clients.get(os.getpid())
    if conn is None:
        _clients.clear()
        conn = _clients[os.getpid()] = redis.Redis.from_url(REDIS_URL)
    return conn


def key(ns: str, name: str) -> str:
    """The Redis key of one of a test's records."""
    return f"ctl:{ns}:{name}"


def ready_key(queue: str) -> str:
    """The set of worker pids listening on ``queue`` that finished starting."""
    return f"ctl:ready:{queue}"


@worker_ready.connect
def _mark_ready(sender: Any = None, **_: Any) -> None:
    client().sadd(ready_key(os.environ.get("DMAP_QUEUE", "dmap")), os.getpid())


class ItemBroken(Exception):
    """The failure of an item marked ``fail`` while the handler is not fixed."""


def _hold(conn: redis.Redis, ns: str) -> None:
    """Block (at most a minute) until the test releases held items."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not conn.exists(key(ns, "release")):
        time.sleep(0.02)


@dmap.task("CtlWork")
def work(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Count the call, optionally hold or sleep, fail a ``fail`` item until fixed, else return ``{"i", "double"}``."""
    conn, ns, index = client(), str(event["ns"]), int(event["i"])
    pipe = conn.pipeline(transaction=False)
    pipe.hincrby(key(ns, "calls"), str(index), 1)
    pipe.exists(key(ns, "fixed"))
    calls, fixed = pipe.execute()
    first_n = bool(event.get("hold")) and calls == 1 and conn.incr(key(ns, "holding")) <= int(event["hold"])
    if (event.get("gate") and calls == 1) or first_n:
        conn.sadd(key(ns, "held"), index)
        _hold(conn, ns)
    if event.get("sleep_ms"):
        time.sleep(float(event["sleep_ms"]) / 1000.0)
    if event.get("fail") and not fixed:
        raise ItemBroken(f"item {index} is broken (set {key(ns, 'fixed')} to fix it)")
    conn.hincrby(key(ns, "ok"), str(index), 1)
    return {"i": index, "double": 2 * index}

"""The work the engine benchmark runs, imported by the bench process and by its ``dmap worker`` processes.

Both sides do the same minimal work per item, one Redis command, so the comparison is between the
ways of getting there: the raw Celery task increments a counter (the only way to know N
fire-and-forget tasks finished), the dmap handler records the first child's start time with
``SET NX`` (dmap itself knows when its children finish). Owns nothing of dmap.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import shared_task
from celery.signals import worker_ready

import dmap

BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
"""The benchmark's Redis database (run store, broker and counters); flushed before and after."""
RAW_TASK = "bench.raw_noop"

_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """This process's Redis client (re-created after a fork)."""
    conn = _clients.get(os.getpid())
    if conn is None:
        conn = redis.Redis.from_url(BENCH_REDIS_URL)
        _clients.clear()
        _clients[os.getpid()] = conn
    return conn


def ready_key(queue: str) -> str:
    """The set of worker pids on ``queue`` that finished starting."""
    return f"bench:ready:{queue}"


@worker_ready.connect
def _mark_ready(sender: Any = None, **_: Any) -> None:
    client().sadd(ready_key(os.environ.get("DMAP_QUEUE", "dmap")), os.getpid())


@shared_task(name=RAW_TASK, ignore_result=True)
def raw_noop(counter: str) -> None:
    """The raw Celery no-op: count one finished task."""
    client().incr(counter)


@dmap.task("BenchNoop")
def noop(event: Any, context: dmap.TaskContext) -> Any:
    """The dmap no-op: note when the first child of the run started; return nothing (the output stays small)."""
    key = event.get("first") if isinstance(event, dict) else None
    if key is None and isinstance(event, dict) and event.get("Items"):
        key = event["Items"][0].get("first")
    if key:
        client().set(str(key), repr(time.time()), nx=True)
    return None

"""Phase ``e`` of ``python -m bench.engine``: the local backend against ``ThreadPoolExecutor(8).map``.

A DISTRIBUTED Map over N items whose child is one Task calling a no-op Python handler, and one
whose child is one Pass state, on a private local backend at MaxConcurrency 8, 100 and 0; next to
them, in the same run and the same process, ``ThreadPoolExecutor(8).map`` over the same handler —
the floor of handing N calls to threads in this interpreter. The machine may be shared, so every
row shows the best and the range of ``repeat`` runs, and the ratio to the pool measured right then.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dmap
from dmap.backends.local import LocalBackend

HANDLER = "BenchLocalNoop"
CONCURRENCY = (8, 100, 0)


def noop(event: Any, context: Any) -> Any:
    """The handler: returns its event (the least a Lambda-style function does)."""
    return event


def child_map(kind: str, max_concurrency: int) -> dict[str, Any]:
    """A DISTRIBUTED Map whose child is one ``Task`` calling :func:`noop`, or one ``Pass`` state."""
    if kind == "Task":
        state: dict[str, Any] = {"Type": "Task", "Resource": HANDLER, "End": True}
    else:
        state = {"Type": "Pass", "End": True}
    return {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Child",
                    "States": {"Child": state},
                },
                "ResultSelector": {"done": True},
                "End": True,
            }
        },
    }


def rate_local(kind: str, max_concurrency: int, items: int) -> float:
    """Items/s of one Map Run on a fresh local backend (its threads and store are its own)."""
    backend = LocalBackend()
    try:
        start = time.perf_counter()
        execution = dmap.run(child_map(kind, max_concurrency), manifest=range(items), backend=backend)
        elapsed = time.perf_counter() - start
    finally:
        backend.close()
    if execution.status != "SUCCEEDED":
        raise RuntimeError(f"local benchmark run {execution.status}: {execution.error}: {execution.cause}")
    return items / elapsed


def rate_pool(items: int) -> float:
    """Items/s of ``ThreadPoolExecutor(8).map`` calling :func:`noop` on every item."""
    with ThreadPoolExecutor(8) as pool:
        start = time.perf_counter()
        for _ in pool.map(lambda item: noop(item, None), range(items)):
            pass
        return items / (time.perf_counter() - start)


def _shown(rates: list[float]) -> str:
    return f"{max(rates):>7,.0f}/s ({min(rates):,.0f}-{max(rates):,.0f})"


def report(items: int, repeat: int) -> Iterator[str]:
    """The phase's lines: per MaxConcurrency, the pool, the one-Task and the one-Pass child."""
    dmap.task(HANDLER)(noop)
    rate_local("Task", 0, min(items, 1000))  # warm-up: imports, caches, the first threads
    yield (
        f"(e) local backend, {items:,} items, best of {repeat} (range); target >= 15,000/s with a one-Task child, "
        ">= 20,000/s with a one-Pass child"
    )
    for concurrency in CONCURRENCY:
        pool = [rate_pool(items) for _ in range(repeat)]
        task = [rate_local("Task", concurrency, items) for _ in range(repeat)]
        passed = [rate_local("Pass", concurrency, items) for _ in range(repeat)]
        yield (
            f"(e) MaxConcurrency {concurrency:>3}: ThreadPoolExecutor(8).map {_shown(pool)} | "
            f"one-Task child {_shown(task)} = {max(task) / max(pool):.2f} x pool | "
            f"one-Pass child {_shown(passed)} = {max(passed) / max(pool):.2f} x pool"
        )

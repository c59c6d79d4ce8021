"""Fixtures of the run-store tests: the same behaviour suite on every RunStore implementation.

``store`` is parametrized over the in-process :class:`MemoryRunStore`, :class:`RedisRunStore` on
fakeredis[lua] and on the real redis-server of ``tests/conftest.py`` (skipped locally without one,
failing in CI). ``make_run`` creates a run and gives its id.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from dmap.store import ChildSpec, RunConfig, RunStore
from dmap.store.memory import MemoryRunStore
from dmap.store.redis import RedisRunStore

LONG_MS = 60_000
"""A lease no test outlives."""


@pytest.fixture(params=["memory", "fakeredis", "redis"])
def store(request: pytest.FixtureRequest) -> RunStore:
    """A fresh, empty store of each implementation."""
    if request.param == "memory":
        return MemoryRunStore()
    client = request.getfixturevalue("fake_redis" if request.param == "fakeredis" else "real_redis")
    return RedisRunStore(client, prefix=f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_run(store: RunStore) -> Callable[..., str]:
    """Create a run with the given RunConfig fields; returns its id."""

    def create(**config: Any) -> str:
        run = f"run-{uuid.uuid4().hex[:8]}"
        assert store.create_run(run, RunConfig(**config))
        return run

    return create


def specs(first_child: int, count: int, items: int = 1) -> list[ChildSpec]:
    """``count`` consecutive children from ``first_child``, each covering ``items`` items."""
    return [
        ChildSpec(
            child=c,
            first=c * items,
            items=items,
            input=json.dumps({"Items": list(range(c * items, (c + 1) * items))}),
            cursor=(c + 1) * items,
        )
        for c in range(first_child, first_child + count)
    ]


def record(child: int, status: str = "SUCCEEDED", error: str = "", **extra: Any) -> str:
    """A worker-style child record."""
    body: dict[str, Any] = {"Child": child, "Index": child, "Items": 1, "Status": status, **extra}
    if status == "SUCCEEDED":
        body["Output"] = json.dumps({"ok": child})
    else:
        body["Error"] = error or "States.TaskFailed"
        body["Cause"] = "boom"
    return json.dumps(body)


def let_leases_expire() -> None:
    """Sleep past leases granted or renewed with ``lease_ms=1`` (Redis's clock has 1 ms steps)."""
    time.sleep(0.005)

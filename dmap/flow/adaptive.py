"""Adaptive concurrency of a Map Run (DESIGN §13): AIMD on throttling, through the run's own semaphore.

The effective concurrency lives beside MaxConcurrency in the run store (``ec`` in the run hash on
Redis, ``flow`` of the in-memory run) and ``acquire`` grants at most ``min(MaxConcurrency,
effective)`` permits — the very path MaxConcurrency and ``update-map-run`` take, so fencing, the
write-ahead cursor, exactly-once counting and resume are untouched, and after a cut no new child
starts until the running ones have drained below the new limit (running children finish).

* A cut (x 0.7, never below the floor) comes from a child that saw a throttling error, in one Lua
  call; only a child that started after the last cut can cut again (once per window, as TCP does).
* Growth (+1) comes from the coordinator: once as many children succeeded since the last change
  as the effective concurrency allows (one window), up to MaxConcurrency.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from ..keys import F_EFFECTIVE, F_FLOOR, F_LAST_CUT, F_THROTTLED, F_WINDOW_BASE, run_keys
from ..store import MAX_PERMITS

CUT = 0.7
"""The multiplicative decrease."""
THROTTLE_PATTERNS: tuple[str, ...] = ("*TooManyRequests*", "*Throttl*", "*SlowDown*")
"""Error names that mean "slow down" (fnmatch, case-sensitive as AWS's names are)."""
THROTTLE_NAMES: tuple[str, ...] = ("States.Http.StatusCode.429", "States.Http.StatusCode.503")
"""http:invoke's throttling answers."""


def is_throttle(error: str, extra: Iterable[str] = ()) -> bool:
    """Whether a Task error means the called service is overloaded.

    Args:
        error: The ASL error name (``Lambda.TooManyRequestsException``, ``States.Http.StatusCode.429``...).
        extra: Names (or fnmatch patterns) the user added for the Map Run.
    """
    if error in THROTTLE_NAMES:
        return True
    return any(fnmatch.fnmatchcase(error, pattern) for pattern in (*THROTTLE_PATTERNS, *extra))


class Adaptive:
    """The adaptive-concurrency state of Map Runs in one run store (Redis or in-memory).

    Args:
        store: A :class:`~dmap.store.redis.RedisRunStore` or :class:`~dmap.store.memory.MemoryRunStore`.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        client = getattr(store, "client", None)
        self._script = None
        if client is not None:
            text = (resources.files("dmap") / "lua" / "flow_adapt.lua").read_text("utf-8")
            self._script = client.register_script(text)

    def _redis(self, run: str, *args: Any) -> tuple[bool, int] | None:
        keys = run_keys(self.store.prefix, run)
        assert self._script is not None
        out = self._script(keys=[keys[0], keys[3], keys[6]], args=list(args))
        return None if int(out[0]) < 0 else (bool(int(out[0])), int(out[1]))

    def _memory(self, run: str, op: str, value: float = 0.0, started: float = 0.0) -> tuple[bool, int] | None:
        def change(state: dict[str, float], succeeded: int, max_concurrency: int) -> tuple[bool, int]:
            return _apply(state, op, value, started, succeeded, max_concurrency)

        out: tuple[bool, int] | None = self.store.flow(run, change)
        return out

    def switch_on(self, run: str, floor: int | None = None) -> tuple[bool, int] | None:
        """Turn adaptive concurrency on (from MaxConcurrency), with a floor (None keeps the one set before).

        Returns ``(adaptive, effective concurrency)``, or None for an unknown run.
        """
        value = 0 if floor is None else max(1, floor)
        return self._redis(run, "on", value) if self._script is not None else self._memory(run, "on", value)

    def switch_off(self, run: str) -> tuple[bool, int] | None:
        """Turn it off: MaxConcurrency alone limits the run again."""
        return self._redis(run, "off") if self._script is not None else self._memory(run, "off")

    def set_floor(self, run: str, floor: int) -> tuple[bool, int] | None:
        """Set the floor the effective concurrency never goes below."""
        if self._script is not None:
            return self._redis(run, "floor", max(1, floor))
        return self._memory(run, "floor", max(1, floor))

    def grow(self, run: str) -> tuple[bool, int] | None:
        """The additive increase, if a window of successes has passed (the coordinator calls it)."""
        return self._redis(run, "grow") if self._script is not None else self._memory(run, "grow")

    def throttled(self, run: str, child: int, started: float) -> tuple[bool, int] | None:
        """A child saw a throttling error: count it, and cut once per window when adaptive.

        Args:
            run: The run id.
            child: The child number (Redis reads its start time from the run's meta).
            started: When the child started on ``time.monotonic()`` (the in-memory store's clock).
        """
        if self._script is not None:
            return self._redis(run, "throttle", child)
        return self._memory(run, "throttle", started=started)

    def state(self, run: str) -> dict[str, int]:
        """``effectiveConcurrency`` (absent when off), ``minConcurrency`` and ``throttledCalls`` of a run."""
        if self._script is not None:
            fields = [F_EFFECTIVE, F_FLOOR, F_THROTTLED]
            raw = self.store.client.hmget(run_keys(self.store.prefix, run)[0], fields)
            values = dict(zip(fields, raw, strict=True))
        else:
            values = self.store.flow(run, lambda state, _s, _m: dict(state)) or {}
        out = {"throttledCalls": int(float(values.get(F_THROTTLED) or 0))}
        if values.get(F_EFFECTIVE) is not None:
            out["effectiveConcurrency"] = int(float(values[F_EFFECTIVE] or 0))
            out["minConcurrency"] = int(float(values.get(F_FLOOR) or 1))
        return out


def _apply(
    state: dict[str, float], op: str, value: float, started: float, succeeded: int, max_concurrency: int
) -> tuple[bool, int]:
    """``flow_adapt.lua``'s rule on the in-memory store's state (its lock held)."""
    mc = max_concurrency if max_concurrency > 0 else MAX_PERMITS
    ec = state.get(F_EFFECTIVE)
    floor = int(state.get(F_FLOOR, 1))

    def put(n: int) -> None:
        state[F_EFFECTIVE], state[F_WINDOW_BASE] = n, succeeded

    if op == "throttle":
        state[F_THROTTLED] = state.get(F_THROTTLED, 0) + 1
        if ec is not None and started >= state.get(F_LAST_CUT, 0.0):
            put(max(floor, min(int(ec * CUT), int(ec) - 1)))
            state[F_LAST_CUT] = time.monotonic()
    elif op == "grow" and ec is not None:
        if ec > mc:
            put(mc)
        elif ec < mc and succeeded - state.get(F_WINDOW_BASE, 0) >= ec:
            put(int(ec) + 1)
    else:
        _switch(state, op, value, mc, put)
    ec = state.get(F_EFFECTIVE)
    return (True, int(ec)) if ec is not None else (False, mc)


def _switch(state: dict[str, float], op: str, value: float, mc: int, put: Callable[[int], None]) -> None:
    """The ``on``, ``off`` and ``floor`` operations of :func:`_apply`."""
    ec = state.get(F_EFFECTIVE)
    floor = int(state.get(F_FLOOR, 1))
    if op == "on":
        state[F_FLOOR] = floor = int(value) if value >= 1 else floor
        if ec is None:
            state[F_LAST_CUT] = 0.0
            put(max(floor, mc))
        elif ec < floor:
            put(floor)
    elif op == "off":
        for name in (F_EFFECTIVE, F_LAST_CUT, F_WINDOW_BASE):
            state.pop(name, None)
    elif op == "floor":
        state[F_FLOOR] = floor = max(1, int(value))
        if ec is not None and ec < floor:
            put(floor)

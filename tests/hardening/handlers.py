"""Task handlers of the hardening suite, imported by the test process and by every ``dmap worker`` it starts.

Each handler is registered under a ``Hardening*`` name so it never collides with another suite's:

* ``HardeningEcho`` returns ``{"event", "pid"}`` (the pid proves which worker process ran an item);
* ``HardeningNotJson`` returns what its event's ``kind`` names — NaN, bytes, a set, a cycle... —
  the values a Lambda cannot marshal — or, for ``kind: "ok"``, ``{"ok": true, "pid"}``;
* ``HardeningBoom`` raises an exception whose message looks like console markup;
* ``HardeningRecord`` counts its calls in this process (``CALLS``), to prove nothing ran.

It also defines a Celery task and a pickle payload for the JSON-only test: ``hardening.set_key``
sets a Redis key when it *runs*; unpickling :class:`Tripwire` sets one when a message is *decoded*.
Neither may ever happen for a pickled message. It owns no dmap behaviour.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any

import redis
from celery import shared_task

import dmap

CALLS: Counter[str] = Counter()
"""Calls of ``HardeningRecord`` in this process, by state name."""


@dmap.task("HardeningEcho")
def echo(event: Any, context: dmap.TaskContext) -> Any:
    """The event and the id of the process that ran it."""
    return {"event": event, "pid": os.getpid()}


def _cycle() -> Any:
    node: dict[str, Any] = {}
    node["self"] = node
    return node


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


NOT_JSON: dict[str, Any] = {
    "nan": lambda: {"x": math.nan},
    "infinity": lambda: [math.inf],
    "bytes": lambda: {"x": b"\x00\xff"},
    "set": lambda: {"x": {1, 2}},
    "cycle": _cycle,
    "object": lambda: {"x": object()},
    "tuple_key": lambda: {(1, 2): "x"},
    "huge_int": lambda: 10**5000,
    "too_deep": lambda: _deep(100_000),
}
"""Return values that are not JSON, by name (each one a fresh value per call)."""


@dmap.task("HardeningNotJson")
def not_json(event: Any, context: dmap.TaskContext) -> Any:
    """Return the non-JSON value ``event["kind"]`` names, or ``{"ok": true, "pid"}`` for ``"ok"``."""
    kind = event["kind"]
    if kind == "ok":
        return {"ok": True, "pid": os.getpid()}
    return NOT_JSON[kind]()


@dmap.task("HardeningBoom")
def boom(event: Any, context: dmap.TaskContext) -> Any:
    """Fail with a message a console could mistake for markup."""
    raise ValueError("bad item [/oops] and [bold]more")


@dmap.task("HardeningRecord")
def record(event: Any, context: dmap.TaskContext) -> Any:
    """Count the call (by state name) and return the event."""
    CALLS[context.state_name] += 1
    return event


@shared_task(name="hardening.set_key", ignore_result=True)
def set_key(url: str, key: str, *_: Any) -> str:
    """Set ``key`` on the Redis at ``url``: proof that this task ran."""
    redis.Redis.from_url(url).set(key, "ran")
    return key


def tripwire(url: str, key: str) -> str:
    """What unpickling a :class:`Tripwire` calls: sets ``key``, proof that a pickle was decoded."""
    redis.Redis.from_url(url).set(key, "unpickled")
    return key


class Tripwire:
    """An object whose *unpickling* sets a Redis key (``__reduce__`` names :func:`tripwire`)."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return tripwire, (self.url, self.key)

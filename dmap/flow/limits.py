"""Shared rate limits: where they are kept and how a caller takes a token (DESIGN §13).

Two stores with one rule (GCRA, a token bucket kept as one timestamp, see ``dmap/lua/flow_bucket.lua``):

* :class:`RedisLimits` — one Lua call per token, timed by Redis ``TIME``, so every worker process and
  every Map Run on the cluster draws from the same bucket;
* :class:`MemoryLimits` — a lock and a dict, for the embedded backend when no Redis is configured.

A taker never polls: the bucket reserves the caller's own moment and says how long to wait, or, when
that moment is further away than the caller's horizon, reserves nothing (the caller asks again
later, see :mod:`dmap.flow.hooks`). Owns no knowledge of Map Runs.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from ..errors import ConfigurationError
from ..keys import DEFAULT_PREFIX, limit_key, limits_key
from .rates import Limit

NO_LIMIT, TOO_FAR, RESERVED = -1, 0, 1
INDEX_REFRESH_SECONDS = 1.0
"""How long a process trusts its copy of the set of limited keys (a new limit applies within this)."""


@dataclass(frozen=True, slots=True)
class Token:
    """The answer of :meth:`Limits.take`.

    Attributes:
        outcome: :data:`NO_LIMIT` (call now), :data:`RESERVED` (call after ``wait_ms``) or
            :data:`TOO_FAR` (no token reserved: the next one is ``wait_ms`` away, beyond the caller's patience).
        wait_ms: Milliseconds to wait.
        interval_ms: The limit's interval (ms per token; 0 without a limit): how late a caller may
            call after its moment before it would crowd the next caller's (see :func:`late_tolerance`).
    """

    outcome: int
    wait_ms: int
    interval_ms: float = 0.0


class Limits(Protocol):
    """Where rate limits live and how tokens are taken."""

    def set(self, limit: Limit) -> None:
        """Create or change a limit (the bucket keeps its state: a change applies to the next token)."""
        ...

    def get(self, key: str) -> Limit | None:
        """The limit on ``key``, or None."""
        ...

    def all(self) -> list[Limit]:
        """Every limit, by key."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the limit on ``key``; False when there was none."""
        ...

    def limited(self, key: str) -> bool:
        """Whether ``key`` may have a limit (a cached answer: no round trip for unlimited keys)."""
        ...

    def any(self) -> bool:
        """Whether any key may have a limit (cached as :meth:`limited`): a Task call skips its keys when not."""
        ...

    def take(self, key: str, max_wait_ms: int, not_before_ms: int = 0) -> Token:
        """Reserve one token of ``key`` if it is due within ``max_wait_ms``, and not sooner than ``not_before_ms``."""
        ...


def late_tolerance(interval_ms: float) -> float:
    """Seconds a caller may call after its reserved moment: half an interval, within [2 ms, 50 ms].

    A caller later than this takes a new token instead of calling (its own goes unused): calls then
    leave at most this long after their moments, so any span S of calls holds at most
    ``burst + (S + tolerance) / interval`` of them — for 40/s and burst 1, at most 41 in a second.
    """
    return min(max(interval_ms / 2, 2.0), 50.0) / 1000


def _limit_from(key: str, fields: dict[str, Any]) -> Limit | None:
    if "interval" not in fields:
        return None
    interval = float(fields["interval"])
    return Limit(key, str(fields.get("text", "")), 1000.0 / interval, int(float(fields.get("burst", 1))))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLimits:
    """Limits in Redis, shared by every process that uses the same Redis and key prefix.

    Args:
        client: A Redis client (either response decoding works).
        prefix: The key prefix (the run store's).
    """

    def __init__(self, client: Any, prefix: str = DEFAULT_PREFIX) -> None:
        self.client, self.prefix = client, prefix
        lua = resources.files("dmap") / "lua" / "flow_bucket.lua"
        self._bucket = client.register_script(lua.read_text("utf-8"))
        self._index: frozenset[str] = frozenset()
        self._index_at = -math.inf

    def set(self, limit: Limit) -> None:
        """Create or change a limit (HSET of its fields; the bucket's timestamp stays)."""
        key = limit_key(self.prefix, limit.key)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"text": limit.rate, "interval": repr(limit.interval_ms), "burst": limit.burst})
        pipe.sadd(limits_key(self.prefix), limit.key)
        pipe.execute()
        self._index_at = -math.inf

    def get(self, key: str) -> Limit | None:
        """The limit on ``key``, or None."""
        raw = self.client.hgetall(limit_key(self.prefix, key))
        return _limit_from(key, {_text(k): _text(v) for k, v in raw.items()})

    def all(self) -> list[Limit]:
        """Every limit, by key."""
        keys = sorted(_text(k) for k in self.client.smembers(limits_key(self.prefix)))
        return [limit for limit in (self.get(k) for k in keys) if limit is not None]

    def delete(self, key: str) -> bool:
        """Remove the limit on ``key`` and its bucket."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(limit_key(self.prefix, key))
        pipe.srem(limits_key(self.prefix), key)
        removed, _ = pipe.execute()
        self._index_at = -math.inf
        return bool(removed)

    def limited(self, key: str) -> bool:
        """Whether ``key`` is in this process's copy of the index (refreshed every second)."""
        return key in self._fresh_index()

    def any(self) -> bool:
        """Whether any key has a limit (the same cached index: no round trip in between refreshes)."""
        return bool(self._fresh_index())

    def _fresh_index(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._index_at >= INDEX_REFRESH_SECONDS:
            self._index = frozenset(_text(k) for k in self.client.smembers(limits_key(self.prefix)))
            self._index_at = now
        return self._index

    def take(self, key: str, max_wait_ms: int, not_before_ms: int = 0) -> Token:
        """One call of ``flow_bucket.lua``."""
        args = [max(0, int(max_wait_ms)), max(0, int(not_before_ms))]
        outcome, wait_ms, interval_us = self._bucket(keys=[limit_key(self.prefix, key)], args=args)
        return Token(int(outcome), int(wait_ms), int(interval_us) / 1000)


class MemoryLimits:
    """Limits of this process only (the embedded backend without Redis); the same rule as the Lua bucket."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, Limit] = {}
        self._tat: dict[str, float] = {}  # ms on time.monotonic's clock

    def set(self, limit: Limit) -> None:
        """Create or change a limit."""
        with self._lock:
            self._limits[limit.key] = limit

    def get(self, key: str) -> Limit | None:
        """The limit on ``key``, or None."""
        return self._limits.get(key)

    def all(self) -> list[Limit]:
        """Every limit, by key."""
        return [self._limits[k] for k in sorted(self._limits)]

    def delete(self, key: str) -> bool:
        """Remove the limit on ``key``."""
        with self._lock:
            self._tat.pop(key, None)
            return self._limits.pop(key, None) is not None

    def limited(self, key: str) -> bool:
        """Whether ``key`` has a limit."""
        return key in self._limits

    def any(self) -> bool:
        """Whether any key has a limit."""
        return bool(self._limits)

    def take(self, key: str, max_wait_ms: int, not_before_ms: int = 0) -> Token:
        """GCRA, as ``flow_bucket.lua``."""
        with self._lock:
            limit = self._limits.get(key)
            if limit is None:
                return Token(NO_LIMIT, 0)
            now = time.monotonic() * 1000
            interval = limit.interval_ms
            tat = max(self._tat.get(key, now), now)
            at = max(tat - (limit.burst - 1) * interval, now + max(0, not_before_ms))
            wait = at - now
            if wait > max_wait_ms:
                return Token(TOO_FAR, math.ceil(wait), interval)
            self._tat[key] = max(tat, at) + interval
            return Token(RESERVED, math.ceil(wait), interval)


_memory = MemoryLimits()
_redis: dict[tuple[int, str], RedisLimits] = {}
_redis_lock = threading.Lock()
_configured: dict[str, Any] = {}  # DMAP_REDIS_URL as set -> the one client the in-memory store's runs share


def limits_for(store: Any = None) -> Limits:
    """The limits a run store's Map Runs obey.

    A Redis run store (the celery backend) keeps them in its Redis. The in-memory store (the local
    backend) uses Redis too when one is configured (``DMAP_REDIS_URL`` set, or ``DMAP_BACKEND=celery``),
    so a local run and a cluster share one bucket; else a bucket of this process.
    """
    client, prefix = getattr(store, "client", None), getattr(store, "prefix", DEFAULT_PREFIX)
    if client is None and _redis_configured():
        client = _configured_client()
    if client is None:
        return _memory
    with _redis_lock:
        found = _redis.get((id(client), prefix))
        if found is None:
            found = _redis[(id(client), prefix)] = RedisLimits(client, prefix)
        return found


def _configured_client() -> Any:
    """One client per configured Redis URL for the whole process.

    ``limits_for`` runs once per child: a client per call would open a connection per child
    (a 20,000-child local run reached Redis's maxclients) and keep each alive in ``_redis``.
    """
    seen = os.environ.get("DMAP_REDIS_URL", "")  # Settings() reads the whole environment: only on a change
    with _redis_lock:
        client = _configured.get(seen)
        if client is None:
            from ..config import get_settings
            from ..store.redis import RedisRunStore

            client = _configured[seen] = RedisRunStore.from_url(get_settings().redis_url).client
        return client


def _redis_configured() -> bool:
    return bool(os.environ.get("DMAP_REDIS_URL")) or os.environ.get("DMAP_BACKEND", "local") == "celery"


def limits_json(limits: list[Limit]) -> str:
    """``dmap limits list --output json``."""
    return json.dumps([limit.as_dict() for limit in limits], indent=2)


def require_shared(limits: Limits) -> None:
    """Raise unless ``limits`` outlive this process (the CLI: a limit set in a process that exits is lost).

    Raises:
        ConfigurationError: The limits are this process's own.
    """
    if isinstance(limits, MemoryLimits):
        raise ConfigurationError(
            "rate limits are kept in Redis so every worker and Map Run shares them; set DMAP_REDIS_URL "
            "(or DMAP_BACKEND=celery). Without Redis, set them in the process that runs: dmap.set_limit(...)"
        )

"""Where execution histories are kept: bounded, per execution, beside the journal.

The interpreter numbers and builds the events (:mod:`dmap.interpreter.history`); a
:class:`Recorder` takes them for one execution and keeps at most ``max_events`` events and
``max_bytes`` bytes of them. Past either bound it drops the events that follow and counts them,
except the execution's own last event (ExecutionSucceeded/Failed/Aborted/TimedOut), which is always
kept so a history never hides how its execution ended; the ids stay AWS's, so a gap shows where.

Two stores: :class:`MemoryHistoryStore` (the local backend: this process, the histories of the
last ``max_executions`` executions) and :class:`RedisHistoryStore` (the celery backend: one Redis
list per execution, written in small batches, kept for the journal's retention after its last write).
Only the top-level workflow records; children of a Distributed Map never do.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import redis

logger = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 25_000
"""AWS's own limit of events in one execution's history."""
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
"""The most bytes of JSON events kept per execution (payloads are cut at 256 KiB each)."""
_FINAL = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"})


class Recorder:
    """Takes one execution's events (the interpreter's sink) and keeps what the bounds allow.

    Args:
        write: Stores encoded events ``[(event, json_text)]`` and how many were dropped since the last call.
        kept: Events already stored for the execution (a resume or redrive goes on from them).
        size: Their bytes.
        max_events: The most events kept.
        max_bytes: The most bytes kept.
        batch: Events buffered before a write (1 = write each at once).
        interval: Seconds after which a buffer is written anyway.
    """

    def __init__(
        self,
        write: Callable[[list[tuple[dict[str, Any], str]], int], None],
        *,
        kept: int = 0,
        size: int = 0,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        batch: int = 1,
        interval: float = 0.25,
    ) -> None:
        self._write, self.kept, self.size = write, kept, size
        self.max_events, self.max_bytes = max_events, max_bytes
        self._batch, self._interval = batch, interval
        self._buffer: list[tuple[dict[str, Any], str]] = []
        self._dropped = 0
        self._since = time.monotonic()

    def __call__(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"))
        final = event["type"] in _FINAL
        if not final and (self.kept >= self.max_events - 1 or self.size + len(text) > self.max_bytes):
            self._dropped += 1  # one slot stays free for the final event
            return
        self.kept += 1
        self.size += len(text)
        self._buffer.append((event, text))
        urgent = final or event["type"] == "MapRunStarted"  # what a poller waits to see
        if urgent or len(self._buffer) >= self._batch or time.monotonic() - self._since >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events (and the count of dropped ones)."""
        if not self._buffer and not self._dropped:
            return
        buffer, dropped = self._buffer, self._dropped
        self._buffer, self._dropped, self._since = [], 0, time.monotonic()
        try:
            self._write(buffer, dropped)
        except redis.RedisError as exc:  # a history is for reading; losing a batch must not fail the execution
            logger.warning("could not record %d history events: %s", len(buffer), type(exc).__name__)


class HistoryStore(Protocol):
    """Per-execution event lists."""

    def recorder(self, arn: str, *, fresh: bool) -> tuple[Recorder, int]:
        """A recorder for ``arn`` and the id of its next event; ``fresh`` forgets what is stored first."""
        ...

    def events(self, arn: str, start: int, count: int, *, reverse: bool = False) -> list[dict[str, Any]]:
        """``count`` stored events from position ``start`` (from the end when ``reverse``), in that order."""
        ...

    def dropped(self, arn: str) -> int:
        """How many events the bounds dropped."""
        ...


class _Log:
    __slots__ = ("events", "size", "dropped")

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.size = 0
        self.dropped = 0


class MemoryHistoryStore:
    """Histories in this process's memory (the local backend).

    Kept for the last ``max_executions`` executions and ``max_total_bytes`` of events in all: past
    either, the histories of the executions started longest ago are forgotten first.
    """

    def __init__(
        self,
        *,
        max_executions: int = 1000,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_total_bytes: int = 8 * DEFAULT_MAX_BYTES,
    ) -> None:
        self.max_executions, self.max_events, self.max_bytes = max_executions, max_events, max_bytes
        self.max_total_bytes = max_total_bytes
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._lock = threading.Lock()
        self._total = 0

    def recorder(self, arn: str, *, fresh: bool) -> tuple[Recorder, int]:
        """A recorder that appends to this process's list for ``arn``."""
        with self._lock:
            log = self._logs.pop(arn, None)
            if log is not None and fresh:
                self._total -= log.size
                log = None
            log = log or _Log()
            self._logs[arn] = log
            self._evict()
            next_id = log.events[-1]["id"] + 1 if log.events else 1

        def write(batch: list[tuple[dict[str, Any], str]], dropped: int) -> None:
            with self._lock:
                size = sum(len(text) for _, text in batch)
                log.events.extend(event for event, _ in batch)
                log.size += size
                log.dropped += dropped
                if self._logs.get(arn) is log:
                    self._total += size
                    self._evict()

        recorder = Recorder(
            write, kept=len(log.events), size=log.size, max_events=self.max_events, max_bytes=self.max_bytes
        )
        return recorder, next_id

    def _evict(self) -> None:
        """Forget the oldest histories past the bounds (never the newest one). Holds the lock."""
        while len(self._logs) > 1 and (len(self._logs) > self.max_executions or self._total > self.max_total_bytes):
            _, oldest = self._logs.popitem(last=False)
            self._total -= oldest.size

    def events(self, arn: str, start: int, count: int, *, reverse: bool = False) -> list[dict[str, Any]]:
        """A slice of the stored events."""
        with self._lock:
            log = self._logs.get(arn)
            found = list(log.events) if log is not None else []
        if reverse:
            found.reverse()
        return found[start : start + count]

    def dropped(self, arn: str) -> int:
        """How many events the bounds dropped."""
        with self._lock:
            log = self._logs.get(arn)
            return log.dropped if log is not None else 0


class RedisHistoryStore:
    """Histories as Redis lists, ``<prefix>:j:h:<arn>`` (the celery backend), with the journal's retention."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "dmap",
        retention_seconds: int = 90 * 86400,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.client, self.prefix, self.retention = client, prefix, retention_seconds
        self.max_events, self.max_bytes = max_events, max_bytes

    def _keys(self, arn: str) -> tuple[str, str]:
        return f"{self.prefix}:j:h:{arn}", f"{self.prefix}:j:hd:{arn}"

    def recorder(self, arn: str, *, fresh: bool) -> tuple[Recorder, int]:
        """A recorder that appends to the execution's list in batches (and at its last event)."""
        key, dropped_key = self._keys(arn)
        if fresh:
            self.client.delete(key, dropped_key)
        kept = int(self.client.llen(key))
        last = self.client.lindex(key, -1) if kept else None
        next_id = json.loads(last)["id"] + 1 if last else 1
        size = int(self.client.memory_usage(key) or 0) if kept else 0  # near enough to bound a resumed one

        def write(batch: list[tuple[dict[str, Any], str]], dropped: int) -> None:
            pipe = self.client.pipeline(transaction=False)
            if batch:
                pipe.rpush(key, *(text for _, text in batch))
                pipe.expire(key, self.retention)
            if dropped:
                pipe.incrby(dropped_key, dropped)
                pipe.expire(dropped_key, self.retention)
            pipe.execute()

        recorder = Recorder(write, kept=kept, size=size, max_events=self.max_events, max_bytes=self.max_bytes, batch=64)
        return recorder, next_id

    def events(self, arn: str, start: int, count: int, *, reverse: bool = False) -> list[dict[str, Any]]:
        """``LRANGE`` of the list (from its end when ``reverse``)."""
        if count <= 0:
            return []
        key = self._keys(arn)[0]
        if reverse:
            rows = self.client.lrange(key, -(start + count), -(start + 1))
            rows.reverse()
        else:
            rows = self.client.lrange(key, start, start + count - 1)
        return [json.loads(row) for row in rows]

    def dropped(self, arn: str) -> int:
        """How many events the bounds dropped."""
        value = self.client.get(self._keys(arn)[1])
        return int(value) if value else 0

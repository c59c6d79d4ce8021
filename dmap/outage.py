"""Riding out a Redis outage: every Redis call of a running process retries for a while, then gives up.

A Redis restart, a failover or a short network cut must cost seconds, not the run. dmap's Redis
clients (the run store, the journal, the claims, the worker registry: one client per backend) get an
:class:`OutageRetry` once the backend has reached Redis the first time: a call that fails because the
connection broke, timed out or Redis is still loading its data is tried again with exponential backoff
and jitter until it succeeds or ``DMAP_REDIS_OUTAGE_SECONDS`` have passed since the first failure; then
the last error is raised and the caller hands the work over (a coordinator leaves its execution
RUNNING and drops its claims, so another process resumes it: :mod:`dmap.backends`, :mod:`dmap.detach`).

Retrying is safe because every run-state write is a Lua script that may run twice: a script whose
effect was applied (and made durable by the AOF) but whose reply was lost runs again with the same
arguments, and each script gives the same answer or a harmless one the second time (``acquire.lua``
returns the reply it gave to the same nonce; the others are fenced by tokens or set-once fields).

It also sets the broker's publish retries (kombu's ``retry_policy``) to the same budget. It does not
retry a wrong password or a refused ACL (those are not outages), and a backend's first contact with
Redis still fails fast: a wrong URL is reported at once, not after a minute.
"""

from __future__ import annotations

import builtins
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, ConnectionError, TimeoutError
from redis.retry import Retry

logger = logging.getLogger(__name__)

T = TypeVar("T")

BASE_SECONDS = 0.05
"""The first backoff; it doubles per failure (with jitter) up to :data:`CAP_SECONDS`."""
CAP_SECONDS = 1.0
"""The longest pause between two tries: Redis back means the run goes on within about a second."""
_NOT_OUTAGES = (AuthenticationError, AuthorizationError)
_depth = threading.local()  # redis-py nests retries (a command's retry reconnects with its own): one budget
_log_lock = threading.Lock()
_last_log = [0.0]
_ridden_out = [0]  # outages this process's Redis calls have ridden out (see ridden_out)


class OutageRetry(Retry):
    """A redis-py retry policy bounded by time (an outage budget), not by a number of tries.

    Args:
        seconds: How long to keep trying after the first failure of a call (0: never retry).
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(NoBackoff(), -1, (ConnectionError, TimeoutError, socket.timeout))
        self.seconds = float(seconds)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, OutageRetry) and other.seconds == self.seconds

    __hash__ = Retry.__hash__

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Call ``do`` until it succeeds or the outage budget is spent (redis-py's retry interface)."""
        nested = getattr(_depth, "value", 0)
        _depth.value = nested + 1
        try:
            return self._call(do, fail, is_retryable, with_failure_count, outer=nested == 0)
        finally:
            _depth.value = nested

    def _call(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None,
        with_failure_count: bool,
        *,
        outer: bool,
    ) -> T:
        failures, deadline = 0, 0.0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                retryable = not isinstance(error, _NOT_OUTAGES) and (is_retryable is None or is_retryable(error))
                if not outer or not retryable or self.seconds <= 0:
                    raise  # an inner retry leaves the waiting to the outermost one: a single budget
                now = time.monotonic()
                if failures == 1:
                    deadline = now + self.seconds
                    _say(logging.WARNING, "Redis unreachable (%s): retrying for up to %g s", error, self.seconds)
                if now >= deadline:
                    _say(logging.ERROR, "Redis still unreachable after %g s: giving up (%s)", self.seconds, error)
                    raise
                pause = min(CAP_SECONDS, BASE_SECONDS * 2 ** min(failures, 16))
                time.sleep(min(deadline - now, pause / 2 + random.random() * pause / 2))
                continue
            if failures and outer:
                _ridden_out[0] += 1
                _say(logging.WARNING, "Redis reachable again after %d failed tries", failures, force=True)
            return result


def ridden_out() -> int:
    """How many times a Redis call of this process succeeded after failing for an outage (only ever grows)."""
    return _ridden_out[0]


class RestartWatch:
    """Notices when a Redis server may have dropped messages it was handing out.

    A worker's ``BRPOP`` that took a message out of a queue as Redis died (or as its connection broke)
    never got the reply, and nothing puts that message back. Two signs that this may have happened since
    the last look: a watched server's ``run_id`` changed (it was restarted: a pooled connection reconnects
    without an error, so a client that was idle through the outage sees nothing else), or a call of this
    process rode out an outage (:func:`ridden_out`). A server that does not answer at a look keeps the
    ``run_id`` it had: its restart shows at the first look that reaches it again (a server that has not
    answered yet gets its first ``run_id`` as the baseline).

    Args:
        clients: Clients of the Redis servers to watch (the run store's; a broker's on another server).
        every: Seconds between two looks at the servers (one ``INFO server`` each).
        owns: Those of ``clients`` the watch opened for itself: :meth:`close` closes them.
    """

    def __init__(self, *clients: redis.Redis, every: float = 1.0, owns: tuple[redis.Redis, ...] = ()) -> None:
        self._clients, self._every, self._owned = clients, every, owns
        self._next = time.monotonic() + every
        self._servers = [self._run_id(client) for client in clients]  # None: not known yet
        self._outages = ridden_out()

    @staticmethod
    def _run_id(client: redis.Redis) -> str | None:
        try:
            return str(client.info("server").get("run_id", ""))
        except redis.ResponseError:  # an ACL without INFO: the outages ridden out are the only sign left
            return ""
        except (ConnectionError, TimeoutError):  # down right now: known at the next look that reaches it
            return None

    def lost_since_last_look(self) -> bool:
        """True if messages may have been lost since the last call (looks at most every ``every`` seconds)."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._every
        lost = False
        for i, client in enumerate(self._clients):
            server, known = self._run_id(client), self._servers[i]
            if server is not None:
                lost = lost or (known is not None and server != known)
                self._servers[i] = server
        outages = ridden_out()
        lost = lost or outages != self._outages
        self._outages = outages
        return lost

    def close(self) -> None:
        """Close the clients the watch opened for itself."""
        for client in self._owned:
            client.close()


def _say(level: int, message: str, *args: Any, force: bool = False) -> None:
    """Log an outage line, at most one every few seconds per process (every thread retries at once)."""
    with _log_lock:
        now = time.monotonic()
        if not force and now - _last_log[0] < 5.0:
            return
        _last_log[0] = now
    logger.log(level, message, *args)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Redis calls made in this block (this thread) are tried once: a metrics scrape must answer, not wait out
    an outage (or a Redis that is gone for good) for ``DMAP_REDIS_OUTAGE_SECONDS``."""
    before = getattr(_depth, "value", 0)
    _depth.value = before + 1  # as if nested inside a retry: the outermost one waits, and there is none
    try:
        yield
    finally:
        _depth.value = before


def ride_out(client: redis.Redis, seconds: float) -> None:
    """Make ``client`` (its current and future connections) retry through outages of up to ``seconds``."""
    client.set_retry(OutageRetry(seconds))


def publish_retry_policy(seconds: float) -> dict[str, float]:
    """kombu's ``retry_policy`` for publishing that keeps trying for about ``seconds`` (at least one retry)."""
    step = 0.5
    return {
        "max_retries": max(1, int(seconds / step) + 1),
        "interval_start": 0,
        "interval_step": step / 4,
        "interval_max": step,
    }


def is_outage(exc: BaseException) -> bool:
    """True for a lost Redis or broker (or a claim taken over meanwhile), as opposed to a fault of the run itself.

    Such a fault hands the execution over (it stays RUNNING and resumes elsewhere); any other ends it.
    """
    from .errors import BackendError

    if isinstance(exc, redis.RedisError | BackendError | builtins.ConnectionError | builtins.TimeoutError):
        return True
    try:
        from kombu.exceptions import OperationalError  # the broker (celery is installed with dmap)
    except ImportError:
        return False
    return isinstance(exc, OperationalError)

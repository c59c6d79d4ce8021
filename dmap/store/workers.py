"""The worker registry (DESIGN §11): which ``dmap worker`` processes are alive, and what code they run.

Each worker's main process advertises one record in Redis — host, pid, node name, queues,
concurrency, dmap version, start time and a code hash per registered handler — and renews it from
a daemon thread (:class:`WorkerBeacon`) every few seconds. The record's key expires unless renewed,
so a worker that dies (even ``kill -9``) drops out of :func:`list_workers` one TTL later; a clean
shutdown removes it at once. Key names are in :mod:`dmap.keys`.

This module owns the records and the code hash. It does not decide what a submitter makes of them
(that is :mod:`dmap.admission`) and it never touches run state.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import socket
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from ..keys import worker_key, workers_key

logger = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
"""How often a worker renews its record."""
TTL_SECONDS = 15.0
"""How long a record outlives its last renewal: three missed beats and the worker is gone."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One live ``dmap worker``, as it advertises itself.

    Attributes:
        id: Unique id of the worker process: ``<node>/<pid>``.
        node: The Celery node name (``celery@host`` unless ``-n`` says otherwise).
        host: The machine's host name.
        pid: The worker's main process id.
        queues: The Celery queues it consumes.
        concurrency: Its pool size (children it runs at once).
        version: The dmap version it runs.
        started: When it started (ISO-8601, the worker's clock).
        handlers: Registered handler name -> code hash (:func:`code_hash`).
    """

    id: str
    node: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    version: str
    started: str
    handlers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The record as stored in Redis."""
        data = asdict(self)
        data["queues"], data["handlers"] = list(self.queues), dict(self.handlers)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerInfo:
        """A record read back from Redis."""
        data = json.loads(text)
        return cls(
            id=str(data["id"]),
            node=str(data.get("node", "")),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            queues=tuple(data.get("queues", ())),
            concurrency=int(data.get("concurrency", 0)),
            version=str(data.get("version", "")),
            started=str(data.get("started", "")),
            handlers={str(k): str(v) for k, v in dict(data.get("handlers", {})).items()},
        )


def code_hash(fn: Callable[..., Any]) -> str:
    """A short hash of what a handler function *runs*: its bytecode, constants, names and defaults.

    Computed from the loaded code object, not from the file on disk (a worker started before the
    file was edited still hashes the old code, which is the point). Line numbers and comments are
    left out, so moving a function or editing a comment keeps its hash; the same code gives the
    same hash in every process of the same Python minor version. Helpers the handler calls are not
    included. Objects without a code object (a callable instance, a builtin) hash their qualified name.

    Args:
        fn: The handler.

    Returns:
        12 hex digits.
    """
    digest = hashlib.sha256()
    target = inspect.unwrap(fn)
    code = getattr(target, "__code__", None)
    if code is None:
        call = vars(type(target)).get("__call__")  # a callable instance: hash its own class's __call__
        code = getattr(call, "__code__", None)
    if isinstance(code, types.CodeType):
        _feed_code(digest, code)
        digest.update(_stable_repr(getattr(target, "__defaults__", None)).encode())
        digest.update(_stable_repr(getattr(target, "__kwdefaults__", None)).encode())
    else:
        digest.update(f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', repr(target))}".encode())
    return digest.hexdigest()[:12]


def _feed_code(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(digest, const)  # nested functions, lambdas, comprehensions
        else:
            digest.update(_stable_repr(const).encode())


def _stable_repr(value: Any) -> str:
    """``repr`` that does not depend on the hash seed (frozenset constants come from ``x in {...}``)."""
    if isinstance(value, frozenset | set):
        return "{" + ",".join(sorted(_stable_repr(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_stable_repr(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(sorted(f"{_stable_repr(k)}:{_stable_repr(v)}" for k, v in value.items())) + "}"
    return repr(value)


def handler_hashes(handlers: Any = None) -> dict[str, str]:
    """Every registered handler name with its :func:`code_hash` (default: the ``@dmap.task`` registry)."""
    from ..interpreter.tasks import registry

    chosen = registry if handlers is None else handlers
    found: dict[str, str] = {}
    for name in chosen.names():
        resolved = chosen.lookup(name)
        if resolved is not None:
            found[name] = code_hash(resolved[1])
    return found


def this_worker(node: str, queues: Iterable[str], concurrency: int) -> WorkerInfo:
    """The record of the calling process as a worker, with the handlers registered here now."""
    from .. import __version__
    from ..interpreter.context import iso_now

    pid = os.getpid()
    return WorkerInfo(
        id=f"{node}/{pid}",
        node=node,
        host=socket.gethostname(),
        pid=pid,
        queues=tuple(queues),
        concurrency=concurrency,
        version=__version__,
        started=iso_now(),
        handlers=handler_hashes(),
    )


def advertise(client: redis.Redis, prefix: str, info: WorkerInfo, ttl_seconds: float = TTL_SECONDS) -> None:
    """Write (or renew) a worker's record; it expires ``ttl_seconds`` later unless written again."""
    pipe = client.pipeline(transaction=False)
    pipe.set(worker_key(prefix, info.id), info.to_json(), px=int(ttl_seconds * 1000))
    pipe.sadd(workers_key(prefix), info.id)
    pipe.execute()


class ListenerWatch:
    """How long no live ``dmap worker`` has listened on a queue: a run whose last worker is gone says so.

    Reads the registry at most every ``every`` seconds (a coordinator or a progress line asks often).

    Args:
        client: The Redis of the registry.
        prefix: The key prefix.
        queue: The Celery queue the children are sent to.
        every: Seconds between two reads of the registry.
    """

    def __init__(self, client: redis.Redis, prefix: str, queue: str, *, every: float = 2.0) -> None:
        self.client, self.prefix, self.queue, self.every = client, prefix, queue, every
        self._read_at = float("-inf")
        self._silent_since: float | None = None

    def silent_for(self) -> float:
        """Seconds since a live worker last listened on the queue (0.0 while one does)."""
        now = time.monotonic()
        if now - self._read_at >= self.every:
            self._read_at = now
            listening = any(self.queue in w.queues for w in read_workers(self.client, self.prefix))
            if listening:
                self._silent_since = None
            elif self._silent_since is None:
                self._silent_since = now
        return 0.0 if self._silent_since is None else now - self._silent_since


def withdraw(client: redis.Redis, prefix: str, worker_id: str) -> None:
    """Remove a worker's record at once (a clean shutdown)."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(worker_key(prefix, worker_id))
    pipe.srem(workers_key(prefix), worker_id)
    pipe.execute()


def read_workers(client: redis.Redis, prefix: str) -> list[WorkerInfo]:
    """The live workers' records, sorted by host and pid; index entries whose record expired are pruned."""
    ids = sorted(raw.decode() if isinstance(raw, bytes) else str(raw) for raw in client.smembers(workers_key(prefix)))
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for worker_id in ids:
        pipe.get(worker_key(prefix, worker_id))  # one GET each, not MGET: the keys may sit in different cluster slots
    found, gone = [], []
    for worker_id, text in zip(ids, pipe.execute(), strict=True):
        if text is None:
            gone.append(worker_id)
            continue
        try:
            found.append(WorkerInfo.from_json(text))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable worker record %r", worker_id)
    if gone:
        client.srem(workers_key(prefix), *gone)
    return sorted(found, key=lambda w: (w.host, w.pid, w.id))


def list_workers(*, backend: Any = None, queue: str | None = None) -> list[WorkerInfo]:
    """The ``dmap worker`` processes alive now (those whose heartbeat record has not expired).

    Workers are a celery-backend notion: without ``backend`` this reads the Redis of
    ``DMAP_REDIS_URL`` whatever ``DMAP_BACKEND`` says.

    Args:
        backend: A :class:`~dmap.backends.celery.CeleryBackend` (or ``"celery"``); default: from the settings.
        queue: Only workers consuming this queue.

    Returns:
        The live workers, sorted by host and pid.

    Raises:
        BackendError: Redis cannot be reached.
    """
    from ..backends import get_backend
    from ..errors import BackendError

    engine = get_backend(backend or "celery")
    store = getattr(engine, "redis", None)
    if store is None:
        return []  # the local backend has no workers
    try:
        workers = read_workers(store.client, store.prefix)
    except redis.RedisError as exc:
        from ..config import redact

        raise BackendError(f"cannot read the worker registry from Redis: {redact(str(exc))}") from None
    return [w for w in workers if queue is None or queue in w.queues]


class WorkerBeacon:
    """Advertises this worker process in the registry from a daemon thread until stopped.

    Args:
        client: A Redis client of the run store (used only by this thread).
        prefix: The run store's key prefix.
        info: This worker's record.
        interval: Seconds between renewals.
        ttl: Seconds a record lives without renewal.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        info: WorkerInfo,
        *,
        interval: float = BEAT_SECONDS,
        ttl: float = TTL_SECONDS,
    ) -> None:
        self.client, self.prefix, self.info = client, prefix, info
        self.interval, self.ttl = interval, ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Advertise now (so a submitter sees the worker as soon as it is ready), then keep renewing."""
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="dmap-worker-beacon", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and remove the record (best effort: an unreachable Redis lets it expire instead)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval)
        try:
            withdraw(self.client, self.prefix, self.info.id)
        except redis.RedisError:
            logger.warning("could not remove worker %s from the registry; it expires in %gs", self.info.id, self.ttl)

    def _beat(self) -> None:
        try:
            advertise(self.client, self.prefix, self.info, self.ttl)
        except redis.RedisError:  # a Redis hiccup: the next beat tries again before the record expires
            logger.warning("could not renew worker %s in the registry", self.info.id, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

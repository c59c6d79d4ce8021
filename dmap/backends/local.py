"""The embedded backend: children run on threads of this process; the run store is in memory.

Children whose processor cannot block (no Task or Wait state) run inline in the coordinator's
thread — a thread hop would cost more than the child. The others go to :class:`Workers`, a small
pool made for this hand-off: one deque under one lock, no future per child, threads started only
when no idle one can take the child.

Nothing in this process can take a child over from another process, so children of the in-memory
store hold their run lease until they complete (:data:`~dmap.store.memory.HELD`): no expiry, no
heartbeat. A store that cannot hold leases (a wrapper a test put in) gets the heartbeat as before.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from .. import telemetry
from ..child import ChildPlan, run_child
from ..config import Settings
from ..heartbeat import heartbeat
from ..journal import MemoryJournal
from ..store import Lease
from ..store.memory import HELD, MemoryRunStore
from . import Backend

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 64

Job = Callable[[], Any]


class Workers:
    """Daemon threads that run jobs from one queue; at most ``limit`` of them, started on demand.

    The queue is a C ``SimpleQueue``: a busy thread takes its next job without a Python lock (so
    threads never queue up behind each other's hand-offs); only a thread about to block for want of
    work takes the pool's lock, to count itself idle. A submit wakes idle threads for its jobs and
    starts threads for the rest, up to the limit. The idle count can fall behind (a busy thread took
    the job an idle one was woken for), never ahead: the pool may start a thread too many, never
    leave a job waiting while it could start one.

    Args:
        limit: The most threads.
        name: The threads' name prefix.
    """

    def __init__(self, limit: int, name: str = "dmap-child") -> None:
        self._limit, self._name = limit, name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads blocked (or about to block) on an empty queue, not yet claimed by a submit
        self._closed = False

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue ``jobs``; wake idle threads for them and start threads for the rest (up to the limit)."""
        if not jobs or self._closed:
            return
        for job in jobs:
            self._jobs.put(job)
        with self._lock:
            woken = min(self._idle, len(jobs))
            self._idle -= woken  # claimed now: a second submit before they run must not count on them
            start = max(0, min(len(jobs) - woken, self._limit - self._threads))
            self._threads += start
        for _ in range(start):
            threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()

    def close(self) -> None:
        """Let the threads end once their current job is done; jobs still queued are dropped."""
        self._closed = True
        with self._lock:
            threads = self._threads
        for _ in range(threads):
            self._jobs.put(None)

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                with self._lock:
                    self._idle += 1
                job = jobs.get()
            if job is None or self._closed:
                with self._lock:
                    self._threads -= 1
                return
            try:
                job()
            except BaseException:  # noqa: B036 - a job's escape must not end the thread that serves the others
                logger.exception("a local child job raised")


class LocalBackend(Backend):
    """Threads + :class:`~dmap.store.memory.MemoryRunStore` (huey's immediate mode, dramatiq's stub broker)."""

    name = "local"
    _shared: ClassVar[LocalBackend | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: Settings | None = None, *, threads: int = DEFAULT_THREADS) -> None:
        super().__init__(settings)
        self.store = MemoryRunStore()
        self.journal = MemoryJournal()
        self._plans: dict[str, ChildPlan] = {}
        self._workers = Workers(threads)

    @classmethod
    def shared(cls, settings: Settings | None = None) -> LocalBackend:
        """The process-wide local backend (its store keeps this process's runs for describe/resume)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls(settings)
            return cls._shared

    def publish_plan(self, plan: ChildPlan) -> None:
        """Keep the plan in memory."""
        self._plans[plan.run_id] = plan

    def dispatch(self, plan: ChildPlan, leases: Sequence[Lease]) -> None:
        """Run children on the worker threads, or inline when they cannot block."""
        store = self.store
        held = getattr(store, "holds_leases", False)
        lease_ms, beat = (HELD, None) if held else (None, heartbeat)
        if not plan.blocking:  # inline: the Map Run's span is this thread's current one
            for lease in leases:
                run_child(store, plan, lease.child, lease.token, engine=self, lease_ms=lease_ms)
            return
        trace = telemetry.carrier()  # pool threads do not inherit the Map Run's span: hand it over

        def job(child: int, token: str) -> Job:
            return lambda: run_child(
                store, plan, child, token, heartbeat=beat, engine=self, lease_ms=lease_ms, trace=trace
            )

        self._workers.submit([job(lease.child, lease.token) for lease in leases])

    def close(self) -> None:
        """Stop the worker threads (queued children are dropped; their leases expire or the run is gone)."""
        self._workers.close()

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
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

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

    A job is queued with one lock acquisition and taken with one; a thread is woken only when it is
    idle, and a new one is started only when no idle thread is left (so a run of short children
    keeps to the few threads it needs, and blocking children still get up to ``limit``).

    Args:
        limit: The most threads.
        name: The threads' name prefix.
    """

    def __init__(self, limit: int, name: str = "dmap-child") -> None:
        self._limit, self._name = limit, name
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0  # threads waiting for a job and not yet claimed by a submit
        self._closed = False

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue ``jobs``; wake idle threads for them and start threads for the rest (up to the limit)."""
        if not jobs:
            return
        with self._cond:
            if self._closed:
                return
            self._jobs.extend(jobs)
            woken = min(self._idle, len(jobs))
            if woken:
                self._idle -= woken  # claimed now: a second submit before they run must not count on them
                self._cond.notify(woken)
            start = min(len(jobs) - woken, self._limit - self._threads)
            self._threads += max(0, start)
        for _ in range(start):
            threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()

    def close(self) -> None:
        """Drop the queued jobs and let the threads end once their current job is done."""
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()

    def _work(self) -> None:
        jobs, cond = self._jobs, self._cond
        while True:
            with cond:
                while not jobs:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._idle += 1
                    cond.wait()
                    # A submit that woke this thread took it off the idle count; close() did not.
                    if self._closed:
                        self._idle = max(0, self._idle - 1)
                job = jobs.popleft()
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
        if not plan.blocking:
            for lease in leases:
                run_child(store, plan, lease.child, lease.token, engine=self, lease_ms=lease_ms)
            return

        def job(child: int, token: str) -> Job:
            return lambda: run_child(store, plan, child, token, heartbeat=beat, engine=self, lease_ms=lease_ms)

        self._workers.submit([job(lease.child, lease.token) for lease in leases])

    def close(self) -> None:
        """Stop the worker threads (queued children are dropped; their leases expire or the run is gone)."""
        self._workers.close()

"""The embedded backend: children run on threads of this process; the run store is in memory.

Children whose processor cannot block (no Task or Wait state) run inline in the coordinator's
thread — a thread hop would cost more than the child. The others go to a thread pool.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from ..child import ChildPlan, run_child
from ..config import Settings
from ..heartbeat import heartbeat
from ..journal import MemoryJournal
from ..store import Lease
from ..store.memory import MemoryRunStore
from . import Backend

DEFAULT_THREADS = 64


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
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dmap-child")

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
        """Run children on the pool, or inline when they cannot block."""
        for lease in leases:
            if plan.blocking:
                self._pool.submit(
                    run_child, self.store, plan, lease.child, lease.token, heartbeat=heartbeat, engine=self
                )
            else:
                run_child(self.store, plan, lease.child, lease.token, engine=self)

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)

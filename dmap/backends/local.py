"""The embedded backend: children run on threads of this process; the run store is in memory.

Children whose processor cannot block (no Task or Wait state) run inline in the coordinator's
thread — a thread hop would cost more than the child. The others go to :class:`Workers`, a small
pool made for this hand-off: one deque under one lock, no future per child, threads started only
when no idle one can take the child.

Nothing in this process can take a child over from another process, so children of the in-memory
store hold their run lease until they complete (:data:`~dmap.store.memory.HELD`): no expiry, no
heartbeat. A store that cannot hold leases (a wrapper a test put in) gets the heartbeat as before.

Granted children's inputs live in this process until they finish, so the coordinator grants pool
children only as far as the pool can start them soon (:meth:`LocalBackend.room`): at most two per
thread per Map Run, at most :data:`QUEUED_AHEAD` not yet taken by a thread, and at most
:data:`INFLIGHT_BYTES` of their input (always one child). Without
it, MaxConcurrency 0 granted up to 10,000 children of 256 KiB batches ahead of 64 threads.

Once a run's permits are all out, the store also keeps up to :data:`STAGE` children staged past them
(no lease, no permit), and up to :data:`TAKERS` threads that finish a child take the next staged one
with the permit they free, in the same locked step (:meth:`MemoryRunStore.step_take
<dmap.store.memory.MemoryRunStore.step_take>`, the in-process twin of the celery workers'
``step.lua``): a concurrency-limited run in steady state needs no grant, no hand-off and no
coordinator wake-up per child. A no-op Task child at MaxConcurrency 8 went from 8,600-9,300/s to
10,800-12,700/s with it, in runs alternating the two on a busy machine (up to 15,500/s when quiet).
"""

from __future__ import annotations

import itertools
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
from ..store import ChildSpec, Lease
from ..store.memory import HELD, MemoryRunStore
from . import Backend

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 64
CHILDREN_PER_THREAD = 2
"""Pool children of one Map Run granted per thread at most: one running, one ready to start."""
QUEUED_AHEAD = 32
"""Pool children of one Map Run granted but not yet taken by a thread, at most. A deeper queue kept
every thread runnable at once and they convoyed on the store's lock (a no-op Task child at
MaxConcurrency 100: 4,100-5,100/s and 20,000 context switches/s with 64 queued, 8,300-8,900/s with
at most 32 queued); children that block in their handler still reach every thread, 32 at a time."""
STAGE = 64
"""Pool children of one Map Run kept staged in the store past its permits (no lease, no permit): a
thread that finishes a child takes the next one itself with the permit it frees
(:meth:`~dmap.store.memory.MemoryRunStore.step_take`), so a run in steady state needs no grant, no
hand-off and no coordinator wake-up per child. Within :data:`INFLIGHT_BYTES` like the granted ones."""
TAKE_SECONDS = 0.2
"""How long a pool thread may go on taking one run's staged children before it serves its queue again
(jobs of other runs wait behind it at most about that long when every thread is busy)."""
TAKERS = 8
"""Pool threads that take staged children at most."""
INFLIGHT_BYTES = 3 * 1024 * 1024
"""Input characters of one Map Run's granted, unfinished pool children at most (parsed, a batch is ~6x that)."""

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

    def __init__(
        self, settings: Settings | None = None, *, threads: int = DEFAULT_THREADS, inflight_bytes: int = INFLIGHT_BYTES
    ) -> None:
        super().__init__(settings)
        self.store = MemoryRunStore()
        self.journal = MemoryJournal()
        self._plans: dict[str, ChildPlan] = {}
        self._workers = Workers(threads)
        self._most, self._budget = threads * CHILDREN_PER_THREAD, inflight_bytes
        self._lock = threading.Lock()
        # run -> [children, input characters, children started] granted, not finished
        self._inflight: dict[str, list[int]] = {}
        self._offered: dict[str, list[int]] = {}  # run -> input sizes of the children room() let it offer
        self._staging: dict[str, int] = {}  # run -> children room() offered past the permits, for the store to stage
        self._takers = 0  # pool threads taking staged children now
        self._starved: set[str] = set()  # runs room() held back: their next finished child wakes the coordinator

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

    def room(self, plan: ChildPlan, pending: Sequence[ChildSpec]) -> int:
        """How many of ``pending`` (in order) the coordinator may offer for permits now.

        Inline children run in the coordinator's thread as they are dispatched: all of them. Pool
        children: as many as keep the Map Run within two per thread, :data:`QUEUED_AHEAD` queued and
        :data:`INFLIGHT_BYTES` of input, counting those granted and not yet finished (at least one
        when none is). When those take every permit that is left, up to :data:`STAGE` more within the
        same bytes, for the store to stage (:meth:`stage`); they are not charged to the pool, since a
        thread takes each with a permit it frees, in place of the child it finished.
        """
        if not plan.blocking:
            return len(pending)
        run = plan.run_id
        with self._lock:
            children, size, started = self._inflight.get(run, (0, 0, 0))
        # No acquire grants more than the run's permits: looking further down the window (up to two
        # children per thread) only cost time, once per grant.
        config = self.store.config(run)
        most = self._most if config is None else min(self._most, config.permits)
        sizes: list[int] = []
        permitted = most - children
        limit = max(0, min(permitted, QUEUED_AHEAD - (children - started)))
        window = itertools.islice(pending, limit + STAGE)
        for spec in itertools.islice(window, limit):
            n = len(spec.input)
            if children and size + n > self._budget:
                break
            children, size = children + 1, size + n
            sizes.append(n)
        granted = len(sizes)
        # Held back by the bytes, the queue or the threads (not by the permits, which a finish frees and
        # announces itself): the next child to start or finish wakes the coordinator.
        if granted < len(pending) and (granted < limit or limit < permitted or most == self._most):
            with self._lock:
                self._starved.add(run)
        if granted == permitted and most < self._most:  # every permit out: what the store may stage past them
            for spec in window:
                n = len(spec.input)
                if size + n > self._budget:
                    break
                size += n
                sizes.append(n)
        self._offered[run] = sizes[:granted]
        self._staging[run] = len(sizes) - granted
        return len(sizes)

    def stage(self, plan: ChildPlan) -> int:
        """How many children the store may keep staged past the run's permits: what room() offered past them.

        At most :data:`STAGE`, and within :data:`INFLIGHT_BYTES` with the granted ones (the store counts
        those already staged against it, so staged inputs never hold more than that).
        """
        return self._staging.pop(plan.run_id, 0)

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
        run = plan.run_id
        # A grant is a prefix of what room() let the coordinator offer (a re-granted child is charged as one).
        offered = self._offered.pop(run, ())
        sizes = [offered[i] if i < len(offered) else 0 for i in range(len(leases))]
        with self._lock:
            inflight = self._inflight.setdefault(run, [0, 0, 0])
            inflight[0] += len(leases)
            inflight[1] += sum(sizes)

        def job(child: int, token: str, size: int) -> Job:
            def run_one() -> None:
                takes = self._started(run)
                try:
                    run_child(
                        store,
                        plan,
                        child,
                        token,
                        heartbeat=beat,
                        engine=self,
                        lease_ms=lease_ms,
                        trace=trace,
                        take_for=TAKE_SECONDS if takes else 0.0,
                    )
                finally:
                    self._finished(run, size, takes)

            return run_one

        self._workers.submit([job(lease.child, lease.token, size) for lease, size in zip(leases, sizes, strict=True)])

    def _started(self, run: str) -> bool:
        """A pool thread took a child of ``run`` off the queue: one queued fewer; wake a held-back coordinator.

        Returns whether the thread may go on taking staged children (at most :data:`TAKERS` threads do).
        """
        with self._lock:
            inflight = self._inflight.get(run)
            if inflight is not None:
                inflight[2] += 1
            starved = self._unstarve(run)
            takes = self._takers < TAKERS
            self._takers += takes
        if starved:
            self._nudge(run)
        return takes

    def _finished(self, run: str, size: int, took: bool) -> None:
        """A pool child of ``run`` ended: its room is free again; wake a coordinator that room() held back."""
        with self._lock:
            self._takers -= took
            inflight = self._inflight.get(run)
            if inflight is not None:
                inflight[0] -= 1
                inflight[1] -= size
                inflight[2] -= 1
                if inflight[0] <= 0:
                    del self._inflight[run]
            starved = self._unstarve(run)
        if starved:  # its wake for this child may have come before the room did
            self._nudge(run)

    def _unstarve(self, run: str) -> bool:
        """Whether room() held ``run`` back since its last wake; forgets it (call with ``_lock`` held)."""
        if run not in self._starved:
            return False
        self._starved.discard(run)
        return True

    def _nudge(self, run: str) -> None:
        nudge = getattr(self.store, "nudge", None)
        if nudge is not None:
            nudge(run)

    def close(self) -> None:
        """Stop the worker threads (queued children are dropped; their leases expire or the run is gone)."""
        self._workers.close()

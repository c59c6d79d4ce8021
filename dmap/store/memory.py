"""The in-process run store: the semaphore, the aggregator and the child records in dicts, under one lock.

This module owns :class:`MemoryRunStore`, the :class:`~dmap.store.RunStore` of the embedded
``local`` backend. Its semantics are those of :class:`~dmap.store.redis.RedisRunStore` (the same
behaviour suite runs against both); only the storage differs: plain objects, a binary heap of lease
expiries on ``time.monotonic()`` and a :class:`threading.Condition` for :meth:`~MemoryRunStore.wait`.
It does not survive the process and does not talk to Redis. Every call holds the lock for a few
microseconds: the local backend's budget is tens of thousands of children per second end to end.

One thing only this store offers: a run lease :data:`HELD` until the child completes. A child that
runs on a thread of the store's own process cannot be lost without the store, so it needs no
expiry, no heartbeat and no lease heap entry (the ``local`` backend's children start with it).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ..errors import NotFoundError
from . import (
    ABORTED,
    RUN,
    STALE,
    WORKER_LOST_ERROR,
    Acquired,
    ChildSpec,
    ChildStatus,
    Completed,
    Counts,
    Done,
    Lease,
    RunConfig,
    RunCounts,
    Started,
    TotalMismatch,
    aborted_cause,
    exceeds_tolerance,
    record_error,
    store_record,
    worker_lost_cause,
)
from .activity import RunActivity

_PENDING, _RUNNING, _SUCCEEDED, _FAILED, _TIMED_OUT, _ABORTED = range(6)
_STATUSES = tuple(ChildStatus)
_STALE = Started(STALE)
_NOT_RECORDED = Completed(False, False)
_MAX_WAKE_TOKENS = 8
_T = TypeVar("_T")

HELD = 0
"""``start(lease_ms=HELD)``: the run lease is held until :meth:`MemoryRunStore.complete`, never expires."""
_COALESCE_PERMITS = 256  # the coordinator's window: what one acquire can grant at most
_COALESCE_SECONDS = 0.002  # the longest a wake-up waits for more children to finish
_NEVER = math.inf  # the expiry of a held lease: in ``leases`` (it holds a permit), never in the heap


@dataclass(slots=True)
class _Child:
    """What the store keeps about a granted child until it succeeds (or for good if it did not)."""

    first: int
    items: int
    token: str
    attempt: int = 1
    started: float = 0.0  # epoch seconds of the last start
    worker: str = ""


@dataclass(slots=True, eq=False)
class _Run:
    """The state of one Map Run; every field is guarded by the store's lock."""

    config: RunConfig
    signal: Callable[[], None]  # wakes threads blocked in MemoryRunStore.wait
    status: bytearray = field(default_factory=bytearray)  # one status code per child
    children: dict[int, _Child] = field(default_factory=dict)
    inputs: dict[int, str] = field(default_factory=dict)
    leases: dict[int, float] = field(default_factory=dict)  # child -> expiry (monotonic seconds)
    heap: list[tuple[float, int]] = field(default_factory=list)  # lazy: entries not matching `leases` are stale
    redo: deque[int] = field(default_factory=deque)
    wake: deque[str] = field(default_factory=deque)
    results: dict[int, str] = field(default_factory=dict)
    failures: dict[int, tuple[str | None, str]] = field(default_factory=dict)  # child -> (error if known, record)
    items: list[int] = field(default_factory=lambda: [0] * 6)  # per status code
    execs: list[int] = field(default_factory=lambda: [0] * 6)
    written: list[int] = field(default_factory=lambda: [0, 0])  # items, children
    reclaimed: int = 0
    freed: int = 0  # permits released by complete() since the last acquire (wait() coalesces on it)
    want: int = 0  # the freed permits a coalescing wait() waits for (0: none waits for them)
    staging: int = 0  # the children the coordinator keeps staged on redo (acquire's last ``stage``)
    duplicates: int = 0
    totals: tuple[int, int] | None = None  # items, children, once the reader is exhausted
    declared: tuple[int, int | None] | None = None  # items, children (if known), counted ahead of the reader
    cursor: tuple[int | str, int, int] = (0, 0, 0)
    abort: str | None = None
    expires: float | None = None
    activity: RunActivity = field(default_factory=RunActivity)
    flow: dict[str, float] = field(default_factory=dict)  # adaptive concurrency (dmap.flow.adaptive): "ec"...

    def get(self, child: int) -> int:
        return self.status[child] if child < len(self.status) else _PENDING

    def set(self, child: int, value: int) -> None:
        if child >= len(self.status):
            self.status.extend(bytes(max(child + 1, 2 * len(self.status)) - len(self.status)))
        self.status[child] = value

    def lease(self, child: int, expiry: float) -> None:
        self.leases[child] = expiry
        heapq.heappush(self.heap, (expiry, child))
        if len(self.heap) > 2 * len(self.leases) + 256:
            # Renewals and releases leave stale entries behind; rebuild before they pile up.
            self.heap = [(e, c) for c, e in self.leases.items() if e != _NEVER]
            heapq.heapify(self.heap)

    def notify(self, token: str) -> None:
        if token == "ABORT":
            self.wake.appendleft(token)
            while len(self.wake) > _MAX_WAKE_TOKENS:
                self.wake.pop()
        elif not self.wake:
            self.wake.appendleft(token)
        elif self.freed < self.want and self.leases:
            # A coordinator gathering freed permits (MemoryRunStore.wait) would only re-check and sleep
            # again: at MaxConcurrency 100 it was woken ~25 times per grant, each a lock and GIL hand-off.
            return
        self.signal()


class MemoryRunStore:
    """A :class:`~dmap.store.RunStore` in this process's memory (the ``local`` backend).

    Args:
        clock: Monotonic seconds for lease expiry; injectable so tests can move time.
        wall: Epoch seconds for the dates of the records the store writes itself.
    """

    holds_leases = True
    """:meth:`start` takes ``lease_ms=HELD`` (children of this process need neither expiry nor heartbeat)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0  # threads blocked in wait(): with none, a completion need not notify anybody
        self._runs: dict[str, _Run] = {}
        self._ids = itertools.count(random.getrandbits(40))

    def _signal(self) -> None:
        # Condition.notify_all costs microseconds even when nobody waits, and every completion signals.
        if self._waiters:
            self._cond.notify_all()

    def _find(self, run: str) -> _Run | None:
        r = self._runs.get(run)
        if r is not None and r.expires is not None and self._clock() >= r.expires:
            del self._runs[run]
            return None
        return r

    def _read(self, run: str, read: Callable[[_Run], _T], default: _T) -> _T:
        with self._cond:
            r = self._find(run)
            return default if r is None else read(r)

    def _get(self, run: str) -> _Run:
        if (r := self._find(run)) is None:
            raise NotFoundError("Map Run", run)
        return r

    def create_run(self, run: str, config: RunConfig) -> bool:
        """Create the run's state if absent; False when it already existed (a resume)."""
        with self._cond:
            if self._find(run) is not None:
                return False
            self._runs[run] = _Run(config, self._signal)
            return True

    def config(self, run: str) -> RunConfig | None:
        """The run's current configuration, or None if the run is unknown."""
        return self._read(run, lambda r: r.config, None)

    def update_config(
        self,
        run: str,
        *,
        max_concurrency: int | None = None,
        tolerated_failure_count: int | None = None,
        tolerated_failure_percentage: float | None = None,
    ) -> None:
        """Change limits of a live run; re-checks the tolerance and wakes the coordinator."""
        with self._cond:
            r = self._get(run)
            if max_concurrency is not None:
                r.config = replace(r.config, max_concurrency=max_concurrency)
            if tolerated_failure_count is not None:
                r.config = replace(r.config, tolerated_failure_count=tolerated_failure_count)
            if tolerated_failure_percentage is not None:
                r.config = replace(r.config, tolerated_failure_percentage=tolerated_failure_percentage)
            self._check_tolerance(r)
            r.notify("1")

    def set_total(self, run: str, *, items: int, children: int) -> bool:
        """Declare the totals once; True if the percentage tolerance now aborts the run.

        Raises:
            NotFoundError: The run does not exist.
            TotalMismatch: Other totals were declared before, or fewer than were already granted.
        """
        with self._cond:
            r = self._get(run)
            declared, granted = (items, children), (r.cursor[2], r.cursor[1])
            if r.totals is not None:
                if r.totals != declared:
                    raise TotalMismatch(run, declared, r.totals, granted)
                return False
            if items < granted[0] or children < granted[1]:
                raise TotalMismatch(run, declared, None, granted)
            r.totals = declared
            return self._check_tolerance(r)

    def declare_total(self, run: str, *, items: int, children: int | None = None) -> bool:
        """Declare the source's totals ahead of the reader (first declaration wins); True if this aborts the run."""
        with self._cond:
            r = self._get(run)
            if r.declared is not None or r.totals is not None:
                return False
            r.declared = (items, children)
            return self._check_tolerance(r)

    def totals(self, run: str) -> tuple[int, int] | None:
        """The declared ``(items, children)`` totals, or None while unknown."""
        return self._read(run, lambda r: r.totals, None)

    def abort(self, run: str, reason: str) -> bool:
        """Set the abort flag with ``reason`` unless set; wakes the coordinator."""
        with self._cond:
            r = self._find(run)
            if r is None or r.abort is not None:
                return False
            r.abort = reason
            r.notify("ABORT")
            return True

    def nudge(self, run: str) -> None:
        """Wake the run's coordinator without a state change (its backend has room again)."""
        with self._cond:
            if (r := self._find(run)) is not None:
                r.notify("1")

    def aborted(self, run: str) -> str | None:
        """The abort reason, or None while the run is not aborted."""
        return self._read(run, lambda r: r.abort, None)

    def acquire(self, run: str, children: Sequence[ChildSpec], *, dispatch_lease_ms: int, stage: int = 0) -> Acquired:
        """Reclaim expired leases, then grant permits to redo children first, then to ``children``.

        ``stage``: with every permit out, up to this many more children (counting those already
        waiting there) wait on the redo list without a lease, as on Redis: the local backend's threads
        take them with the permits they free (:meth:`step_take`), without waking the coordinator.
        """
        with self._cond:
            r = self._get(run)
            r.freed = 0
            now = self._clock()
            reclaimed = self._reclaim(r, now) if r.heap and r.heap[0][0] <= now else 0
            leases: list[Lease] = []
            granted_new = 0
            if r.abort is None:
                free = _permits(r) - len(r.leases)
                expiry = now + dispatch_lease_ms / 1000
                redo = r.redo
                while free > 0 and redo and (again := _regrant(r, f"{next(self._ids):x}")) is not None:
                    c, child = again
                    r.lease(c, expiry)
                    leases.append(Lease(c, child.token, child.attempt))
                    free -= 1
                next_child = r.cursor[1]
                last: ChildSpec | None = None
                staged = max(0, stage - len(redo))
                r.staging = stage
                for spec in children:
                    if spec.child < next_child:
                        granted_new += 1  # granted by an earlier call: a replaying coordinator
                        continue
                    if free > 0:
                        token = f"1-{next(self._ids):x}"
                        r.children[spec.child] = _Child(spec.first, spec.items, token)
                        r.lease(spec.child, expiry)
                        leases.append(Lease(spec.child, token, 1))
                        free -= 1
                    elif staged > 0:  # no lease, no permit: attempt 0 until a thread takes it
                        r.children[spec.child] = _Child(spec.first, spec.items, "", attempt=0)
                        redo.append(spec.child)
                        staged -= 1
                    else:
                        break
                    r.inputs[spec.child] = spec.input
                    granted_new += 1
                    next_child = spec.child + 1
                    last = spec
                if last is not None:
                    r.cursor = (last.cursor, last.child + 1, last.first + last.items)
            return Acquired(leases, granted_new, self._wait_ms(r, now), reclaimed)

    def _reclaim(self, r: _Run, now: float) -> int:
        heap, leases = r.heap, r.leases
        n = 0
        while heap and heap[0][0] <= now:
            expiry, c = heapq.heappop(heap)
            if leases.get(c) != expiry:
                continue
            del leases[c]
            n += 1
            s = r.get(c)
            child = r.children.get(c)
            if child is None:
                continue
            if s < _SUCCEEDED:
                if s == _RUNNING:
                    r.items[_RUNNING] -= child.items
                    r.execs[_RUNNING] -= 1
                if r.abort is not None:
                    self._finish_aborted(r, c, child, started=s == _RUNNING)
                elif child.attempt >= r.config.max_attempts:
                    cause = worker_lost_cause(c, child.first, child.items, child.attempt, child.worker)
                    self._finish_as_store(r, c, child, _FAILED, WORKER_LOST_ERROR, cause)
                    self._check_tolerance(r)
                else:
                    if s == _RUNNING:
                        r.set(c, _PENDING)
                    r.redo.append(c)
            elif s == _SUCCEEDED and c not in r.results:
                del r.children[c]  # a leftover lease of a child another token finished
        r.reclaimed += n
        return n

    def _wait_ms(self, r: _Run, now: float) -> int:
        heap, leases = r.heap, r.leases
        while heap and leases.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if not heap:
            return -1
        return max(0, int((heap[0][0] - now) * 1000))

    def wait(self, run: str, timeout_ms: int) -> str | None:
        """Block until a wake token arrives or ``timeout_ms`` passes (<= 0: do not block)."""
        with self._cond:
            r = self._find(run)
            if r is None:
                return None
            wake = r.wake
            if not wake and timeout_ms > 0:
                self._block(lambda: bool(wake), timeout_ms / 1000)
            token = wake.popleft() if wake else None
            if token == "1" and r.leases and r.abort is None and timeout_ms > 0:
                # Children are still finishing: wake the coordinator once for several freed permits, not
                # once per child (each round of acquire and wait costs it more than a short child does).
                want = max(1, min(r.config.permits, _COALESCE_PERMITS) // 4)
                if r.freed < want:
                    r.want = want
                    try:
                        self._block(
                            lambda: r.freed >= want or not r.leases or r.abort is not None,
                            min(timeout_ms / 1000, _COALESCE_SECONDS),
                        )
                    finally:
                        r.want = 0
                if "ABORT" in wake:
                    wake.remove("ABORT")
                    return "ABORT"
                wake.clear()  # this wake-up stands for every "1" that came meanwhile
            return token

    def _block(self, predicate: Callable[[], bool], seconds: float) -> None:
        """Wait on the store's condition (lock held) until ``predicate`` or ``seconds``; counted for _signal."""
        self._waiters += 1
        try:
            self._cond.wait_for(predicate, seconds)
        finally:
            self._waiters -= 1

    def start(self, run: str, child: int, token: str, *, lease_ms: int, worker: str = "") -> Started:
        """RUN (with the input) if ``token`` holds the child's lease and the child is pending; else STALE/ABORTED.

        ``lease_ms=HELD`` holds the run lease until :meth:`complete` (a child of this process).
        """
        with self._cond:
            r = self._find(run)
            if r is None:
                return _STALE
            ch = r.children.get(child)
            if ch is None or ch.token != token or child not in r.leases:
                return _STALE
            s = r.get(child)
            if s >= _SUCCEEDED:
                del r.leases[child]
                r.notify("1")
                return _STALE
            if s == _RUNNING:
                return _STALE  # a redelivered message of a child that already runs
            if r.abort is not None:
                del r.leases[child]
                self._finish_aborted(r, child, ch, started=False)
                return Started(ABORTED)
            return self._begin(r, child, ch, lease_ms, worker)

    def _begin(self, r: _Run, c: int, ch: _Child, lease_ms: int, worker: str) -> Started:
        """Mark a leased (or just taken) pending child RUNNING with a run lease of ``lease_ms`` (HELD: held)."""
        r.set(c, _RUNNING)
        r.items[_RUNNING] += ch.items
        r.execs[_RUNNING] += 1
        if lease_ms > 0:
            r.lease(c, self._clock() + lease_ms / 1000)
        else:  # a dispatch lease's heap entry goes stale: _reclaim and _wait_ms skip it
            r.leases[c] = _NEVER
        ch.started = self._wall()
        ch.worker = worker
        return Started(RUN, r.inputs.get(c, ""), ch.attempt, ch.first, ch.items)

    def renew(self, run: str, leases: Sequence[tuple[int, str]], *, lease_ms: int) -> list[bool]:
        """Extend the leases still held by these tokens; False for a lost one (never re-created)."""
        with self._cond:
            r = self._find(run)
            if r is None:
                return [False] * len(leases)
            expiry = self._clock() + lease_ms / 1000
            out = []
            for c, token in leases:
                ch = r.children.get(c)
                ok = ch is not None and ch.token == token and c in r.leases
                if ok:
                    r.lease(c, expiry)
                out.append(ok)
            return out

    def complete(self, run: str, child: int, token: str, status: ChildStatus, record: str) -> Completed:
        """Record the child's first terminal result, release the token's own lease, check the tolerance.

        Raises:
            ValueError: ``status`` is not terminal.
        """
        if status < _SUCCEEDED:  # not terminal (an IntEnum compare; the property costs an enum lookup)
            raise ValueError(f"complete needs a terminal status, got {status.name}")
        with self._cond:
            r = self._find(run)
            if r is None:
                return _NOT_RECORDED
            return self._complete(r, child, token, status, record)[0]

    def _complete(
        self, r: _Run, child: int, token: str, status: ChildStatus, record: str, *, wake: bool = True
    ) -> tuple[Completed, bool]:
        """:meth:`complete` with the lock held; also whether it freed a permit. ``wake=False``: the caller wakes."""
        ch = r.children.get(child)
        freed = ch is not None and ch.token == token and r.leases.pop(child, None) is not None
        if freed and wake:
            r.freed += 1
            r.notify("1")
        s = r.get(child)
        if s >= _SUCCEEDED:
            r.duplicates += 1
            if ch is not None and s == _SUCCEEDED and child not in r.results and child not in r.leases:
                del r.children[child]
            return _NOT_RECORDED, freed
        if ch is None:
            return _NOT_RECORDED, freed  # never granted: nothing to record
        if s == _RUNNING:
            r.items[_RUNNING] -= ch.items
            r.execs[_RUNNING] -= 1
        code = int(status)
        self._finish(r, child, ch, code, record, None, wake=wake)
        aborted = code in (_FAILED, _TIMED_OUT) and self._check_tolerance(r)
        return Completed(True, aborted), freed

    def step_take(
        self,
        run: str,
        *,
        done: Done | None,
        nonce: str,
        lease_ms: int,
        worker: str = "",
    ) -> tuple[Completed | None, tuple[int, str, Started] | None]:
        """Complete ``done``, then take the next staged child and start it, under one lock (Redis: ``step.lua``).

        The take is a grant (a free permit under MaxConcurrency, a new token ``<attempt>-<nonce>``) and a
        start, so the child comes back RUNNING with its input; None when no permit is free, the run is
        aborted or no child waits on the redo list (staged by :meth:`acquire`). The coordinator is woken
        only when a permit stays free or the staged children run low (below half of what it stages):
        a thread that goes from one child to the next needs nobody else.
        """
        with self._cond:
            r = self._find(run)
            if r is None:
                return (None if done is None else _NOT_RECORDED), None
            completed, freed = None, False
            if done is not None:
                completed, freed = self._complete(r, done.child, done.token, done.status, done.record, wake=False)
            took = self._take(r, nonce, lease_ms, worker)
            if took is None:
                if freed:
                    r.freed += 1
                r.notify("1")
            elif len(r.redo) * 2 < r.staging:
                r.notify("1")
            return completed, took

    def _take(self, r: _Run, nonce: str, lease_ms: int, worker: str) -> tuple[int, str, Started] | None:
        if r.abort is not None or not r.redo:
            return None
        if (
            (r.items[_FAILED] or r.items[_TIMED_OUT])
            and _item_total(r) is None
            and r.config.tolerated_failure_percentage < 100
        ):
            return None  # failures wait for the source's total to be judged: the coordinator paces until it comes
        if _permits(r) - len(r.leases) <= 0 or (again := _regrant(r, nonce)) is None:
            return None
        c, child = again
        return c, child.token, self._begin(r, c, child, lease_ms, worker)

    def _finish(
        self, r: _Run, c: int, child: _Child, s: int, record: str, error: str | None, *, wake: bool = True
    ) -> None:
        r.set(c, s)
        now = self._wall()
        ran = (now - child.started) * 1000 if child.started and s != _ABORTED else None
        r.activity.note(now, child.items, s in (_FAILED, _TIMED_OUT), ran)
        r.items[s] += child.items
        r.execs[s] += 1
        r.results[c] = record
        if s == _SUCCEEDED:
            r.inputs.pop(c, None)
        else:
            r.failures[c] = (error, record)
        if wake:
            r.notify("1")

    def _finish_aborted(self, r: _Run, c: int, ch: _Child, *, started: bool) -> None:
        cause = aborted_cause(r.abort or "", c, ch.first, ch.items, started=started)
        self._finish_as_store(r, c, ch, _ABORTED, "", cause)

    def _finish_as_store(self, r: _Run, c: int, ch: _Child, s: int, error: str, cause: str) -> None:
        stop = self._wall()
        args = (ch.first, ch.items, _STATUSES[s], r.inputs.get(c, ""), error, cause, (ch.started or stop, stop))
        self._finish(r, c, ch, s, store_record(c, *args, ch.attempt, ch.worker), error)

    def _check_tolerance(self, r: _Run) -> bool:
        if r.abort is not None:
            return False
        c = r.config
        failed = r.items[_FAILED] + r.items[_TIMED_OUT]
        total = _item_total(r)
        if not exceeds_tolerance(failed, total, c.tolerated_failure_count, c.tolerated_failure_percentage):
            return False
        r.abort = "tolerance"
        r.notify("ABORT")
        return True

    def close_aborted(self, run: str) -> int:
        """Record every child still holding a lease ABORTED and drop every lease (aborted runs only)."""
        with self._cond:
            r = self._find(run)
            if r is None or r.abort is None:
                return 0
            n = 0
            for c in list(r.leases):
                del r.leases[c]
                s, child = r.get(c), r.children.get(c)
                if child is None:
                    continue
                if s < _SUCCEEDED:
                    if s == _RUNNING:
                        r.items[_RUNNING] -= child.items
                        r.execs[_RUNNING] -= 1
                    self._finish_aborted(r, c, child, started=s == _RUNNING)
                    n += 1
                elif s == _SUCCEEDED and c not in r.results:
                    del r.children[c]  # a leftover lease of a child another token finished
            r.heap.clear()
            return n

    def cursor(self, run: str) -> tuple[int | str, int, int]:
        """``(reader_cursor, next_child, next_item)`` as last stored by :meth:`acquire`."""
        new: tuple[int | str, int, int] = (0, 0, 0)
        return self._read(run, lambda r: r.cursor, new)

    def counts(self, run: str) -> RunCounts:
        """The run's item and execution counts now (zeros for an unknown run)."""
        return self._read(run, _run_counts, RunCounts())

    def statuses(self, run: str, first_child: int, count: int) -> list[ChildStatus]:
        """The statuses of ``count`` children from ``first_child`` (PENDING beyond the known ones)."""
        raw = self._read(run, lambda r: bytes(r.status[first_child : first_child + count]), b"")
        return [_STATUSES[s] for s in raw] + [ChildStatus.PENDING] * (count - len(raw))

    def take_results(self, run: str, first_child: int, limit: int) -> list[str]:
        """Remove and return the records of the contiguous finished children from ``first_child``."""
        with self._cond:
            r = self._find(run)
            out: list[str] = []
            c = first_child
            while r is not None and len(out) < limit:
                record = r.results.pop(c, None)
                if record is None:
                    break
                out.append(record)
                child = r.children.get(c)
                if child is not None:
                    r.written[0] += child.items
                    if r.get(c) == _SUCCEEDED and c not in r.leases:
                        del r.children[c]
                r.written[1] += 1
                c += 1
            return out

    def requeue_unstarted(self, run: str) -> int:
        """Expire the leases of granted children that never started (no attempt counted)."""
        with self._cond:
            r = self._get(run)
            now = self._clock()
            unstarted = [c for c in r.leases if r.get(c) == _PENDING]
            for c in unstarted:
                child = r.children.get(c)
                if child is not None:
                    child.attempt = max(0, child.attempt - 1)  # a resume is not a lost worker
                r.lease(c, now - 1e-6)
            return len(unstarted)

    def record_marks(self, run: str, first_child: int, count: int) -> str:
        """One character per child from ``first_child``: ``-`` not finished, ``r`` record here, ``w`` written."""
        with self._cond:
            r = self._find(run)
            if r is None:
                return "-" * count
            status, results = r.status, r.results
            return "".join(
                "-" if c >= len(status) or status[c] < _SUCCEEDED else ("r" if c in results else "w")
                for c in range(first_child, first_child + count)
            )

    def read_results(self, run: str, first_child: int, limit: int) -> list[str]:
        """The records of the contiguous finished children from ``first_child``, left in place."""
        with self._cond:
            r = self._find(run)
            out: list[str] = []
            while r is not None and len(out) < limit:
                record = r.results.get(first_child + len(out))
                if record is None:
                    break
                out.append(record)
            return out

    def failures(
        self, run: str, *, error: str | None = None, after: int | None = None, limit: int | None = None
    ) -> Iterator[str]:
        """The records of failed, timed-out and aborted children by child number (``error``, ``after`` filter)."""
        low = -1 if after is None else after
        snapshot: list[tuple[int, tuple[str | None, str]]] = self._read(
            run, lambda r: sorted(item for item in r.failures.items() if item[0] > low), []
        )
        records = (rec for _, (e, rec) in snapshot if error is None or (record_error(rec) if e is None else e) == error)
        return itertools.islice(records, limit)

    def failure_count(self, run: str, *, error: str | None = None) -> int:
        """How many failure records there are (``error`` filters), without copying them."""
        if error is None:
            return self._read(run, lambda r: len(r.failures), 0)
        return sum(1 for _ in self.failures(run, error=error))

    def failure_errors(self, run: str, *, limit: int = 50) -> list[tuple[str, int]]:
        """The distinct ``Error`` names of the failure records with their counts (at most ``limit``)."""
        snapshot: list[tuple[str | None, str]] = self._read(run, lambda r: list(r.failures.values()), [])
        counts: dict[str, int] = {}
        for error, record in snapshot:
            name = record_error(record) if error is None else error
            counts[name] = counts.get(name, 0) + 1
        return sorted(counts.items())[:limit]

    def activity(self, run: str) -> RunActivity:
        """Items finished per time bucket and the histogram of child run times (a snapshot)."""
        return self._read(run, lambda r: r.activity.copy(), RunActivity())

    def child_input(self, run: str, child: int) -> str | None:
        """The stored input of a child (kept for children that did not succeed)."""
        return self._read(run, lambda r: r.inputs.get(child), None)

    def reset_for_redrive(self, run: str) -> int:
        """Make every FAILED, TIMED_OUT and ABORTED child PENDING again, re-queue it, clear the abort flag."""
        with self._cond:
            r = self._get(run)
            r.abort = None
            r.wake.clear()
            for c in sorted(r.failures):
                s = r.get(c)
                child = r.children[c]
                r.set(c, _PENDING)
                r.items[s] -= child.items
                r.execs[s] -= 1
                if r.results.pop(c, None) is None:
                    r.written[0] -= child.items
                    r.written[1] -= 1
                r.leases.pop(c, None)
                child.attempt = 0
                r.redo.append(c)
            n = len(r.failures)
            r.failures.clear()
            if n:
                r.notify("1")
            return n

    def flow(self, run: str, change: Callable[[dict[str, float], int, int], _T]) -> _T | None:
        """Run ``change(state, succeeded_children, max_concurrency)`` on the run's flow-control state, atomically.

        The in-process twin of ``flow_adapt.lua`` (:mod:`dmap.flow.adaptive` owns the rule); a change
        that raises the effective concurrency wakes the coordinator. None for an unknown run.
        """
        with self._cond:
            r = self._find(run)
            if r is None:
                return None
            before = r.flow.get("ec")
            out = change(r.flow, r.execs[_SUCCEEDED], r.config.max_concurrency)
            after = r.flow.get("ec")
            if after is None and before is not None or (after or 0) > (before or 0) and before is not None:
                r.notify("1")
            return out

    def delete_run(self, run: str) -> None:
        """Remove all state of the run."""
        with self._cond:
            self._runs.pop(run, None)

    def expire_run(self, run: str, seconds: float) -> None:
        """Forget the run ``seconds`` from now (retention); no-op for an unknown run."""
        with self._cond:
            if (r := self._find(run)) is not None:
                r.expires = self._clock() + seconds


def _permits(r: _Run) -> int:
    """The run's permits: MaxConcurrency (10,000 for 0), or adaptive concurrency's lower limit."""
    effective = r.flow.get("ec")  # adaptive concurrency: never above MaxConcurrency
    return r.config.permits if effective is None else min(r.config.permits, int(effective))


def _regrant(r: _Run, nonce: str) -> tuple[int, _Child] | None:
    """The next child on the redo list that still waits, with its next attempt and token ``<attempt>-<nonce>``."""
    redo = r.redo
    while redo:
        c = redo.popleft()
        child = r.children.get(c)
        if child is None or c in r.leases or r.get(c) != _PENDING:
            continue  # finished meanwhile by a late completion, or leased again
        child.attempt += 1
        child.token = f"{child.attempt}-{nonce}"
        return c, child
    return None


def _item_total(r: _Run) -> int | None:
    """The item total the tolerance is judged against: final, else declared (never below the items read)."""
    if r.totals is not None:
        return r.totals[0]
    return None if r.declared is None else max(r.declared[0], r.cursor[2])


def _run_counts(r: _Run) -> RunCounts:
    items, children = r.totals if r.totals is not None else (r.cursor[2], r.cursor[1])
    if r.totals is None and r.declared is not None:
        items = max(r.declared[0], items)
        if r.declared[1] is not None:
            children = max(r.declared[1], children)
    return RunCounts(
        _counts(r.items, items, r.written[0]),
        _counts(r.execs, children, r.written[1]),
        r.reclaimed,
        r.duplicates,
        len(r.leases),
        r.totals is not None or r.declared is not None,
    )


def _counts(by_status: list[int], total: int, written: int) -> Counts:
    running, succeeded, failed, timed_out, aborted = by_status[1:]
    pending = total - running - succeeded - failed - timed_out - aborted
    return Counts(pending, running, succeeded, failed, timed_out, aborted, total, written)

"""Run state: the MaxConcurrency semaphore, the aggregator and the per-child records of a Map Run.

This package owns every piece of state a Map Run shares between its coordinator and its workers.
It does not read items, run workflows or talk to Celery. One :class:`RunStore` protocol, two
implementations with the same semantics:

* :class:`~dmap.store.redis.RedisRunStore` — Lua scripts on Redis (``dmap/lua/*.lua``); used by the
  celery backend and by anything that must survive a process crash.
* :class:`~dmap.store.memory.MemoryRunStore` — a lock and dicts; the embedded ``local`` backend.

Vocabulary. A Map Run dispatches *children* numbered 0, 1, 2, ... in reading order; a child is one
child workflow execution and covers ``items`` consecutive items starting at item index ``first``
(one item, or one ItemBatcher batch). Every dispatch attempt of a child gets a fresh *token*; only
the holder of the current token may start, renew or complete it (fencing), so a redelivered Celery
message or a zombie worker can never double-count. The first terminal result of a child wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Protocol

from .activity import RunActivity


class ChildStatus(IntEnum):
    """A child's state, stored in a few bits per child. PENDING = not started (may be queued)."""

    PENDING = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    TIMED_OUT = 4
    ABORTED = 5

    @property
    def terminal(self) -> bool:
        """True for SUCCEEDED, FAILED, TIMED_OUT and ABORTED."""
        return self >= ChildStatus.SUCCEEDED

    @property
    def aws_name(self) -> str:
        """The AWS execution status string (``TIMED_OUT``...)."""
        return self.name


class StartOutcome(str):
    """What :meth:`RunStore.start` tells a worker (a plain str subclass for cheap comparisons)."""


RUN = "run"
"""Start the child: the token is current and the child is pending."""
STALE = "stale"
"""Do nothing: the token was superseded, or the child already runs or finished elsewhere."""
ABORTED = "aborted"
"""Do nothing: the Map Run was aborted (the child is recorded ABORTED)."""


MAX_PERMITS = 10_000
"""The permits of a run whose ``max_concurrency`` is 0 (AWS's ceiling of parallel children)."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The settings of one Map Run that the store needs.

    Attributes:
        max_concurrency: Permits; 0 means 10,000 (AWS's ceiling).
        tolerated_failure_count: Items that may fail (FAILED or TIMED_OUT) before the run aborts.
        tolerated_failure_percentage: Percent of the total items that may fail, 0-100.
        max_attempts: Dispatch attempts of a child whose lease expires (worker died) before the
            child is failed with :data:`WORKER_LOST_ERROR` (poison items fail instead of looping).
    """

    max_concurrency: int = 0
    tolerated_failure_count: int = 0
    tolerated_failure_percentage: float = 0.0
    max_attempts: int = 3

    @property
    def permits(self) -> int:
        """The effective number of concurrent children."""
        return self.max_concurrency if self.max_concurrency > 0 else MAX_PERMITS


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A new child the coordinator wants to dispatch.

    Attributes:
        child: The child number (0, 1, 2, ... in reading order, without gaps).
        first: The item index of its first item.
        items: How many items it covers (1 without ItemBatcher).
        input: The child's execution input as compact JSON text.
        cursor: The reader position *after* this child; stored write-ahead when the child is granted,
            so a restarted coordinator resumes reading from there: an opaque reader position (JSON
            text: a byte offset, a row group, the last listed key...) or, for a source read by
            index, the index of the next item.
    """

    child: int
    first: int
    items: int
    input: str
    cursor: int | str


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted permit: dispatch ``child`` with ``token`` (``attempt`` starts at 1)."""

    child: int
    token: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Acquired:
    """The result of :meth:`RunStore.acquire`.

    Attributes:
        leases: Permits granted now, re-dispatches of reclaimed children first.
        granted_new: How many of the offered new ``ChildSpec`` were granted (a prefix of them).
        wait_ms: Milliseconds until the earliest lease expires (-1 when no lease is held): the
            longest the coordinator should block in :meth:`RunStore.wait`.
        reclaimed: Expired leases reclaimed by this call.
        held: Leases held after this call (-1 when the store does not say): with ``permits``, how
            much work is out, so the coordinator can pace its grants without another round trip.
        permits: The run's permits now (:data:`MAX_PERMITS` for MaxConcurrency 0; 0 when not said).
    """

    leases: list[Lease]
    granted_new: int
    wait_ms: int
    reclaimed: int
    held: int = -1
    permits: int = 0


@dataclass(frozen=True, slots=True)
class Started:
    """The result of :meth:`RunStore.start`: ``outcome`` is RUN, STALE or ABORTED."""

    outcome: str
    input: str | None = None
    attempt: int = 0
    first: int = 0
    items: int = 0


@dataclass(frozen=True, slots=True)
class Completed:
    """The result of :meth:`RunStore.complete`.

    Attributes:
        recorded: True if this call recorded the child's (first) terminal result.
        aborted: True if this call pushed the failures over the tolerance and set the abort flag.
    """

    recorded: bool
    aborted: bool


@dataclass(slots=True)
class Counts:
    """AWS's ``itemCounts`` / ``executionCounts`` members, for items or for children."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    timedOut: int = 0  # noqa: N815 - AWS's key
    aborted: int = 0
    total: int = 0
    resultsWritten: int = 0  # noqa: N815 - AWS's key

    def as_dict(self) -> dict[str, int]:
        """The counts under AWS's key names."""
        return {
            "pending": self.pending,
            "running": self.running,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "timedOut": self.timedOut,
            "aborted": self.aborted,
            "total": self.total,
            "resultsWritten": self.resultsWritten,
        }


@dataclass(slots=True)
class RunCounts:
    """Item and child (execution) counts of a Map Run, plus the store's own diagnostics.

    Attributes:
        items: Counts of items (a child counts for each item it covers).
        executions: Counts of children (child workflow executions).
        reclaimed: Expired leases reclaimed so far (workers that died or never started).
        duplicates: Completions that arrived after the child's first terminal result.
        leases: Permits held now (dispatched or running children).
        total_known: True once ``items.total`` is the number of items the source holds (counted ahead
            with :meth:`RunStore.declare_total`, or the reader reached its end); until then it is the
            number of items read so far, which a progress display must not show as the total.
    """

    items: Counts = field(default_factory=Counts)
    executions: Counts = field(default_factory=Counts)
    reclaimed: int = 0
    duplicates: int = 0
    leases: int = 0
    total_known: bool = False


WORKER_LOST_ERROR = "Runtime.ExitError"
"""The Error of a child the store fails because its workers kept dying (leases expired ``max_attempts`` times)."""


def record_error(record: str) -> str:
    """The ``Error`` name of a child record (JSON text); empty when absent or unreadable.

    Newlines are replaced by spaces so the name can key an index line.
    """
    try:
        value = json.loads(record).get("Error")
    except (ValueError, AttributeError):
        return ""
    return str(value).replace("\n", " ") if value else ""


def _items_label(first: int, items: int) -> str:
    return f"item {first}" if items == 1 else f"items {first}-{first + items - 1}"


def worker_lost_cause(child: int, first: int, items: int, attempts: int, worker: str) -> str:
    """The Cause of a child failed with :data:`WORKER_LOST_ERROR` (the Lua scripts write the same text)."""
    times = "time" if attempts == 1 else "times"
    return (
        f"The worker running child {child} ({_items_label(first, items)}) stopped responding {attempts} {times} "
        f"(lease expired); giving up. Last worker: {worker or 'none'}"
    )


def aborted_cause(reason: str, child: int, first: int, items: int, *, started: bool) -> str:
    """The Cause of a child the store records ABORTED: queued when the run aborted, or lost while it was."""
    if started:
        return (
            f"The Map Run was aborted ({reason}) and the worker running child {child} ({_items_label(first, items)}) "
            "stopped responding."
        )
    return f"The Map Run was aborted ({reason}) before child {child} ({_items_label(first, items)}) started."


def store_record(
    child: int,
    first: int,
    items: int,
    status: ChildStatus,
    child_input: str,
    error: str,
    cause: str,
    dates: tuple[float, float],
    attempts: int,
    worker: str,
) -> str:
    """A child record the store writes itself (worker lost, aborted), in the shape workers write.

    Args:
        child: The child number.
        first: Its first item index (``Index``).
        items: How many items it covers.
        status: Its terminal status.
        child_input: Its stored input, JSON text.
        error: The ``Error`` name (``""`` for ABORTED).
        cause: The ``Cause`` text.
        dates: Start and stop as epoch seconds.
        attempts: Dispatch attempts so far.
        worker: The last worker, ``host:pid`` (``""`` if it never started).

    Returns:
        Compact JSON text; the Lua scripts build the same fields in the same order.
    """
    start, stop = (datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z" for t in dates)
    record = {"Child": child, "Index": first, "Items": items, "Status": status.name, "Input": child_input}
    record |= {"Error": error, "Cause": cause, "StartDate": start, "StopDate": stop}
    record |= {"Attempts": attempts, "Worker": worker}
    return json.dumps(record, separators=(",", ":"))


class TotalMismatch(ValueError):
    """Raised when a Map Run's totals are declared again with other values, or below what was granted.

    A run's ``total`` is a fact about its item source: once declared it never changes, and it can
    never be smaller than the items already handed to children (that would make ``pending`` negative).
    A mismatch means the source changed under the run (an edited file, a different manifest).

    Args:
        run: The run id.
        declared: ``(items, children)`` now being declared.
        known: ``(items, children)`` declared before, or None.
        granted: ``(items, children)`` already granted (the cursor).
    """

    def __init__(
        self, run: str, declared: tuple[int, int], known: tuple[int, int] | None, granted: tuple[int, int]
    ) -> None:
        self.run, self.declared, self.known, self.granted = run, declared, known, granted
        if known is not None and known != declared:
            what = f"it held {known[0]} items ({known[1]} children) before"
        else:
            what = f"{granted[0]} items ({granted[1]} children) were already read from it"
        super().__init__(
            f"the item source of Map Run {run} now holds {declared[0]} items ({declared[1]} children), but {what}"
        )


def exceeds_tolerance(failed: int, total: int | None, count: int, percentage: float) -> bool:
    """AWS's rule: fail when failed items exceed the count, or exceed the percentage of the total.

    Both comparisons are strict. The percentage is judged only once the total is known: declared
    ahead of the reader by a count (:meth:`RunStore.declare_total`) or set when the reader is
    exhausted. ``total`` is None until then: dmap never judges a percentage against a partial
    total (the items read so far), which would fail runs AWS lets through.
    """
    if failed > count:
        return True
    return total is not None and total > 0 and failed * 100 > percentage * total


class RunStore(Protocol):
    """Everything the coordinator and the workers share about Map Runs. All methods are atomic.

    Implementations keep memory bounded by the in-flight window: a child's input is stored
    from ``acquire`` until it succeeds (kept for failed/aborted ones: redrive reuses them);
    result records stay until the coordinator takes them with :meth:`take_results`.
    """

    def create_run(self, run: str, config: RunConfig) -> bool:
        """Create the run's state if absent. Returns False when it already existed (a resume)."""
        ...

    def config(self, run: str) -> RunConfig | None:
        """The run's current configuration, or None if the run is unknown."""
        ...

    def update_config(
        self,
        run: str,
        *,
        max_concurrency: int | None = None,
        tolerated_failure_count: int | None = None,
        tolerated_failure_percentage: float | None = None,
    ) -> None:
        """Change limits of a live run. A lower concurrency limits new grants; running children finish.

        Tolerance changes are re-checked at once (may set the abort flag); the coordinator is
        woken so a larger concurrency takes effect at once.

        Raises:
            NotFoundError: The run does not exist.
        """
        ...

    def acquire(self, run: str, children: Sequence[ChildSpec], *, dispatch_lease_ms: int, stage: int = 0) -> Acquired:
        """Reclaim expired leases, then grant permits: reclaimed children first, then ``children`` in order.

        A reclaimed child whose attempts reached ``max_attempts`` is instead completed FAILED
        (error :data:`WORKER_LOST_ERROR`, cause "The worker running child 12 (items 1200-1299)
        stopped responding 3 times (lease expired); giving up. Last worker: host:pid") and
        counted, so an item that kills its workers cannot loop forever; in an aborted run a
        reclaimed child is completed ABORTED instead. Granting a new child stores its input and
        advances the run's cursor to ``spec.cursor`` in the same atomic step. A spec whose child
        is below the stored cursor was granted before (a replaying coordinator): it counts as
        granted but gets no lease. Nothing is granted once the run is aborted. ``stage``: with every
        permit out, a store whose workers take children themselves (the Redis one) keeps up to this
        many more children waiting, granted without a lease (they count in ``granted_new``); others
        ignore it.

        Raises:
            NotFoundError: The run does not exist.
        """
        ...

    def wait(self, run: str, timeout_ms: int) -> str | None:
        """Block until a permit may be free (a completion, a resize, an abort) or the timeout passes.

        Returns the wake token (``"1"``, ``"ABORT"``...) or None on timeout; ``timeout_ms <= 0``
        only takes a waiting token. At most one ``"1"`` waits at a time (it means "look again"),
        so the caller re-reads :meth:`aborted` and calls :meth:`acquire` after every wake-up.
        """
        ...

    def start(self, run: str, child: int, token: str, *, lease_ms: int, worker: str = "") -> Started:
        """A worker asks to run ``child`` with ``token``: RUN (with its input), STALE or ABORTED.

        RUN only if ``token`` is the child's current token, its lease is held and the child is
        PENDING: swaps the dispatch lease for a run lease of ``lease_ms``, marks the child RUNNING
        and remembers ``worker`` (``host:pid``) for failure records. ABORTED: the same check passed
        but the run is aborted, so the child is recorded ABORTED (Error ``""``, a Cause naming the
        reason) and its permit released. STALE otherwise; a current token of a child that already
        finished releases its leftover lease.
        """
        ...

    def renew(self, run: str, leases: Sequence[tuple[int, str]], *, lease_ms: int) -> list[bool]:
        """Extend run leases (heartbeat). False for a lease that was lost (reclaimed or superseded).

        A lost lease is never re-created (that would admit one child too many).
        """
        ...

    def complete(self, run: str, child: int, token: str, status: ChildStatus, record: str) -> Completed:
        """Record a child's terminal ``status`` and ``record`` (JSON text) if it is the first; release its permit.

        Counts move by the child's item count; the tolerance is checked and the abort flag set
        once. A second completion (duplicate delivery, zombie) changes nothing but the
        ``duplicates`` diagnostic counter. A completion with a superseded token is still
        recorded if the child is not terminal yet (the work was done), but releases no permit
        that is not its own. Failed, timed-out and aborted records are also kept for
        :meth:`failures` (indexed by their ``Error``) until a redrive.

        Raises:
            ValueError: ``status`` is not terminal.
        """
        ...

    def set_total(self, run: str, *, items: int, children: int) -> bool:
        """Declare the run's totals (the items its source holds); returns True if this aborts the run.

        Whoever learns the totals first declares them: an early streaming count, the reader at its
        end, or the coordinator counting the rest of the source when the run ends early. Declaring
        the same totals again changes nothing (and returns False).

        Raises:
            NotFoundError: The run does not exist.
            TotalMismatch: Other totals were declared before, or fewer than were already granted.
        """
        ...

    def totals(self, run: str) -> tuple[int, int] | None:
        """The declared ``(items, children)`` totals, or None while they are unknown (or the run is)."""
        ...

    def close_aborted(self, run: str) -> int:
        """End an aborted run: record every child still holding a lease ABORTED and drop every lease.

        The coordinator calls it when the grace it gives running children after an abort is over,
        so a finished Map Run never shows children RUNNING. A late completion of such a child is a
        duplicate (the first terminal result wins). Returns how many children were recorded; 0 and
        no change for a run that is not aborted (or unknown).
        """
        ...

    def declare_total(self, run: str, *, items: int, children: int | None = None) -> bool:
        """Declare how many items the source holds, learned ahead of the reader (a count); True if this aborts the run.

        Unlike :meth:`set_total` it does not say the reader is exhausted: it only lets the percentage
        tolerance be judged from now on (AWS's rule, failed items x 100 > percentage x total) and
        makes ``items.total`` (and ``executions.total`` when ``children`` is given) the real totals
        while the run goes on. The first declaration wins; a later one changes nothing (returns
        False), and totals from :meth:`set_total` take precedence over declared ones. A declared
        total below the items already read is raised to them (the source grew after the count).

        Raises:
            NotFoundError: The run does not exist.
        """
        ...

    def cursor(self, run: str) -> tuple[int | str, int, int]:
        """``(reader_cursor, next_child, next_item)`` as last stored by :meth:`acquire` (zeros if new).

        ``reader_cursor`` is the :attr:`ChildSpec.cursor` of the last child granted, as it was given.
        """
        ...

    def abort(self, run: str, reason: str) -> bool:
        """Set the abort flag with ``reason`` (``"tolerance"``, ``"stopped"``...) unless set; wakes waiters."""
        ...

    def aborted(self, run: str) -> str | None:
        """The abort reason, or None while the run is not aborted."""
        ...

    def counts(self, run: str) -> RunCounts:
        """The run's item and execution counts now."""
        ...

    def statuses(self, run: str, first_child: int, count: int) -> list[ChildStatus]:
        """The statuses of ``count`` children from ``first_child`` (PENDING beyond the known ones)."""
        ...

    def take_results(self, run: str, first_child: int, limit: int) -> list[str]:
        """Remove and return the result records of the *contiguous* finished children from ``first_child``.

        Stops at the first child without a terminal record or after ``limit`` records; bumps
        ``resultsWritten``. The coordinator streams these into the Map output or the ResultWriter.
        """
        ...

    def requeue_unstarted(self, run: str) -> int:
        """Expire the leases of granted children that never started (a restarted coordinator calls it).

        Their messages may never have been sent; the next :meth:`acquire` re-grants them with fresh
        tokens (without counting an attempt), so a message that was sent after all is ignored as stale.
        Returns how many children were requeued.
        """
        ...

    def read_results(self, run: str, first_child: int, limit: int) -> list[str]:
        """Like :meth:`take_results` but leaves the records in place and counts nothing.

        The inline Map output is read this way, so a coordinator that crashes while assembling it,
        or a redrive that needs the outputs of children that succeeded before, still finds them.
        """
        ...

    def record_marks(self, run: str, first_child: int, count: int) -> str:
        """Where each of ``count`` children from ``first_child`` stands for the result writer, in one round trip.

        One character per child: ``-`` not finished, ``r`` finished with its record in the store,
        ``w`` finished and its record taken (written to the result files, e.g. before a redrive).
        Status and record are read atomically, so a child finishing meanwhile is never ``w``; once
        ``w``, a child stays so until a redrive resets it. The result writer passes over runs of
        ``w`` without asking about each child.
        """
        ...

    def failures(
        self, run: str, *, error: str | None = None, after: int | None = None, limit: int | None = None
    ) -> Iterator[str]:
        """The records of failed, timed-out and aborted children (JSON text), by child number.

        ``error`` keeps only the records whose ``Error`` is exactly that name; ``after`` only those
        of children numbered above it (paging: the last child of the previous page); ``limit``
        stops after that many, reading no more than that from the store.
        """
        ...

    def failure_count(self, run: str, *, error: str | None = None) -> int:
        """How many records :meth:`failures` would yield (``error`` filters), without reading them."""
        ...

    def failure_errors(self, run: str, *, limit: int = 50) -> list[tuple[str, int]]:
        """The distinct ``Error`` names of the failure records, in name order, each with its count.

        Reads one index entry and one count per name (never the records); at most ``limit`` names.
        """
        ...

    def activity(self, run: str) -> RunActivity:
        """Items finished per time bucket and the histogram of child run times (empty for an unknown run)."""
        ...

    def child_input(self, run: str, child: int) -> str | None:
        """The stored input of a child (kept for children that did not succeed)."""
        ...

    def reset_for_redrive(self, run: str) -> int:
        """Make every FAILED, TIMED_OUT and ABORTED child PENDING again and re-queue it; clear the abort flag.

        Returns how many children were reset. Their stored inputs are reused; succeeded children are kept.
        Counts move back to pending (and out of ``resultsWritten`` for results already taken), the
        records leave the results and failures, and each reset child gets a fresh attempt budget.
        Meant for an idle run (no coordinator running).

        Raises:
            NotFoundError: The run does not exist.
        """
        ...

    def delete_run(self, run: str) -> None:
        """Remove all state of the run."""
        ...

    def expire_run(self, run: str, seconds: float) -> None:
        """Remove all state of the run ``seconds`` from now (retention of finished runs)."""
        ...


@dataclass(frozen=True, slots=True)
class Done:
    """A child's terminal result for :func:`step`: what :meth:`RunStore.complete` takes."""

    child: int
    token: str
    status: ChildStatus
    record: str


def step(
    store: RunStore,
    run: str,
    *,
    done: Done | None,
    start: tuple[int, str] | None,
    lease_ms: int,
    worker: str = "",
    renew: Sequence[tuple[int, str]] = (),
) -> tuple[Completed | None, Started | None, list[bool]]:
    """Renew, complete and start in one store call where the store can (one round trip per child of a pack).

    Exactly :meth:`RunStore.renew` of ``renew``, then :meth:`RunStore.complete` of ``done``, then
    :meth:`RunStore.start` of ``start``, in that order; a store with a ``step`` method of its own
    (:class:`~dmap.store.redis.RedisRunStore`: one Lua script) does them atomically.

    Returns:
        The completion (None without ``done``), the start (None without ``start``), one bool per renewal.
    """
    native = getattr(store, "step", None)
    if native is not None:
        result: tuple[Completed | None, Started | None, list[bool]] = native(
            run, done=done, start=start, lease_ms=lease_ms, worker=worker, renew=renew
        )
        return result
    renewed = store.renew(run, renew, lease_ms=lease_ms) if renew else []
    completed = None if done is None else store.complete(run, done.child, done.token, done.status, done.record)
    started = None if start is None else store.start(run, start[0], start[1], lease_ms=lease_ms, worker=worker)
    return completed, started, renewed


def release(store: RunStore, run: str, leases: Sequence[tuple[int, str]]) -> int:
    """Give back granted children a worker holds but has not started (a long pack-mate keeps it busy).

    Each one whose token is current and that is still PENDING loses its lease (the permit is free)
    and is re-granted first, with a fresh token and the same attempt number; its old token is stale.
    Stores without packs (the in-process one) have nothing to give back: 0.

    Returns:
        How many children were given back.
    """
    native = getattr(store, "release", None)
    return int(native(run, leases)) if native is not None and leases else 0

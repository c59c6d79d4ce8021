"""The control plane: describe, list, stop, update and redrive executions and Map Runs (DESIGN §2, §4).

Every verb takes ARNs as the journal writes them or as AWS and ``dmap serve`` show them (any region,
any account id: :func:`dmap.records.journal_arn`). Shapes follow AWS's Step Functions API
(DescribeExecution, ListMapRuns, DescribeMapRun, UpdateMapRun, RedriveExecution). Records come from
the backend's journal; live item counts of a RUNNING Map Run from its run store. ``list_failures``
is dmap's own addition: which items failed, why, and with what input.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, ExecutionNotRedrivable, InvalidStateError, NotFoundError
from .records import Execution, ExecutionStatus, MapRun, MapRunStatus, journal_arn, parse_arn, parse_map_run_arn
from .sources import ReadToTheEnd

_REDRIVABLE = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED)


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """One failed (or timed-out, or aborted) child of a Map Run.

    Attributes:
        index: The item index of its first item.
        items: How many items the child covered (a batch fails all its items).
        input: The child's input.
        error: The error name.
        cause: The cause.
        status: FAILED, TIMED_OUT or ABORTED.
        attempts: Dispatch attempts.
        worker: ``host:pid`` of the worker that ran it last.
        child: The child number.
    """

    index: int
    items: int
    input: Any
    error: str
    cause: str
    status: str
    attempts: int
    worker: str
    child: int


@dataclass(frozen=True, slots=True)
class MapRunProgress:
    """How far a Map Run has got: dmap's own view, beside AWS's DescribeMapRun shape (which has no ETA).

    Attributes:
        done: Items that reached a terminal status (succeeded, failed, timed out, aborted).
        total: The item total; while ``total_known`` is False, only the items read so far.
        total_known: True once ``total`` is the number of items the source holds (counted ahead of
            the reader, read to its end, or the run has ended).
        items_per_second: Items done per second since the Map Run started (None before the first).
        eta_seconds: Seconds until every item is done at that rate: None while the total is not
            known or nothing is done yet, 0 once the run has ended.
    """

    done: int
    total: int
    total_known: bool
    items_per_second: float | None
    eta_seconds: float | None


def map_run_progress(arn: str, *, backend: Any = None, now: float | None = None) -> MapRunProgress:
    """The progress of a Map Run and, while it runs, an estimate of the time left.

    Args:
        arn: The Map Run ARN.
        backend: The backend whose journal and run store hold it.
        now: Epoch seconds to measure from (default: the clock).

    Raises:
        NotFoundError: No Map Run has this ARN.
    """
    engine = _backend(backend)
    map_run = _map_run(engine, arn)
    running = map_run.status == MapRunStatus.RUNNING and engine.store.config(map_run.run_id) is not None
    if running:
        live = engine.store.counts(map_run.run_id)
        counts, known = live.items.as_dict(), live.total_known
    else:
        counts, known = map_run.item_counts, True
    done = sum(counts.get(k, 0) for k in ("succeeded", "failed", "timedOut", "aborted"))
    total = counts.get("total", 0)
    elapsed = _seconds_since(map_run.start_date, now)
    rate = done / elapsed if done and elapsed and elapsed > 0 else None
    if not running:
        eta: float | None = 0.0
    elif known and rate:
        eta = max(total - done, 0) / rate
    else:
        eta = None
    return MapRunProgress(done, total, known, rate, eta)


def _seconds_since(stamp: str, now: float | None) -> float | None:
    """Seconds from an AWS-style timestamp (``2026-12-06T12:00:00.000Z``) to ``now``; None if unreadable."""
    try:
        started = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return (time.time() if now is None else now) - started


def _backend(backend: Any) -> Any:
    from .backends import get_backend

    return get_backend(backend)


def describe_execution(arn: str, *, backend: Any = None) -> Execution:
    """An execution with its Map Runs (live counts for running ones).

    Raises:
        NotFoundError: No execution has this ARN (in this backend's journal).
    """
    arn = journal_arn(arn)
    engine = _backend(backend)
    execution = engine.journal.execution(arn)
    if execution is None:
        raise NotFoundError("execution", arn)
    execution.map_runs = [_live(engine, m) for m in execution.map_runs]
    return execution  # type: ignore[no-any-return]


def execution_definition(arn: str, *, backend: Any = None) -> dict[str, Any] | None:
    """The definition an execution ran, as the journal keeps it (None once it expired with the record)."""
    definition: dict[str, Any] | None = _backend(backend).journal.definition(journal_arn(arn))
    return definition


class ExecutionPage(list[Execution]):
    """One page of :func:`list_executions` (a list), with the ``next_token`` of the next page or None.

    ``scanned`` is how many journal records the page read (more than its length when filtered).
    """

    next_token: str | None = None
    scanned: int = 0


LIST_SCAN = 1000
"""Most journal records one filtered :func:`list_executions` call reads (then a short page carries a next_token)."""


def list_executions(
    *,
    backend: Any = None,
    limit: int = 100,
    next_token: str | None = None,
    status: str | None = None,
    state_machine: str | None = None,
    redriven: bool | None = None,
    scan: int = LIST_SCAN,
) -> ExecutionPage:
    """The most recent executions first: one page of at most ``limit``, read from the journal's index.

    Filters are applied to the journal's pages as they are read, and one call reads at most ``scan``
    records: a rare status never makes one call read everything. A filtered page may therefore hold
    fewer than ``limit`` executions, or none, and still carry a ``next_token`` (as AWS's
    ListExecutions may); follow it to go on where the page stopped, nothing skipped or repeated.

    Args:
        backend: ``"local"``, ``"celery"`` or a Backend instance.
        limit: At most this many.
        next_token: The ``next_token`` of the previous page (same filters): the executions that started
            before the last record it read.
        status: Only executions with this status (``RUNNING``, ``SUCCEEDED``, ``FAILED``...).
        state_machine: Only executions of this state machine: its name, or its ARN in any region and account.
        redriven: True: only executions redriven at least once; False: only those never redriven.
        scan: The most journal records a filtered call reads.

    Raises:
        ConfigurationError: ``next_token`` is not a token of :func:`list_executions`, an unknown
            ``status``, or a ``state_machine`` ARN that is not a state machine's.
    """
    after = _untoken("executions", next_token) if next_token is not None else None
    wanted = _execution_filter(status, state_machine, redriven)
    scan = max(1, scan)
    journal = _backend(backend).journal
    found: list[Execution] = []
    scanned = 0
    while True:
        # Ask for exactly what is still missing (and no more than the scan allows): every record read may
        # be kept, so the journal's own token of its page is where the next read goes on, nothing skipped.
        want = limit - len(found) if wanted is None else min(limit - len(found), scan - scanned)
        executions, after = journal.executions_page(limit=want, after=after)
        scanned += len(executions)
        found.extend(e for e in executions if wanted is None or wanted(e))
        if after is None or wanted is None or len(found) >= limit or scanned >= scan:
            break
    page = ExecutionPage(found)
    page.next_token = None if after is None else _token("executions", after)
    page.scanned = scanned
    return page


def has_executions_of(state_machine: str, *, backend: Any = None) -> bool:
    """Whether the journal keeps any execution of a state machine (its name, or its ARN in any region and account).

    The journal is not indexed by state machine: on celery this scans its index (stopping at the first
    match), so it is meant for a rare question (is this name known at all?), not for every request.
    """
    parsed = parse_arn(state_machine)
    name = parsed[1] if parsed is not None and parsed[0] == "stateMachine" else state_machine
    return bool(_backend(backend).journal.has_executions_of(name))


def _execution_filter(
    status: str | None, state_machine: str | None, redriven: bool | None
) -> Callable[[Execution], bool] | None:
    """The predicate of :func:`list_executions`' filters (None: no filter)."""
    if status is not None and status not in {s.value for s in ExecutionStatus}:
        names = ", ".join(s.value for s in ExecutionStatus)
        raise ConfigurationError(f"status must be one of {names}, not {status!r}")
    name = state_machine
    if state_machine is not None:
        parsed = parse_arn(state_machine)
        if parsed is not None:
            if parsed[0] != "stateMachine" or ":" in parsed[1]:
                raise ConfigurationError(
                    f"not a state machine ARN (versions and aliases are not kept): {state_machine}"
                )
            name = parsed[1]
    if status is None and name is None and redriven is None:
        return None

    def wanted(execution: Execution) -> bool:
        return (
            (status is None or str(execution.status) == status)
            and (name is None or execution.state_machine_name == name)
            and (redriven is None or (execution.redrive_count > 0) == redriven)
        )

    return wanted


def list_map_runs(execution_arn: str, *, backend: Any = None) -> list[MapRun]:
    """The Map Runs of an execution, in the order they started."""
    return describe_execution(execution_arn, backend=backend).map_runs


def describe_map_run(arn: str, *, backend: Any = None) -> MapRun:
    """A Map Run with its item and execution counts (live while RUNNING).

    Raises:
        NotFoundError: No Map Run has this ARN.
    """
    engine = _backend(backend)
    return _live(engine, _map_run(engine, arn))


def update_map_run(
    arn: str,
    *,
    max_concurrency: int | None = None,
    tolerated_failure_count: int | None = None,
    tolerated_failure_percentage: float | None = None,
    backend: Any = None,
    adaptive: bool | None = None,
    min_concurrency: int | None = None,
) -> MapRun:
    """Change a RUNNING Map Run's concurrency and failure tolerance; takes effect at once.

    A lower concurrency limits new starts (running children finish); a lower tolerance can fail
    the run immediately. ``adaptive`` switches adaptive concurrency on or off and
    ``min_concurrency`` sets its floor (dmap's own, DESIGN §13).

    Raises:
        ConfigurationError: A negative value or a percentage outside 0-100, or nothing to change.
        NotFoundError: Unknown ARN.
        InvalidStateError: The Map Run is not RUNNING.
    """
    flow_change = adaptive is not None or min_concurrency is not None
    if (
        max_concurrency is None
        and tolerated_failure_count is None
        and tolerated_failure_percentage is None
        and not flow_change
    ):
        raise ConfigurationError(
            "nothing to update: give a max concurrency, a tolerated failure count or percentage, "
            "adaptive on or off, or a minimum concurrency"
        )
    if max_concurrency is not None and max_concurrency < 0:
        raise ConfigurationError(f"maxConcurrency must be >= 0, got {max_concurrency}")
    if min_concurrency is not None and min_concurrency < 1:
        raise ConfigurationError(f"minConcurrency must be >= 1, got {min_concurrency}")
    if tolerated_failure_count is not None and tolerated_failure_count < 0:
        raise ConfigurationError(f"toleratedFailureCount must be >= 0, got {tolerated_failure_count}")
    if tolerated_failure_percentage is not None and not (
        math.isfinite(tolerated_failure_percentage) and 0 <= tolerated_failure_percentage <= 100
    ):
        raise ConfigurationError(
            f"toleratedFailurePercentage must be between 0 and 100, got {tolerated_failure_percentage}"
        )
    engine = _backend(backend)
    map_run = _map_run(engine, arn)
    if map_run.status != MapRunStatus.RUNNING or engine.store.config(map_run.run_id) is None:
        raise InvalidStateError(
            f"Map Run {arn} is {map_run.status}, not RUNNING: only a running Map Run can be updated"
        )
    if max_concurrency is not None or tolerated_failure_count is not None or tolerated_failure_percentage is not None:
        engine.store.update_config(
            map_run.run_id,
            max_concurrency=max_concurrency,
            tolerated_failure_count=tolerated_failure_count,
            tolerated_failure_percentage=tolerated_failure_percentage,
        )
    if flow_change:
        from .flow.run import update_flow

        update_flow(engine.store, map_run.run_id, adaptive=adaptive, min_concurrency=min_concurrency)
    for name, value in (
        ("max_concurrency", max_concurrency),
        ("tolerated_failure_count", tolerated_failure_count),
        ("tolerated_failure_percentage", tolerated_failure_percentage),
    ):
        if value is not None:
            setattr(map_run, name, value)
    engine.journal.save_map_run(map_run)
    return _live(engine, map_run)


STOP_ERROR_MAX, STOP_CAUSE_MAX = 256, 32768
"""AWS's limits of StopExecution's ``error`` and ``cause`` (characters)."""


def stop_execution(arn: str, *, error: str | None = None, cause: str | None = None, backend: Any = None) -> Execution:
    """Stop a RUNNING execution: queued children are skipped, running ones stop at their next state.

    The execution ends ABORTED with ``error`` and ``cause`` as its error and cause (AWS's
    StopExecution); without either it ends with ``States.Aborted`` / ``The execution was stopped``.
    Items that never ran stay PENDING; a redrive finishes the rest.

    Args:
        arn: The execution ARN (the journal's, or as AWS shows it: any region and account).
        error: The error code of the stop (at most 256 characters).
        cause: A more detailed explanation (at most 32768 characters).
        backend: ``"local"``, ``"celery"`` or a Backend instance.

    Raises:
        NotFoundError: Unknown ARN.
        InvalidStateError: The execution already ended.
        ConfigurationError: ``error`` or ``cause`` is longer than AWS allows.
    """
    if error is not None and len(error) > STOP_ERROR_MAX:
        raise ConfigurationError(f"error must be at most {STOP_ERROR_MAX} characters, got {len(error)}")
    if cause is not None and len(cause) > STOP_CAUSE_MAX:
        raise ConfigurationError(f"cause must be at most {STOP_CAUSE_MAX} characters, got {len(cause)}")
    arn = journal_arn(arn)
    engine = _backend(backend)
    execution = describe_execution(arn, backend=engine)
    if execution.status != ExecutionStatus.RUNNING:
        raise InvalidStateError(f"Execution {arn} is {execution.status}; only a RUNNING execution can be stopped")
    engine.journal.request_stop(arn, error=error, cause=cause)
    for map_run in execution.map_runs:
        if map_run.status == MapRunStatus.RUNNING:
            engine.store.abort(map_run.run_id, "stopped")
    return execution


def redrive_execution(
    arn: str,
    *,
    backend: Any = None,
    wait: bool = True,
    manifest: str | Path | Iterable[Any] | None = None,
    detach: bool = False,
) -> Execution:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from the state that did not finish.

    A Map Run there is redriven in place (AWS semantics): its FAILED, TIMED_OUT and ABORTED
    children run again with their original inputs, then its reader goes on from where it stopped
    to the end of the source, so the items that were never read run too; succeeded ones are kept,
    and its ``redriveCount`` goes up.

    The items of a ``manifest`` given to :func:`dmap.run` are read again: an S3 URI or a local path
    (stored absolute), or a list/tuple kept by this process. A source that cannot be read again (a
    consumed iterator, a deleted file, a list given in another process) must be given again.

    Args:
        arn: The execution ARN.
        backend: ``"local"``, ``"celery"`` or a Backend instance.
        wait: False returns the RUNNING execution at once.
        manifest: The same items the execution was started with (a URI, a path or an iterable);
            the reader skips those already read.
        detach: Hand the redrive, coordinator included, to the celery workers (as ``dmap run
            --detach`` does) and return the RUNNING execution: it outlives this process.

    Raises:
        NotFoundError: Unknown ARN.
        InvalidStateError: The execution SUCCEEDED or is still RUNNING.
        ConfigurationError: ``detach`` on a backend other than celery, or with items from an iterable.
        ExecutionNotRedrivable: Items that never ran come from a source that cannot be read again,
            and ``manifest`` was not given.
    """
    from . import identity

    arn = journal_arn(arn)
    engine = _backend(backend)
    # The claim first: two redrives (or a redrive and a same-name run) must not both pass the status check.
    owner = identity.claims(engine)
    status = describe_execution(arn, backend=engine).status
    if status not in _REDRIVABLE:
        raise InvalidStateError(f"Execution is {status} and cannot be redriven: {arn}")
    if not owner.claim(arn):
        raise InvalidStateError(f"Execution {arn} is being run by another process; wait for it to end")
    try:
        machine, execution, source, redriven = _prepare_redrive(engine, arn, manifest, detached=detach)
        if detach:
            from .detach import submit_redrive

            detached: Execution = submit_redrive(engine, machine, execution, source, redriven)
            return detached
        result: Execution = engine.run(machine, execution, manifest=source, wait=wait, redrive=redriven)
    except BaseException:
        owner.release(arn)  # nothing runs: let the next caller have it
        raise
    return result


def _prepare_redrive(
    engine: Any, arn: str, manifest: Any, *, detached: bool = False
) -> tuple[Any, Execution, Any, dict[str, MapRun]]:
    """Check that ``arn`` can be redriven and make its record RUNNING again: (machine, execution, source, map runs).

    ``detached``: a worker runs the whole redrive, so top-level Task handlers need not be registered here.
    """
    from .api import prepare
    from .interpreter.context import iso_now

    execution = describe_execution(arn, backend=engine)
    if execution.status not in _REDRIVABLE:
        raise InvalidStateError(f"Execution is {execution.status} and cannot be redriven: {arn}")
    definition = engine.journal.definition(arn)
    if definition is None:
        raise NotFoundError("definition of execution", arn)
    machine = prepare(definition, engine, detached=detached)
    redriven = {m.state_name: m for m in execution.map_runs if m.status != MapRunStatus.SUCCEEDED}
    source = _redrive_source(engine, machine, execution, redriven, manifest)
    engine.journal.clear_stop(arn)
    execution.redrive_count += 1
    execution.redrive_date = iso_now()
    execution.status, execution.error, execution.cause, execution.stop_date = ExecutionStatus.RUNNING, None, None, None
    return machine, execution, source, redriven


def _redrive_source(engine: Any, machine: Any, execution: Execution, redriven: dict[str, MapRun], given: Any) -> Any:
    """The manifest a redrive reads: the one given, else the original if it can be read again.

    Raises:
        ExecutionNotRedrivable: The original cannot be read again and items still need it.
    """
    from .asl import distributed_maps

    if given is not None:
        if isinstance(given, str | Path) and "://" not in str(given) and not Path(given).expanduser().is_file():
            raise ExecutionNotRedrivable(execution.execution_arn, f"the manifest file {given} (not found)")
        return given
    if execution.manifest is None and execution.manifest_items is None:
        return None  # the items come from the definition (state input, ItemReader): read them again
    if execution.manifest is not None:
        if "://" in execution.manifest or Path(execution.manifest).is_file():
            return execution.manifest
        missing = f"the manifest file {execution.manifest} (deleted or moved)"
    else:
        kept = engine.kept_manifest(execution.execution_arn)
        if kept is not None:
            return kept
        kind = execution.manifest_items
        why = "not held by this process" if kind in ("list", "tuple") else "consumed: an iterator is read once"
        missing = f"an in-process {kind} of items given to dmap.run ({why})"
    maps = distributed_maps(machine)
    state = maps[0][0] if maps else None
    map_run = redriven.get(state) if state is not None else None
    if map_run is not None and not _source_needed(engine, map_run):
        return ReadToTheEnd()  # every item was read: the unfinished ones run from their stored inputs
    if map_run is None and state is not None and any(m.state_name == state for m in execution.map_runs):
        return None  # its Map Run succeeded: the redrive restarts after it and never reads these items
    raise ExecutionNotRedrivable(execution.execution_arn, missing, state_name=state)


def _source_needed(engine: Any, map_run: MapRun) -> bool:
    """Whether a redrive of ``map_run`` reads its source: its state is gone, or items were never read."""
    run = map_run.run_id
    if engine.store.config(run) is None:
        return True  # a new Map Run starts (state expired, another process): every item is read again
    totals = engine.store.totals(run)
    return totals is None or engine.store.cursor(run)[2] < totals[0]


class HistoryPage(list[dict[str, Any]]):
    """One page of :func:`get_execution_history` (a list of AWS-shaped events), with ``next_token`` or None.

    ``dropped`` counts the events the per-execution bound did not keep (0 for almost every execution).
    """

    next_token: str | None = None
    dropped: int = 0


_EXECUTION_DATA = ("input", "inputDetails", "output", "outputDetails")


def get_execution_history(
    arn: str,
    *,
    reverse_order: bool = False,
    max_results: int = 100,
    next_token: str | None = None,
    include_execution_data: bool = True,
    backend: Any = None,
) -> HistoryPage:
    """The history events of an execution's top-level workflow, as AWS's GetExecutionHistory returns them.

    Each event is a dict with ``id``, ``previousEventId`` (AWS's causal link), ``type``, ``timestamp``
    (an aware ``datetime``, as boto3 gives it) and its ``<type>EventDetails``; inputs and outputs are
    JSON text. A Distributed Map shows as MapRunStarted/MapRunSucceeded (or MapRunFailed): its child
    executions record no history. Histories are kept as long as their execution record.

    Args:
        arn: The execution ARN.
        reverse_order: Newest event first.
        max_results: Events per page, 1-1000 (0 means 100, as AWS).
        next_token: The ``next_token`` of the previous page (same ``reverse_order``).
        include_execution_data: False leaves out inputs and outputs.
        backend: ``"local"``, ``"celery"`` or a Backend instance.

    Raises:
        NotFoundError: No execution has this ARN.
        ConfigurationError: ``max_results`` outside 0-1000, or a ``next_token`` that is not this call's.
    """
    if not 0 <= max_results <= 1000:
        raise ConfigurationError(f"maxResults must be between 0 and 1000, got {max_results}")
    size = max_results or 100
    start = 0
    if next_token is not None:
        reverse, start = _untoken("history", next_token)
        if bool(reverse) != reverse_order or not isinstance(start, int) or start < 0:
            raise ConfigurationError(f"not a valid next token: {next_token!r} (another order or position)")
    arn = journal_arn(arn)  # the ARN boto3 showed (any region and account) names the journal's execution
    engine = _backend(backend)
    if engine.journal.execution(arn) is None:
        raise NotFoundError("execution", arn)
    store = engine.history_store()
    events = store.events(arn, start, size + 1, reverse=reverse_order)
    page = HistoryPage(_history_event(e, include_execution_data) for e in events[:size])
    if len(events) > size:
        page.next_token = _token("history", [reverse_order, start + size])
    page.dropped = store.dropped(arn)
    return page


def _history_event(event: dict[str, Any], include_data: bool) -> dict[str, Any]:
    """A stored event for the caller: a datetime timestamp; without payloads unless ``include_data``."""
    from datetime import UTC

    shaped = dict(event)
    shaped["timestamp"] = datetime.fromtimestamp(float(event["timestamp"]), UTC)
    if not include_data:
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                shaped[key] = {k: v for k, v in details.items() if k not in _EXECUTION_DATA}
    return shaped


class FailurePage(Iterator[ItemFailure]):
    """One page of :func:`list_failures`: an iterator of :class:`ItemFailure`, then its ``next_token``.

    ``next_token`` is None until the page is read to its end; then it is an opaque token for the
    next page (``list_failures(..., next_token=page.next_token)``), or None when there is none.
    """

    def __init__(self, records: Iterator[str], limit: int | None) -> None:
        self._records, self._limit, self._count = records, limit, 0
        self._last = 0
        self.next_token: str | None = None

    def __iter__(self) -> FailurePage:
        return self

    def __next__(self) -> ItemFailure:
        if self._limit is not None and self._count >= self._limit:
            # The store was asked for one more than the page: if it has it, a next page follows our last child.
            if next(self._records, None) is not None:
                self.next_token = _token("failures", self._last)
            self._limit = self._count = 0  # answered: the page stays ended
            raise StopIteration
        text = next(self._records, None)
        if text is None:
            raise StopIteration
        failure = _failure(text)
        self._count += 1
        self._last = failure.child
        return failure


def list_failures(
    map_run_arn: str,
    *,
    error: str | None = None,
    limit: int | None = None,
    backend: Any = None,
    next_token: str | None = None,
) -> FailurePage:
    """Which children of a Map Run failed, timed out or were aborted, with their input, error and cause.

    One page is read from the store (the failure index by child number, or by error name), not
    the whole index: ``limit`` records, and one more to know whether another page follows.

    Args:
        map_run_arn: The Map Run.
        error: Only failures with this error name.
        limit: At most this many (a page).
        backend: ``"local"``, ``"celery"`` or a Backend instance.
        next_token: The ``next_token`` of the previous page: go on after it.

    Returns:
        A :class:`FailurePage`: iterate it, then read its ``next_token``.

    Raises:
        NotFoundError: No Map Run has this ARN.
        ConfigurationError: ``next_token`` is not a token of :func:`list_failures`.
    """
    engine = _backend(backend)
    map_run = _map_run(engine, map_run_arn)
    after = int(_untoken("failures", next_token)) if next_token is not None else None
    wanted = None if limit is None else limit + 1
    return FailurePage(engine.store.failures(map_run.run_id, error=error, after=after, limit=wanted), limit)


def _failure(text: str) -> ItemFailure:
    record = json.loads(text)
    raw = record.get("Input")
    return ItemFailure(
        index=int(record.get("Index", 0)),
        items=int(record.get("Items", 1)),
        input=json.loads(raw) if isinstance(raw, str) else raw,
        error=str(record.get("Error", "")),
        cause=str(record.get("Cause", "")),
        status=str(record.get("Status", "FAILED")),
        attempts=int(record.get("Attempts", 0)),
        worker=str(record.get("Worker", "")),
        child=int(record.get("Child", 0)),
    )


def _token(kind: str, value: Any) -> str:
    """An opaque paging token of ``kind`` carrying ``value`` (JSON)."""
    return base64.urlsafe_b64encode(json.dumps([kind, value]).encode()).decode().rstrip("=")


def _untoken(kind: str, token: str) -> Any:
    """The value of a paging token made by :func:`_token` for ``kind``.

    Raises:
        ConfigurationError: It is not such a token.
    """
    try:
        found, value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"not a valid next token: {token!r}") from exc
    if found != kind:
        raise ConfigurationError(f"not a valid next token: {token!r} (a token of {found}, not of {kind})")
    return value


def child_statuses(
    map_run_arn: str, *, start: int = 0, count: int = 1000, backend: Any = None
) -> tuple[list[tuple[int, str]], int | None]:
    """The statuses of the child executions ``start`` .. ``start + count - 1`` of a Map Run, as the run store has them.

    One ranged read of the store's packed per-child statuses (a nibble a child), however many
    children the run has. Children not started yet are ``PENDING``; once the run's state expired
    (``DMAP_RETENTION_DAYS``) or in another process of the local backend nothing is known.

    Returns:
        ``([(child number, AWS status), ...], the next start or None after the last child)``.

    Raises:
        NotFoundError: No Map Run has this ARN.
    """
    engine = _backend(backend)
    run = _map_run(engine, map_run_arn).run_id
    if engine.store.config(run) is None:
        return [], None
    children = int(engine.store.cursor(run)[1])  # every child read so far (all of them once the run ended)
    count = max(0, min(count, children - start))
    statuses = engine.store.statuses(run, start, count) if count else []
    end = start + count
    return [(start + i, s.aws_name) for i, s in enumerate(statuses)], (end if end < children else None)


def count_failures(map_run_arn: str, *, error: str | None = None, backend: Any = None) -> int:
    """How many records :func:`list_failures` would yield without ``limit``, counted by the store (not read).

    Raises:
        NotFoundError: No Map Run has this ARN.
    """
    engine = _backend(backend)
    return int(engine.store.failure_count(_map_run(engine, map_run_arn).run_id, error=error))


def _map_run(engine: Any, arn: str) -> MapRun:
    """The journal's record of a Map Run named by an ARN in any region and account (every Map Run verb's way in)."""
    arn = journal_arn(arn)
    if parse_map_run_arn(arn) is None:
        raise NotFoundError("map run (not a Map Run ARN)", arn)
    map_run = engine.journal.map_run(arn)
    if map_run is None:
        raise NotFoundError("map run", arn)
    return map_run  # type: ignore[no-any-return]


def _live(engine: Any, map_run: MapRun) -> MapRun:
    """Fill in the live counts and limits of a RUNNING Map Run from its run store."""
    if map_run.status != MapRunStatus.RUNNING:
        return map_run
    config = engine.store.config(map_run.run_id)
    if config is None:
        return map_run
    counts = engine.store.counts(map_run.run_id)
    map_run.item_counts = counts.items.as_dict()
    map_run.execution_counts = counts.executions.as_dict()
    # The tolerances stay as the record says (AWS's 0 for an unset one); the store holds effective values.
    map_run.max_concurrency = config.max_concurrency
    from .flow.run import flow_state

    map_run.flow = flow_state(engine.store, map_run.run_id, config.max_concurrency)
    return map_run

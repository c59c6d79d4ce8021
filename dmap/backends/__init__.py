"""Backends: where children run. One interface, two implementations, one coordinator code path.

* ``local`` (:class:`~dmap.backends.local.LocalBackend`): the embedded default — threads in this
  process and an in-process run store; no servers.
* ``celery`` (:class:`~dmap.backends.celery.CeleryBackend`): children are Celery tasks on workers
  anywhere; the run store and the broker are Redis.

Both run the top level of an execution with the interpreter in the caller and hand every
DISTRIBUTED Map to the same :class:`~dmap.coordinator.Coordinator`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from .. import metrics, telemetry
from ..api import execute_in_process
from ..asl import distributed_maps
from ..asl.model import MapState, StateMachine
from ..child import ChildPlan
from ..config import Settings, get_settings, redact
from ..coordinator import MapRunner
from ..errors import BackendError, ConfigurationError, ErrorName
from ..history import HistoryStore
from ..interpreter import Runtime
from ..interpreter.context import iso_now
from ..interpreter.history import History
from ..journal import Journal
from ..outage import is_outage
from ..records import Execution, ExecutionStatus, MapRun
from ..sources import ReadToTheEnd
from ..storage import Storage, get_storage
from ..store import Lease, RunStore

logger = logging.getLogger(__name__)

_in_flight: dict[str, threading.Thread] = {}  # execution ARN -> the thread running it in this process
_in_flight_lock = threading.Lock()


def settle(execution_arn: str, timeout: float = 30.0) -> bool:
    """Wait until this process's background run of ``execution_arn`` has saved its final record.

    An execution started with ``wait=False`` shows its terminal status on the returned object a
    moment before its thread has written it to the journal (and released its claim); a process that
    exits in between leaves the execution RUNNING in the journal. False if it did not settle within
    ``timeout`` seconds; True at once when no thread of this process runs it.
    """
    with _in_flight_lock:
        thread = _in_flight.get(execution_arn)
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()


class Backend:
    """The base of every backend: runs executions; subclasses say where children go.

    Subclasses set :attr:`store` and implement :meth:`publish_plan`, :meth:`dispatch` (the
    :class:`~dmap.coordinator.Engine` protocol). Class-level convenience variants are one-liners.
    """

    name = "base"
    store: RunStore
    journal: Journal

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._storage: Storage | None = None
        # In-process list/tuple manifests by execution ARN, by reference: a redrive in this process reads them again.
        self._kept_manifests: dict[str, list[Any] | tuple[Any, ...]] = {}
        self._history_store: HistoryStore | None = None

    def kept_manifest(self, execution_arn: str) -> list[Any] | tuple[Any, ...] | None:
        """The in-process list or tuple an execution of this process was started with, if it is kept."""
        return self._kept_manifests.get(execution_arn)

    def storage(self) -> Storage:
        """Object storage for readers and writers (``DMAP_S3_ROOT`` or S3), created once."""
        if self._storage is None:
            self._storage = get_storage(self.settings.s3_root)
        return self._storage

    def publish_plan(self, plan: ChildPlan) -> None:
        """Make a Map Run's plan available to the workers."""
        raise NotImplementedError

    def dispatch(self, plan: ChildPlan, leases: Sequence[Lease]) -> None:
        """Send granted children to the workers."""
        raise NotImplementedError

    def run(
        self,
        machine: StateMachine,
        execution: Execution,
        *,
        manifest: Any = None,
        max_concurrency: int | None = None,
        wait: bool = True,
        redrive: dict[str, MapRun] | None = None,
    ) -> Execution:
        """Run an execution: top-level states here, DISTRIBUTED Maps through the coordinator.

        With ``wait=False`` the execution runs in a background thread of this process and the
        RUNNING record is returned at once. ``redrive`` maps Map state names to the Map Runs a
        redrive continues in place.
        """
        maps = distributed_maps(machine)
        arn = execution.execution_arn
        self._warm_storage(manifest, maps)
        if isinstance(manifest, str | Path):
            manifest = _absolute(manifest)
            execution.manifest = manifest
        elif manifest is not None and not isinstance(manifest, ReadToTheEnd):
            execution.manifest_items = type(manifest).__name__
            if isinstance(manifest, list | tuple):
                self._kept_manifests[arn] = manifest
        runner = MapRunner(
            self,
            execution,
            manifest=manifest,
            manifest_state=maps[0][0] if maps else None,
            max_concurrency=max_concurrency,
            redrive=redrive,
        )
        if manifest is not None and not maps:
            raise ConfigurationError("--manifest needs a definition with a DISTRIBUTED Map state")
        from ..callbacks import tokens_for
        from ..nested import NestedExecutions

        runtime = Runtime(
            payload_limit=self.settings.payload_limit,
            distributed_map=runner,
            should_abort=lambda: self.journal.stop_requested(arn),
            stop_reason=lambda: self.journal.stop_reason(arn),
            history=self._history(execution, redrive is not None),
            callbacks=tokens_for(self),
            executions=NestedExecutions(self),
        )
        self.journal.save_execution(execution, definition=_definition_json(machine))
        if wait:
            return self._execute_claimed(machine, execution, runtime, raise_infrastructure=True)

        def background() -> None:
            try:
                self._execute_claimed(machine, execution, runtime)
            finally:
                with _in_flight_lock:
                    if _in_flight.get(arn) is thread:
                        del _in_flight[arn]

        thread = threading.Thread(target=background, name="dmap-execution", daemon=True)
        with _in_flight_lock:
            _in_flight[arn] = thread
        thread.start()
        return execution

    def _warm_storage(self, manifest: Any, maps: list[tuple[str, MapState]]) -> None:
        """Start making the object-storage client while the execution starts, when a Map Run will need it.

        Its S3 client costs a few hundred ms (boto3's import and endpoint rules); made in the background
        it overlaps the journal's and the run store's round trips before the first grant.
        """
        needs = (isinstance(manifest, str) and manifest.startswith("s3://")) or any(
            state.item_reader is not None or state.result_writer is not None for _, state in maps
        )
        warm = getattr(self.storage(), "warm", None) if needs else None
        if warm is not None:
            warm()

    def history_store(self) -> HistoryStore:
        """Where this backend keeps execution histories: beside its journal (Redis or this process)."""
        if self._history_store is None:
            from ..history import MemoryHistoryStore, RedisHistoryStore
            from ..journal import RedisJournal

            bounds = {"max_events": self.settings.history_max_events, "max_bytes": self.settings.history_max_bytes}
            journal = self.journal
            if isinstance(journal, RedisJournal):
                self._history_store = RedisHistoryStore(journal.client, journal.prefix, journal.retention, **bounds)
            else:
                self._history_store = MemoryHistoryStore(**bounds)
        return self._history_store

    def _history(self, execution: Execution, redrive: bool) -> History:
        """The recorder of an execution's top-level history; a redrive or resume goes on from the stored events."""
        from ..interpreter.history import Chain

        recorder, next_id = self.history_store().recorder(
            execution.execution_arn, fresh=execution.resume_state is None and not redrive
        )
        history = History(recorder, first_id=next_id)
        if redrive and next_id > 1:
            details = {"redriveCount": execution.redrive_count}
            history.add(Chain(next_id - 1), "ExecutionRedriven", "executionRedrivenEventDetails", details)
        return history

    def _execute_claimed(
        self, machine: StateMachine, execution: Execution, runtime: Runtime, *, raise_infrastructure: bool = False
    ) -> Execution:
        """:meth:`_execute` holding the execution's claim: a second caller of its name waits, it does not run it too."""
        from ..identity import running

        with running(self, execution.execution_arn):  # released after the final record is saved
            metrics.execution_started(self, execution)
            try:
                with telemetry.execution_span(execution):
                    return self._execute(machine, execution, runtime, raise_infrastructure=raise_infrastructure)
            finally:
                metrics.execution_finished(self, execution)

    def _execute(
        self, machine: StateMachine, execution: Execution, runtime: Runtime, *, raise_infrastructure: bool = False
    ) -> Execution:
        """Run an execution to its end. A bug ends it FAILED; a lost Redis or broker hands it over.

        A Redis (or broker) outage longer than ``DMAP_REDIS_OUTAGE_SECONDS`` leaves the execution
        RUNNING with nothing more recorded: this process drops its claim (or the claim expires), so
        the execution resumes where it stopped — a detached one by a worker's reaper, any other when
        it is started again under its name. A coordinator that lost its claim to another process
        (:class:`~dmap.errors.HandedOver`) records nothing either: the new owner does.
        With ``raise_infrastructure`` (a caller waiting for the result) the outage is raised as
        :class:`~dmap.errors.BackendError`, as DESIGN §2 promises for infrastructure faults.
        """
        handed_over = False
        try:
            execute_in_process(machine, execution, runtime)
            if execution.status == ExecutionStatus.ABORTED:  # StopExecution's error and cause, as AWS records them
                reason = self.journal.stop_reason(execution.execution_arn)
                if reason is not None:
                    execution.error, execution.cause = reason
            return execution
        except Exception as exc:
            if is_outage(exc):
                handed_over = True
                execution.status = ExecutionStatus.RUNNING  # as stored: the next coordinator goes on from there
                how = "a worker's reaper resumes it if detached, else run it again under its name"
                what = f"{type(exc).__name__}: {redact(str(exc))}"
                logger.error("execution %s handed over, still RUNNING (%s): %s", execution.execution_arn, how, what)
                if raise_infrastructure:
                    raise BackendError(
                        f"Redis or the broker failed during {execution.execution_arn}, which stays RUNNING "
                        f"({how}): {what}"
                    ) from None
                return execution
            # A bug must end the execution: RUNNING forever helps nobody.
            logger.error("execution %s ended by %s: %s", execution.execution_arn, type(exc).__name__, redact(str(exc)))
            execution.status = ExecutionStatus.FAILED
            execution.error = ErrorName.RUNTIME.value
            execution.cause = f"internal error: {type(exc).__name__}: {redact(str(exc))}"
            execution.stop_date = iso_now()
            return execution
        finally:
            if execution.status == ExecutionStatus.SUCCEEDED:  # never redriven: its items need not be kept
                self._kept_manifests.pop(execution.execution_arn, None)
            if not handed_over:
                try:
                    self.journal.save_execution(execution)
                    if execution.status != ExecutionStatus.RUNNING:
                        from ..nested import execution_ended

                        execution_ended(self, execution)  # a .sync parent waiting on it (never raises)
                except redis.RedisError as exc:
                    logger.error("could not record execution %s: %s", execution.execution_arn, redact(str(exc)))
                    if raise_infrastructure and sys.exc_info()[0] is None:
                        raise BackendError(
                            f"cannot record execution {execution.execution_arn} in Redis: {redact(str(exc))}"
                        ) from None

    def close(self) -> None:
        """Release resources (thread pools, connections)."""


def get_backend(backend: Any = None, settings: Settings | None = None) -> Backend:
    """A backend by name (``"local"``, ``"celery"``), an instance (returned as is), or None for ``DMAP_BACKEND``."""
    if isinstance(backend, Backend):
        return backend
    settings = settings or get_settings()
    name = backend or settings.backend
    if name == "local":
        from .local import LocalBackend

        return LocalBackend.shared(settings)
    if name == "celery":
        from .celery import CeleryBackend

        return CeleryBackend(settings)
    raise ConfigurationError(f"unknown backend {name!r}: use 'local' or 'celery'")


def _absolute(manifest: str | Path) -> str:
    """A manifest as stored with the execution: URIs as given, local paths absolute (a redrive may run elsewhere)."""
    text = str(manifest)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def _definition_json(machine: StateMachine) -> dict[str, Any]:
    """A definition as JSON data that loads back into the same machine (kept for redrive)."""
    return machine.model_dump(by_alias=True, exclude_unset=True, mode="json")

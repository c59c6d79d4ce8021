"""The coordinator: one Map Run from its first item to its result.

read -> ItemSelector -> ItemBatcher -> acquire permits -> dispatch -> collect -> tolerance -> write.

It owns the lifecycle of a Map Run and nothing else: items come from ``sources``/``readers``,
permits and counts from the run store, children run wherever the backend sends them, results go
to the inline output or the ResultWriter. It holds a bounded window of pending children in memory
(never the manifest), and its only durable state is in the run store, so a coordinator killed at
any moment and started again with the same execution name resumes: the cursor was advanced in the
same atomic step that granted the permits, expired leases are reclaimed and re-dispatched, and
finished children are never run again.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import redis

from . import batching, counting, identity, metrics, sources, telemetry
from .asl.model import MapState, TaskState, WaitState, iter_states
from .child import ChildPlan
from .config import Settings
from .errors import ConfigurationError, ErrorName, StatesError, StorageError
from .flow.options import FlowOptions
from .flow.run import RunFlow, flow_state
from .interpreter import dataflow, jsonata_flow, mapfields
from .interpreter.context import MapInvocation, iso_now, state_machine_arn
from .interpreter.executor import Aborted
from .journal import Journal
from .outage import RestartWatch, is_outage
from .pacing import Pacer
from .readers import ItemStream, Mark, encode_position
from .records import Execution, MapRun, MapRunStatus, map_run_arn, new_run_id
from .results import ExportedResults, InlineResults, pending_children
from .storage import Storage
from .store import Acquired, ChildSpec, ChildStatus, Counts, Lease, RunConfig, RunStore, TotalMismatch
from .store.workers import ListenerWatch
from .writers import RecordContext, ResultWriter, WriterSpec

logger = logging.getLogger(__name__)

WINDOW = 256
"""Children built ahead of their permits (the coordinator's whole item memory)."""
WINDOW_BYTES = 4 * 1024 * 1024
"""...and at most this much of their input text (characters), but always one: 256 children of 256 KiB
batches were 64 MB held before the first grant, read before the first dispatch (16 s for 10M items)."""
FIRST_FILL_BYTES = 256 * 1024
"""The window's input before the first grant (but always one child): a full window of 1,000-item batches
read 70,000 items first, and the first child of a 1,000,000-item S3 manifest went out after 0.65-0.77 s."""
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"
WORKERLESS_SECONDS = 15.0
"""A run with children waiting and no live worker on its queue this long says so (then every minute)."""
STAGE = 128
"""Children a celery run keeps granted without a lease once every permit is out (workers take them as they
free permits, in the script that completes their last child: :meth:`~dmap.store.redis.RedisRunStore.step_take`)."""
NEVER = 2**53
"""A failure count no run reaches: the effective ToleratedFailureCount when only a percentage is set."""


class Engine(Protocol):
    """What the coordinator needs from a backend."""

    store: RunStore
    settings: Settings
    journal: Journal

    def publish_plan(self, plan: ChildPlan) -> None:
        """Make the plan of a Map Run available to every worker."""
        ...

    def dispatch(self, plan: ChildPlan, leases: Sequence[Lease]) -> None:
        """Send granted children to workers."""
        ...

    def storage(self) -> Storage:
        """Object storage for readers and writers."""
        ...


class MapRunner:
    """The ``Runtime.distributed_map`` hook of one execution: a new Coordinator per Map Run."""

    def __init__(
        self,
        engine: Engine,
        execution: Execution,
        *,
        manifest: str | Path | Iterable[Any] | None = None,
        manifest_state: str | None = None,
        max_concurrency: int | None = None,
        redrive: dict[str, MapRun] | None = None,
    ) -> None:
        self.engine, self.execution = engine, execution
        self.manifest, self.manifest_state = manifest, manifest_state
        self.max_concurrency = max_concurrency
        self._attempts: dict[str, int] = {}
        self._redrive = dict(redrive or {})

    def __call__(self, invocation: MapInvocation) -> Any:
        attempt = self._attempts.get(invocation.state_name, 0)
        self._attempts[invocation.state_name] = attempt + 1
        manifest = self.manifest if invocation.state_name == self.manifest_state else None
        coordinator = Coordinator(
            self.engine,
            self.execution,
            invocation,
            attempt=attempt,
            manifest=manifest,
            max_concurrency=self.max_concurrency,
            redrive_of=self._redrive.pop(invocation.state_name, None),
        )
        with telemetry.map_run_span(coordinator.map_run, invocation.state_name):
            return coordinator.run()


class Coordinator:
    """Runs one Map Run. Use :meth:`run`; it returns the Map's result or raises StatesError/Aborted."""

    def __init__(
        self,
        engine: Engine,
        execution: Execution,
        invocation: MapInvocation,
        *,
        attempt: int = 0,
        manifest: str | Path | Iterable[Any] | None = None,
        max_concurrency: int | None = None,
        redrive_of: MapRun | None = None,
    ) -> None:
        self.engine, self.store, self.settings = engine, engine.store, engine.settings
        self.execution, self.inv, self.state = execution, invocation, invocation.state
        self.manifest = manifest
        self._override = max_concurrency
        self.redrive = redrive_of is not None and self.store.config(redrive_of.run_id) is not None
        if redrive_of is not None and self.redrive:
            self.run_id, self.label, self.map_run = redrive_of.run_id, redrive_of.label, redrive_of
            self.map_run.redrive_count += 1
            self.map_run.status, self.map_run.stop_date = MapRunStatus.RUNNING, None
            self.map_run.error = self.map_run.cause = None
        else:
            # A redrive whose run state is gone (retention, a restarted local process) starts a new Map Run.
            seed = f"{attempt}" if redrive_of is None else f"{attempt}/redrive-{execution.redrive_count}"
            self.run_id = new_run_id(execution.execution_arn, invocation.state_name, seed)
            self.label = self.state.label or str(uuid.uuid5(uuid.NAMESPACE_URL, self.run_id))
            arn = map_run_arn(execution.state_machine_name, self.label, self.run_id)
            # A restarted coordinator finds its Map Run's record: start date, result files written so far.
            self.map_run = engine.journal.map_run(arn) or MapRun(
                map_run_arn=arn,
                execution_arn=execution.execution_arn,
                state_name=invocation.state_name,
                label=self.label,
                start_date=iso_now(),
            )
            self.map_run.status, self.map_run.stop_date = MapRunStatus.RUNNING, None
        self._oversize: set[int] = set()
        self.backend_name = str(getattr(engine, "name", ""))
        # A one-shot iterator (a generator...) cannot be read again from the cursor: what the reader
        # pulled is all there is, so the rest is counted from the live reader, never re-opened.
        self._one_shot = isinstance(manifest, Iterator)
        self._live: Iterator[ChildSpec] | None = None
        self._read_end: tuple[int, int] | None = None  # (next_child, next_item) after the last child read

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self) -> Any:
        """Run the Map Run to its end and return the Map state's result."""
        data, context, variables = self.inv.input, self.inv.context, self.inv.variables
        config = self._config()
        if self.inv.language == "JSONata":
            self.state = self._evaluated(self.state)
        state = self.state
        self.batch = batching.resolve(state, data, context, variables, self.settings.payload_limit)
        self.plan = self._plan()
        self.engine.publish_plan(self.plan)
        if not self.store.create_run(self.run_id, config):
            config = self.store.config(self.run_id) or config
            requeued = self.store.requeue_unstarted(self.run_id)  # their messages may have died with us
            logger.info("resuming map run %s (%d children sent again)", self.map_run.map_run_arn, requeued)
        if self.redrive:
            reset = self.store.reset_for_redrive(self.run_id)
            logger.info("redriving map run %s: %d children to run again", self.map_run.map_run_arn, reset)
        self.flow = RunFlow(self.store, self.run_id, FlowOptions.of(self.execution.flow))
        self.flow.start()  # adaptive concurrency, when asked: on the run's own permits
        metrics.track_map_run(
            self.store, self.run_id, state_machine=self.execution.state_machine_name, label=self.label
        )
        self.map_run.max_concurrency = config.max_concurrency
        others = [m for m in self.execution.map_runs if m.map_run_arn != self.map_run.map_run_arn]
        self.execution.map_runs = [*others, self.map_run]
        self.engine.journal.save_map_run(self.map_run)
        self.engine.journal.save_execution(self.execution)
        if self.inv.started is not None:  # the MapRunStarted event of the parent's history
            self.inv.started(self.map_run.map_run_arn)
        failure: StatesError | None = None
        try:
            self.sink = self._sink()
        except StatesError as exc:  # e.g. a ResultWriter bucket that cannot be written: nothing runs
            self.map_run.status, self.map_run.error, self.map_run.cause = MapRunStatus.FAILED, exc.name, exc.cause
            self.map_run.stop_date = iso_now()
            self.engine.journal.save_map_run(self.map_run)
            raise
        try:
            self._dispatch_all()
        except StatesError as exc:
            failure = exc
            self.store.abort(self.run_id, "failed")
        except TotalMismatch as exc:  # the source changed under the run: its counts cannot be trusted
            failure = StatesError(ErrorName.ITEM_READER_FAILED, str(exc))
            self.store.abort(self.run_id, "failed")
        except (ConfigurationError, StorageError) as exc:  # the item source itself is unusable ('s3://', ...)
            failure = StatesError(ErrorName.ITEM_READER_FAILED, str(exc))
            self.store.abort(self.run_id, "failed")
        except Exception as exc:
            if _infrastructure(exc):
                metrics.forget_map_run(self.run_id)  # reported by whoever resumes it, not by this process
                raise  # Redis is gone: leave the run as it is, for a resume to finish it
            # A bug must still close the Map Run honestly: FAILED with what happened, counts that add up.
            logger.exception("map run %s failed unexpectedly", self.map_run.map_run_arn)
            failure = StatesError(ErrorName.RUNTIME, f"internal error: {type(exc).__name__}: {exc}")
            self.store.abort(self.run_id, "failed")
        self._settle()
        self._learn_total()
        try:
            return self._finish(failure)
        finally:
            self._keep_updated_limits()
            self.map_run.flow = flow_state(self.store, self.run_id, self.map_run.max_concurrency)
            self.engine.journal.save_map_run(self.map_run)
            metrics.finish_map_run(self.run_id)

    def _config(self) -> RunConfig:
        """The run's limits. AWS applies only the tolerances a definition sets; with neither set, any failure fails.

        The store gets effective values (an unset threshold becomes one that can never be exceeded);
        the Map Run record shows AWS's (0 for an unset one).
        """
        state, data, context, variables = self.state, self.inv.input, self.inv.context, self.inv.variables
        has_count = state.tolerated_failure_count is not None or state.tolerated_failure_count_path is not None
        has_percentage = (
            state.tolerated_failure_percentage is not None or state.tolerated_failure_percentage_path is not None
        )
        fields = jsonata_flow if self.inv.language == "JSONata" else mapfields
        count = fields.tolerated_failure_count(state, data, context, variables)
        percentage = fields.tolerated_failure_percentage(state, data, context, variables)
        if self._override is not None:
            concurrency = self._override
        else:
            concurrency = fields.max_concurrency(state, data, context, variables)
        self.map_run.tolerated_failure_count, self.map_run.tolerated_failure_percentage = count, percentage
        return RunConfig(
            max_concurrency=concurrency,
            tolerated_failure_count=count if has_count or not has_percentage else NEVER,
            tolerated_failure_percentage=percentage if has_percentage else 100.0,
            max_attempts=self.settings.max_attempts,
        )

    def _evaluated(self, state: MapState) -> MapState:
        """A JSONata Map with its ItemReader, ItemBatcher and ResultWriter expressions evaluated to literals.

        Their ``Arguments`` become literal ``Parameters``, so the reader, batcher and writer code
        serves both query languages.
        """
        data, context, variables = self.inv.input, self.inv.context, self.inv.variables
        fields = state.model_dump(by_alias=True, exclude_unset=True, mode="json")
        for name in ("ItemReader", "ItemBatcher", "ResultWriter"):
            if name not in fields:
                continue
            value = jsonata_flow.evaluate_field(fields[name], name, data, context, variables)
            if isinstance(value, dict) and "Arguments" in value:
                value["Parameters"] = value.pop("Arguments")
            fields[name] = value
        return MapState.model_validate(fields)

    def _plan(self) -> ChildPlan:
        processor = self.state.processor
        blocking = any(
            isinstance(s, TaskState | WaitState) or (isinstance(s, MapState) and s.distributed)
            for _, _, s in iter_states(processor)
        )
        return ChildPlan(
            run_id=self.run_id,
            map_run_arn=self.map_run.map_run_arn,
            state_machine_name=self.execution.state_machine_name,
            label=self.label,
            processor=processor.model_dump(by_alias=True, exclude_unset=True, mode="json"),
            language=self.inv.language,
            execution_type=(processor.processor_config.execution_type if processor.processor_config else None)
            or "STANDARD",
            payload_limit=self.settings.payload_limit,
            lease_ms=int(self.settings.lease_seconds * 1000),
            blocking=blocking,
            flow=self.execution.flow,
            role_arn=self.execution.role_arn,
        )

    # -- dispatch ------------------------------------------------------------------------------

    def _children(self, next_item: int, next_child: int) -> Iterator[ChildSpec]:
        """The children from the cursor on; the first reader opened stays live for :meth:`_learn_total`."""
        if self._read_end is None:
            self._read_end = (next_child, next_item)
        children = self._read_children(next_item, next_child)
        if self._live is None:
            self._live = children
        return children

    def _read_children(self, next_item: int, next_child: int) -> Iterator[ChildSpec]:
        # A total declared before (a redrive, a resume) is what the source held: more items now would
        # be granted past it and drive pending below 0, so a grown source fails the reader instead.
        known = self.store.totals(self.run_id)
        # The reader position stored with the cursor, when it is the one of next_item: the reader
        # seeks there (a byte offset, a row group, a StartAfter key) instead of reading every item before.
        reader, _, stored_item = self.store.cursor(self.run_id)
        items = sources.open_source(
            self.state,
            self.inv.input,
            self.inv.context,
            self.inv.variables,
            manifest=self.manifest,
            start=next_item,
            language=self.inv.language,
            storage=self.engine.storage(),
            position=reader if isinstance(reader, str) and stored_item == next_item else None,
        )
        # Each item's position is marked as it is read; the batcher reads one item past a full batch,
        # so a child's cursor is looked up among the last few marks rather than taken from the stream.
        stream = items if isinstance(items, ItemStream) else None
        marks: deque[Mark] = deque(maxlen=4)

        def selected() -> Iterator[tuple[int, str]]:
            for item in items:
                text = self._select(item)
                if stream is not None:
                    marks.append(stream.mark())
                yield item.index, text

        grouped = batching.batches(selected(), self.batch) if self.batch else batching.single(selected())
        for number, child in enumerate(grouped, start=next_child):
            if len(child.text.encode("utf-8")) > self.settings.payload_limit:
                self._oversize.add(number)
            end = (number + 1, child.first + child.items)
            if known is not None and (end[1] > known[0] or end[0] > known[1]):
                raise StatesError(
                    ErrorName.ITEM_READER_FAILED,
                    f"The item source of Map state '{self.inv.state_name}' changed: it held {known[0]} items "
                    f"({known[1]} children) when this Map Run read it before, and now holds more.",
                )
            if self._read_end is None or end > self._read_end:
                self._read_end = end
            yield ChildSpec(number, child.first, child.items, child.text, cursor=_cursor_after(end[1], marks))

    def _select(self, item: Any) -> str:
        state, value = self.state, item.value
        if self.inv.language == "JSONata":
            value = jsonata_flow.select_item(
                state, self.inv.input, self.inv.context, self.inv.variables, item.index, value, item.source, item.key
            )
        elif state.selector is not None:
            entry = {"Index": item.index, "Value": value, "Source": item.source}
            if item.key is not None:
                entry["Key"] = item.key
            context = {**self.inv.context, "Map": {"Item": entry}}
            value = dataflow.template(state.selector, self.inv.input, context, self.inv.variables)
        try:
            return dataflow.compact(value)
        except RecursionError:  # a hostile manifest must fail the reader, not the process
            raise StatesError(
                ErrorName.ITEM_READER_FAILED,
                f"Item {item.index} of {item.source} is nested too deeply to be passed to a child as JSON.",
            ) from None

    def _dispatch_all(self) -> None:
        """Offer children for permits until every child has a terminal result or the run is aborted.

        On the celery backend a :class:`~dmap.pacing.Pacer` shapes the grants: once every permit
        is out the loop waits for a wake instead of asking again, after a wake it lets freed permits
        gather briefly while the workers have queued work, and each grant goes out in packs sized
        from the permits and the live worker slots. The store alone grants, so MaxConcurrency,
        fencing and the write-ahead cursor are untouched by it.
        """
        store, run = self.store, self.run_id
        _, next_child, next_item = store.cursor(run)
        window = _Window(self._children(next_item, next_child), next_child, next_item)
        lease_ms = int(self.settings.dispatch_lease_seconds * 1000)
        known = self._known_total()
        totals_set = known is not None  # the reader is exhausted (or needs no reading): the run may be done
        if known is not None:  # items in the state input: the total (and the percentage rule) apply from the start
            store.set_total(run, items=known, children=known)
        ahead = _CountAhead(self._count_ahead)
        pacer = self._pacer()
        listeners = self._listener_watch()
        restarts = self._restart_watch(listeners)
        next_check = next_done_check = next_drain = 0.0
        linger = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_check:  # at most every 100 ms: the wake list reports an abort at once
                    if self._stopping():
                        break
                    if not totals_set:  # asked again and again: update-map-run may set a percentage later
                        ahead.start_if_wanted()
                    self._say_if_deserted(listeners, now)
                    self._send_again_if_redis_restarted(restarts)
                    self.flow.tick()  # adaptive concurrency's additive increase (a no-op while it is off)
                    next_check = now + 0.1
                window.fill()
                if window.exhausted and not window.pending and not totals_set:
                    totals_set = True
                    ahead.cancel()  # the reader got there first: its totals are final
                    if store.set_total(run, items=window.end_item, children=window.end_child):
                        break
                if linger > 0:  # freed permits gather while the workers still have queued children
                    time.sleep(linger)
                acquired = self._grant(window, lease_ms, pacer)
                now = time.monotonic()
                if now >= next_drain or not acquired.leases:  # the ResultWriter's reads, not once per grant
                    self.sink.drain()
                    next_drain = now + 0.05
                linger = 0.0
                # Granting again at once would find no free permit: wait for a wake instead (a permit
                # freed meanwhile has left its token in the wake list, so the wait returns at once).
                saturated = pacer is not None and pacer.saturated() and not window.exhausted
                if not acquired.leases or saturated:  # children just granted are not done: only an idle round
                    # can be the last. With leases still held the run cannot be done (but a leftover lease of
                    # a child finished under an older token can linger: look anyway every 250 ms).
                    if not acquired.leases and totals_set and (acquired.held <= 0 or now >= next_done_check):
                        next_done_check = now + 0.25
                        if self._all_done():
                            break
                    woke = self._wait(acquired)
                    next_check = 0.0 if woke == "ABORT" else next_check
                    linger = pacer.linger() if pacer is not None and woke != "ABORT" else 0.0
        finally:
            ahead.cancel()
            _close(restarts)

    def _listener_watch(self) -> ListenerWatch | None:
        """A watch on the worker registry when children go to a queue (celery), else None."""
        store = getattr(self.engine, "redis", None)
        if store is None or getattr(self.engine, "worker_slots", None) is None:
            return None
        self._deserted_note = 0.0
        return ListenerWatch(store.client, store.prefix, self.settings.queue)

    def _restart_watch(self, listeners: ListenerWatch | None) -> RestartWatch | None:
        """A watch for a restart of the run store's Redis, and of the broker's when that is another Redis, when
        children go to a queue (celery), else None."""
        if listeners is None:
            return None
        broker_url = self.settings.effective_broker_url
        if broker_url == self.settings.redis_url or not broker_url.startswith(("redis://", "rediss://", "unix://")):
            return RestartWatch(listeners.client)  # the run store's client: the queues are on that server too
        # Looked at from the dispatch loop once a second: a broker that does not answer must not hold it up.
        broker = redis.Redis.from_url(broker_url, socket_connect_timeout=1, socket_timeout=2)
        return RestartWatch(listeners.client, broker, owns=(broker,))

    def _send_again_if_redis_restarted(self, restarts: RestartWatch | None) -> None:
        """Grant again, with fresh tokens, the children sent but not started before Redis was restarted or unreachable.

        A worker's ``BRPOP`` that took a child's message out of the queue as Redis died never got the
        reply, and nothing puts that message back: its child would wait for the dispatch lease
        (``DMAP_DISPATCH_LEASE_SECONDS``, 10 minutes by default). The messages that did survive then
        arrive with stale tokens and are ignored, as after a coordinator restart.
        """
        if restarts is None or not restarts.lost_since_last_look():
            return
        requeued = self.store.requeue_unstarted(self.run_id)
        if requeued:
            logger.warning(
                "map run %s: Redis was restarted or unreachable; %d children sent but not started are sent again",
                self.map_run.map_run_arn,
                requeued,
            )

    def _say_if_deserted(self, listeners: ListenerWatch | None, now: float) -> None:
        """Warn (then once a minute) while children wait and no live worker listens on the queue."""
        if listeners is None:
            return
        silent = listeners.silent_for()
        if silent < WORKERLESS_SECONDS or now < self._deserted_note:
            return
        counts = self.store.counts(self.run_id)
        if counts.executions.pending + counts.executions.running == 0:
            return
        self._deserted_note = now + 60.0
        logger.warning(
            "map run %s: no dmap worker has listened on queue %r for %.0f s; %d children wait "
            "(%d granted); start one with: dmap worker",
            self.map_run.map_run_arn,
            self.settings.queue,
            silent,
            counts.executions.pending + counts.executions.running,
            counts.leases,
        )

    def _wait(self, acquired: Acquired) -> str | None:
        """Block on the wake list until a permit frees, the run is aborted, or the earliest lease expires."""
        wait_ms = 1000 if acquired.wait_ms < 0 else max(5, min(acquired.wait_ms, 1000))
        return self.store.wait(self.run_id, wait_ms)

    def _grant(self, window: _Window, lease_ms: int, pacer: Pacer | None) -> Acquired:
        """One acquire and the dispatch of what it granted."""
        started = time.perf_counter()
        held_before = pacer.held if pacer is not None else -1
        if pacer is None:
            room = getattr(self.engine, "room", None)  # the local pool: no more than it can start soon
            pending = window.pending
            offered = list(pending) if room is None else list(itertools.islice(pending, room(self.plan, pending)))
            # The local pool's threads take staged children themselves too (none when one is oversize).
            stage = getattr(self.engine, "stage", None)
            staged = 0 if stage is None or self._oversize else stage(self.plan)
            acquired = self.store.acquire(self.run_id, offered, dispatch_lease_ms=lease_ms, stage=staged)
        else:
            # Workers take staged children themselves as they free permits (no oversize child may be
            # staged: the coordinator fails those itself). More than permits + stage specs are never used.
            stage = 0 if self._oversize else STAGE
            offered = list(
                itertools.islice(window.pending, max(pacer.permits, 1) + stage if pacer.permits > 0 else None)
            )
            acquired = self.store.acquire(self.run_id, offered, dispatch_lease_ms=lease_ms, stage=stage)
        window.granted(acquired.granted_new)
        if pacer is not None:
            pacer.observe(acquired)
        self._dispatch(acquired.leases, pacer, held_before)
        if acquired.leases:
            elapsed = time.perf_counter() - started
            metrics.observe_dispatch(elapsed, len(acquired.leases), backend=self.backend_name)
        return acquired

    def _pacer(self) -> Pacer | None:
        """A pacer when the backend sends packs of its own sizes (celery); None keeps one dispatch per grant."""
        slots = getattr(self.engine, "worker_slots", None)
        if slots is None or getattr(self.engine, "dispatch_packs", None) is None:
            return None
        return Pacer(slots, self.settings.dispatch_pack)

    def _keep_updated_limits(self) -> None:
        """Limits changed by update-map-run while the run went on (the journal's record has them) stay."""
        saved = self.engine.journal.map_run(self.map_run.map_run_arn)
        if saved is not None:
            self.map_run.max_concurrency = saved.max_concurrency
            self.map_run.tolerated_failure_count = saved.tolerated_failure_count
            self.map_run.tolerated_failure_percentage = saved.tolerated_failure_percentage

    def _stopping(self) -> bool:
        """True once the run is aborted; a stop request of the execution aborts it ("stopped").

        Raises:
            HandedOver: Another process took the execution over (this one's claim expired in an outage).
        """
        identity.check_held(self.engine, self.execution.execution_arn)
        if self.store.aborted(self.run_id) is not None:
            return True
        if self.engine.journal.stop_requested(self.execution.execution_arn):
            self.store.abort(self.run_id, "stopped")
            return True
        return False

    def _known_total(self) -> int | None:
        """The number of items when it is known before reading (state-input items, one item per child)."""
        if self.batch is not None or self.state.item_reader is not None:
            return None
        if self.manifest is not None:
            return len(self.manifest) if isinstance(self.manifest, list | tuple) else None
        try:
            if self.inv.language == "JSONata":
                return len(jsonata_flow.map_items(self.state, self.inv.input, self.inv.context, self.inv.variables))
            return len(sources.state_items(self.state, self.inv.input, self.inv.context, self.inv.variables))
        except StatesError:
            return None  # the reader reports it, where it belongs

    def _count_ahead(self) -> counting.TotalCounter | None:
        """Start counting the items in the background when a percentage tolerance needs the total (DESIGN §10).

        Only a ToleratedFailurePercentage below 100 is judged against the total; a count-only (or no)
        tolerance never needs it, so the source is not read twice for nothing (the dispatch loop asks
        again every 100 ms, so a percentage set later by update-map-run starts the count then). A
        resumed or redriven run whose total is already known is not counted again. Dispatch never
        waits for the count: it declares the total to the store when done, and the store applies
        AWS's rule from then on.
        """
        store, run = self.store, self.run_id
        config = store.config(run)
        if config is None or config.tolerated_failure_percentage >= 100 or store.counts(run).total_known:
            return None
        storage = self.engine.storage()
        children_follow = self.batch is not None  # a batch's size depends on its items' bytes: known at the end

        def count(cancelled: threading.Event) -> int | None:
            state, inv = self.state, self.inv
            return counting.count_source(
                state,
                inv.input,
                inv.context,
                inv.variables,
                manifest=self.manifest,
                language=inv.language,
                storage=storage,
                cancelled=cancelled,
            )

        def declare(total: int) -> None:
            logger.info("map run %s: the source holds %d items", self.map_run.map_run_arn, total)
            store.declare_total(run, items=total, children=None if children_follow else total)

        counter = counting.TotalCounter(count, declare, name=f"dmap-count-{run[:8]}")
        counter.start()
        return counter

    def _dispatch(self, leases: Sequence[Lease], pacer: Pacer | None = None, held_before: int = -1) -> None:
        if not leases:
            return
        oversize = [lease for lease in leases if lease.child in self._oversize]
        for lease in oversize:
            self._fail_oversize(lease)
        normal = [lease for lease in leases if lease.child not in self._oversize] if oversize else leases
        if not normal:
            return
        if pacer is None:
            self.engine.dispatch(self.plan, normal)
        else:
            self.engine.dispatch_packs(self.plan, pacer.packs(normal, held_before))  # type: ignore[attr-defined]

    def _fail_oversize(self, lease: Lease) -> None:
        """A child input over the payload limit fails that child (and only it), naming the item and size."""
        started = self.store.start(self.run_id, lease.child, lease.token, lease_ms=60_000, worker="coordinator")
        if started.outcome != "run":
            return
        size = len((started.input or "").encode("utf-8"))
        cause = (
            f"The child input of Map state '{self.inv.state_name}' for item {started.first}"
            f"{'' if started.items == 1 else f' (batch of {started.items} items)'} is {size} bytes, "
            f"over the payload limit of {self.settings.payload_limit} bytes (DMAP_PAYLOAD_LIMIT); "
            "use ItemSelector to pass less data to each child."
        )
        record = {
            "Child": lease.child,
            "Index": started.first,
            "Items": started.items,
            "Input": started.input,
            "Status": "FAILED",
            "Error": ErrorName.DATA_LIMIT_EXCEEDED.value,
            "Cause": cause,
            "StartDate": iso_now(),
            "StopDate": iso_now(),
            "Attempts": started.attempt,
            "Worker": "coordinator",
        }
        self.store.complete(self.run_id, lease.child, lease.token, ChildStatus.FAILED, dataflow.compact(record))
        self._oversize.discard(lease.child)

    def _all_done(self) -> bool:
        """Whether every child has a terminal result; only asked once the total is known (a run of 0 is done)."""
        counts = self.store.counts(self.run_id).executions
        return counts.succeeded + counts.failed + counts.timedOut + counts.aborted >= counts.total

    def _settle(self, grace_seconds: float | None = None) -> None:
        """After an abort, let running children reach their next state (they see the flag) before finishing."""
        if self.store.aborted(self.run_id) is None:
            return
        deadline = time.monotonic() + (grace_seconds if grace_seconds is not None else self.settings.lease_seconds)
        while self.store.counts(self.run_id).executions.running > 0 and time.monotonic() < deadline:
            self.store.acquire(self.run_id, [], dispatch_lease_ms=1)  # reclaims expired leases
            self.store.wait(self.run_id, max(1, min(200, int((deadline - time.monotonic()) * 1000))))
        # What still runs after the grace is aborted (AWS stops a failed Map Run's children): never RUNNING at the end.
        self.store.close_aborted(self.run_id)

    # -- results -------------------------------------------------------------------------------

    def _sink(self) -> InlineResults | ExportedResults:
        rw = self.state.result_writer
        prefix = f"{self.execution.state_machine_name}/{self.label}"
        context = RecordContext(self.run_id, state_machine_arn(prefix), self.plan.child_arn(0).rsplit(":", 1)[0] + ":")
        config = rw.writer_config if rw is not None else None
        if rw is None or rw.resource is None:
            spec = None
            if config is not None:
                spec = WriterSpec(
                    output_type=config.output_type or "JSON", transformation=config.transformation or "NONE"
                )
            return InlineResults(
                self.store,
                self.run_id,
                state_name=self.inv.state_name,
                payload_limit=self.settings.payload_limit,
                writer_spec=spec,
                context=context,
            )
        params = dataflow.template(rw.parameters or {}, self.inv.input, self.inv.context, self.inv.variables)
        spec = WriterSpec(
            bucket=str(params.get("Bucket", "")),
            prefix=params.get("Prefix"),
            output_type=(config.output_type if config else None) or "JSON",
            transformation=(config.transformation if config else None) or "NONE",
        )
        previous = self.map_run.result_files or {}
        if self.redrive:  # AWS: after a redrive the manifest lists every success, but only the new failures
            previous = {"SUCCEEDED": previous.get("SUCCEEDED", []), "FAILED": [], "PENDING": []}
            self.map_run.results_upto = 0
        writer = ResultWriter(
            self.engine.storage(),
            spec,
            map_run_arn=self.map_run.map_run_arn,
            map_run_id=self.run_id,
            state_machine_arn=context.state_machine_arn,
            execution_arn_prefix=context.execution_arn_prefix,
            redrive_count=self.map_run.redrive_count,
            resume=previous,
            arn_prefix=self.execution.arn_prefix,  # the ARNs its API caller was shown, not the journal's
        )
        writer.check()
        return ExportedResults(self.store, self.run_id, writer, self.map_run, self.engine.journal.save_map_run)

    def _learn_total(self) -> None:
        """Declare the run's totals if nobody has: a run that ends early still counts what it never read.

        The live reader is drained (a streaming count: one child in memory at a time; a one-shot
        iterator goes on where it stopped), so ``total`` is what the source holds and the unread
        items show as ``pending``. A source that cannot be read to its end leaves the totals unknown
        (the counts then cover what was read), never a guess.
        """
        if self.store.totals(self.run_id) is not None:
            return
        if self._live is None:
            _, next_child, next_item = self.store.cursor(self.run_id)
            self._children(next_item, next_child)
        assert self._live is not None and self._read_end is not None
        try:
            for _ in self._live:
                pass
        except Exception as exc:  # best effort: an unreadable rest leaves the total unknown, never guessed
            logger.warning("map run %s: total unknown, the source cannot be read to its end: %s", self.run_id, exc)
            return
        end_child, end_item = self._read_end
        try:
            self.store.set_total(self.run_id, items=end_item, children=end_child)
        except TotalMismatch as exc:
            logger.warning("map run %s: %s", self.run_id, exc)

    def _pending(self) -> Iterator[dict[str, Any]]:
        """Children that never started: queued ones (stored inputs), then the items never read."""
        _, next_child, next_item = self.store.cursor(self.run_id)
        yield from pending_children(self.store, self.run_id, next_child)
        if self._one_shot:
            return  # the items read ahead and the rest were consumed counting them: only their number is known
        for spec in self._children(next_item, next_child):
            yield {
                "Child": spec.child,
                "Index": spec.first,
                "Items": spec.items,
                "Status": "PENDING",
                "Input": spec.input,
            }

    def _finish(self, failure: StatesError | None) -> Any:
        reason = self.store.aborted(self.run_id)
        if reason == "tolerance":
            failure = StatesError(ErrorName.EXCEED_TOLERATED_FAILURE_THRESHOLD, THRESHOLD_CAUSE)
        output = None
        try:
            if reason == "stopped":
                self.map_run.status = MapRunStatus.ABORTED
                raise Aborted()
            # A failed run still exports its results (AWS), with PENDING files for what never ran.
            output = self.sink.finish(failed=failure is not None, pending=self._pending)
        except StatesError as exc:
            failure = failure or exc
        finally:
            counts = self.store.counts(self.run_id)
            if isinstance(self.sink, InlineResults):  # the inline output holds every finished child's result
                for c in (counts.items, counts.executions):
                    c.resultsWritten = c.succeeded + c.failed + c.timedOut + c.aborted
            self.map_run.item_counts = counts.items.as_dict()
            self.map_run.execution_counts = counts.executions.as_dict()
            self.map_run.stop_date = iso_now()
        if failure is None and reason is None:
            failure = _unfinished(self.store.totals(self.run_id), counts.items, counts.executions)
        if failure is not None:
            self.map_run.status = MapRunStatus.FAILED
            self.map_run.error, self.map_run.cause = failure.name, failure.cause
            raise failure
        self.map_run.status = MapRunStatus.SUCCEEDED
        return output


def _cursor_after(end: int, marks: Iterable[Mark]) -> int | str:
    """The reader position after item ``end - 1`` if one of ``marks`` is it, else the index ``end``."""
    for mark in marks:
        if mark[0] == end:
            return encode_position(mark)
    return end


def _unfinished(totals: tuple[int, int] | None, *counts: Counts) -> StatesError | None:
    """Never report SUCCEEDED for a run with items that did not run: the error to fail it with, if any.

    A guard: the dispatch loop ends only when every child is terminal, so this fires only on a bug.
    """
    problems = [] if totals is not None else ["its total is unknown"]
    for kind, c in zip(("items", "children"), counts, strict=True):
        if c.pending or c.running or c.aborted or c.succeeded + c.failed + c.timedOut != c.total:
            problems.append(f"{kind} {c.as_dict()}")
    if not problems:
        return None
    cause = "The Map Run ended with work not done, so it did not succeed: " + "; ".join(problems)
    return StatesError(ErrorName.RUNTIME, cause)


class _CountAhead:
    """The background count of a Map Run's items, started the first time it is wanted (at most once)."""

    def __init__(self, start: Callable[[], counting.TotalCounter | None]) -> None:
        self._start = start
        self._counter: counting.TotalCounter | None = None

    def start_if_wanted(self) -> None:
        """Start the count unless it runs already or is not wanted (yet)."""
        if self._counter is None:
            self._counter = self._start()

    def cancel(self) -> None:
        """Stop the count if it runs (the reader reached the end, or the run is over)."""
        if self._counter is not None:
            self._counter.cancel()


def _infrastructure(exc: BaseException) -> bool:
    """True for a lost Redis or broker (a resume finishes the run), as opposed to a fault of the run itself."""
    return is_outage(exc)


def _close(watch: RestartWatch | None) -> None:
    """Close a restart watch's own clients, if there is a watch."""
    if watch is not None:
        watch.close()


class _Window:
    """The children read ahead of their permits, in child order: at most WINDOW of them and WINDOW_BYTES of input
    (FIRST_FILL_BYTES until the first of them is granted)."""

    def __init__(self, children: Iterator[ChildSpec], next_child: int, next_item: int) -> None:
        self._children = children
        self.pending: deque[ChildSpec] = deque()
        self.bytes = 0  # input characters of the pending children
        self.exhausted = False
        self.end_child, self.end_item = next_child, next_item
        self._most_bytes = FIRST_FILL_BYTES  # the first grant should not wait for a whole window to be read

    def fill(self) -> None:
        """Read children until the window is full (by count or by input size) or the source is exhausted."""
        most_bytes = self._most_bytes
        while not self.exhausted and len(self.pending) < WINDOW and (self.bytes < most_bytes or not self.pending):
            spec = next(self._children, None)
            if spec is None:
                self.exhausted = True
                return
            self.pending.append(spec)
            self.bytes += len(spec.input)
            self.end_child, self.end_item = spec.child + 1, spec.first + spec.items

    def granted(self, count: int) -> None:
        """Drop the first ``count`` children: they have permits now."""
        if count:
            self._most_bytes = WINDOW_BYTES
        for _ in range(count):
            self.bytes -= len(self.pending.popleft().input)

"""Prometheus metrics of Map Runs (optional extra: ``pip install 'dmap[metrics]'``, prometheus-client).

Pull model: nothing is recorded per child. On every scrape, :class:`MapRunCollector` reads each
reported Map Run's counts from its :class:`~dmap.store.RunStore` (one pipelined read per run on
Redis, two small ones for flow control) and turns them into metrics that mirror DescribeMapRun's ``itemCounts`` and
``executionCounts``, plus items/s, running children, leases and lease reclaims, and flow control's
effective concurrency, children waiting for rate-limit tokens and throttled calls (the values
``describe-map-run`` shows, :func:`dmap.flow.run.flow_state`). Which runs are
reported comes from one of two places:

* in a coordinator process, :func:`track_map_run` when a Map Run starts and :func:`finish_map_run`
  when it ends (its final counts stay visible for a while); :func:`start_metrics_server` serves them,
  with the dispatch latency :func:`observe_dispatch` records;
* standalone, ``python -m dmap.metrics --port 9808``: :class:`RedisRunDiscovery` finds the runs in
  the Redis of ``DMAP_REDIS_URL`` (the compose ``metrics`` service and the Kubernetes exporter),
  and :class:`QueueLengthCollector` adds the length of the ``DMAP_QUEUE`` list on the broker.

Beside them, the metrics named after AWS's CloudWatch metrics (``dmap_ExecutionsStarted_total``,
``dmap_ApproximateOpenMapRunCount``...; names and sources in :mod:`dmap.metrics_aws`).

This module owns metric names and the exporter. It never changes run state. prometheus-client is
imported only by :func:`start_metrics_server` and the collector; until a server is started the hooks
are cheap no-ops, so the coordinator may call them unconditionally.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import metrics_aws, outage
from .errors import ConfigurationError
from .flow.run import flow_state

if TYPE_CHECKING:
    from .store import RunStore
    from .store.redis import RedisRunStore

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9808
"""The port of the metrics endpoint (``/metrics``) in the image, compose and Kubernetes."""
LINGER_SECONDS = 300.0
"""How long a finished Map Run stays reported, so its final counts are scraped at least once."""
STATUSES = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total", "resultsWritten")
"""The ``status`` label values: AWS's itemCounts / executionCounts keys."""
_DONE = ("succeeded", "failed", "timedOut", "aborted")
_LABELS = ("map_run", "state_machine", "label")
_FAMILIES = (
    ("items", "gauge", "dmap_map_run_items", "Items of a Map Run by status (DescribeMapRun itemCounts)."),
    ("executions", "gauge", "dmap_map_run_executions", "Child executions of a Map Run by status (executionCounts)."),
    (
        "processed",
        "counter",
        "dmap_map_run_items_processed",
        "Items that reached a terminal status (rate() = items/s).",
    ),
    ("rate", "gauge", "dmap_map_run_items_per_second", "Items reaching a terminal status per second, between scrapes."),
    ("running", "gauge", "dmap_map_run_running_children", "Child executions running now."),
    ("leases", "gauge", "dmap_map_run_leases", "MaxConcurrency permits held now (queued or running children)."),
    ("max", "gauge", "dmap_map_run_max_concurrency", "The Map Run's MaxConcurrency (0 = 10,000)."),
    (
        "effective",
        "gauge",
        "dmap_map_run_effective_concurrency",
        "The concurrency limit applied now: adaptive concurrency's while on, else MaxConcurrency (0 = 10,000).",
    ),
    (
        "waiting",
        "gauge",
        "dmap_map_run_waiting_children",
        "Children waiting for a rate-limit token now (they hold a permit and count as running).",
    ),
    (
        "throttled",
        "counter",
        "dmap_map_run_throttled_calls",
        "Task calls of the Map Run's children that failed with a throttling error.",
    ),
    (
        "reclaims",
        "counter",
        "dmap_map_run_lease_reclaims",
        "Expired leases reclaimed (a worker died or never started).",
    ),
    ("duplicates", "counter", "dmap_map_run_duplicate_completions", "Completions ignored: the child had a result."),
    (
        "aborted",
        "gauge",
        "dmap_map_run_aborted",
        "1 once the Map Run is aborted (tolerance exceeded, stopped, failed).",
    ),
)
"""Per-run metric families: (key, type, name, help). Counters get ``_total`` appended by prometheus-client."""
DISPATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _prometheus() -> Any:
    """The prometheus_client module, or a ConfigurationError that says how to install it."""
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError:
        raise ConfigurationError(
            "Prometheus metrics need the optional dependency prometheus-client: pip install 'dmap[metrics]'"
        ) from None
    return prometheus_client


@dataclass(frozen=True, slots=True)
class TrackedRun:
    """A Map Run to report: where its state lives and how to label it.

    Attributes:
        store: The run store holding the run.
        run_id: The Map Run id (the UUID at the end of its ARN; label ``map_run``).
        state_machine: The parent state machine's name (label ``state_machine``).
        label: The Map Run label (label ``label``).
    """

    store: RunStore
    run_id: str
    state_machine: str = ""
    label: str = ""


class ActiveRuns:
    """The Map Runs a coordinator process reports: tracked while running, then for ``linger_seconds``."""

    def __init__(self, linger_seconds: float = LINGER_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[TrackedRun, float | None]] = {}
        self._linger, self._clock = linger_seconds, clock

    def track(self, run: TrackedRun) -> None:
        """Report ``run`` from now on (again, if it was finished: a resume or redrive)."""
        with self._lock:
            self._runs[run.run_id] = (run, None)

    def finish(self, run_id: str) -> None:
        """The run ended: keep reporting it for the linger period, then forget it."""
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is not None:
                self._runs[run_id] = (entry[0], self._clock())

    def forget(self, run_id: str) -> None:
        """Stop reporting ``run`` at once (this process no longer runs it)."""
        with self._lock:
            self._runs.pop(run_id, None)

    def __call__(self) -> list[TrackedRun]:
        """The runs to report now."""
        now = self._clock()
        with self._lock:
            for run_id, (_, ended) in list(self._runs.items()):
                if ended is not None and now - ended > self._linger:
                    del self._runs[run_id]
            return [run for run, _ in self._runs.values()]


class RedisRunDiscovery:
    """Finds the Map Runs of a :class:`~dmap.store.redis.RedisRunStore` for a standalone exporter.

    Every ``rescan_seconds`` it SCANs for the runs' state hashes (``<prefix>:{<run>}:run``) and
    reports the runs that have children pending or running, plus those seen active within
    ``linger_seconds``. Runs that were already finished when first seen are not reported. Labels
    come from the plan the celery backend publishes for each run.
    """

    def __init__(
        self,
        store: RedisRunStore,
        *,
        linger_seconds: float = LINGER_SECONDS,
        rescan_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._linger, self._rescan, self._clock = linger_seconds, rescan_seconds, clock
        self._lock = threading.Lock()
        self._scanned: float | None = None
        self._active: dict[str, tuple[TrackedRun, float]] = {}

    def __call__(self) -> list[TrackedRun]:
        """The runs to report now (rescanning Redis when the last scan is old enough)."""
        with self._lock:
            now = self._clock()
            if self._scanned is None or now - self._scanned >= self._rescan:
                self._scan(now)
                self._scanned = now
            for run_id, (_, seen) in list(self._active.items()):
                if now - seen > self._linger:
                    del self._active[run_id]
            return [run for run, _ in self._active.values()]

    def _scan(self, now: float) -> None:
        pattern = f"{self.store.prefix}:{{*}}:run"
        for raw in self.store.client.scan_iter(match=pattern, count=1000, _type="HASH"):
            key = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            run_id = key[key.index("{") + 1 : key.rindex("}")]
            counts = self.store.counts(run_id)
            busy = counts.executions.pending + counts.executions.running + counts.leases
            if busy > 0:
                known = self._active.get(run_id)
                self._active[run_id] = (known[0] if known else self._labelled(run_id), now)

    def _labelled(self, run_id: str) -> TrackedRun:
        from .backends.celery import plan_key
        from .child import ChildPlan

        text = self.store.client.get(plan_key(self.store.prefix, run_id))
        if text is None:
            return TrackedRun(self.store, run_id)
        plan = ChildPlan.from_json(text)
        return TrackedRun(self.store, run_id, plan.state_machine_name, plan.label)


class MapRunCollector:
    """A prometheus-client collector reading Map Run counts from run stores at scrape time.

    Args:
        runs: Returns the runs to report (an :class:`ActiveRuns` or a :class:`RedisRunDiscovery`).
        clock: Time source of the items/s gauge.
    """

    def __init__(
        self,
        runs: Callable[[], Iterable[TrackedRun]],
        clock: Callable[[], float] = time.monotonic,
        *,
        executions: Callable[[], Iterable[metrics_aws.ExecutionCounters]] = metrics_aws.process_counters,
    ) -> None:
        self.runs, self._clock, self.executions = runs, clock, executions
        self._rates: dict[str, tuple[float, int, float]] = {}
        self._errors = 0
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (called by prometheus-client on every scrape)."""
        pc = _prometheus().core
        families = {
            key: (pc.GaugeMetricFamily if kind == "gauge" else pc.CounterMetricFamily)(
                name, doc, labels=[*_LABELS, "status"] if key in ("items", "executions") else list(_LABELS)
            )
            for key, kind, name, doc in _FAMILIES
        }
        aws = metrics_aws.AwsFamilies(pc, self.executions())
        reported = 0
        with outage.fail_fast():  # a scrape answers now, whatever Redis is doing
            for run in self.runs():
                try:
                    self._add(families, run, aws)
                    reported += 1
                except Exception:  # one unreachable store must not break the whole scrape
                    with self._lock:
                        self._errors += 1
                    logger.warning("cannot read the counts of map run %s", run.run_id, exc_info=True)
            aws_families = list(aws.collect())
        yield from families.values()
        yield from aws_families
        yield pc.GaugeMetricFamily("dmap_map_runs_reported", "Map Runs in this scrape.", value=reported)
        yield pc.CounterMetricFamily(
            "dmap_metrics_read_errors", "Map Runs whose counts could not be read.", value=self._errors
        )

    def _add(self, families: dict[str, Any], run: TrackedRun, aws: metrics_aws.AwsFamilies) -> None:
        config = run.store.config(run.run_id)
        if config is None:  # deleted or expired since it was tracked
            return
        counts = run.store.counts(run.run_id)
        labels = [run.run_id, run.state_machine, run.label]
        items, executions = counts.items.as_dict(), counts.executions.as_dict()
        for status in STATUSES:
            families["items"].add_metric([*labels, status], items[status])
            families["executions"].add_metric([*labels, status], executions[status])
        processed = sum(items[s] for s in _DONE)
        families["processed"].add_metric(labels, processed)
        families["rate"].add_metric(labels, self._rate(run.run_id, processed))
        families["running"].add_metric(labels, executions["running"])
        families["leases"].add_metric(labels, counts.leases)
        families["max"].add_metric(labels, config.max_concurrency)
        flow = flow_state(run.store, run.run_id, config.max_concurrency)  # what describe-map-run shows
        families["effective"].add_metric(labels, flow["effectiveConcurrency"])
        families["waiting"].add_metric(labels, flow["waiting"])
        families["throttled"].add_metric(labels, flow["throttledCalls"])
        families["reclaims"].add_metric(labels, counts.reclaimed)
        families["duplicates"].add_metric(labels, counts.duplicates)
        aborted = run.store.aborted(run.run_id) is not None
        families["aborted"].add_metric(labels, 1 if aborted else 0)
        aws.add_run(run.state_machine, run.label, run.run_id, counts, aborted)

    def _rate(self, run_id: str, processed: int) -> float:
        """Items/s since the previous scrape; scrapes closer than a second keep the last rate."""
        now = self._clock()
        with self._lock:
            last = self._rates.get(run_id)
            if last is None:
                self._rates[run_id] = (now, processed, 0.0)
                return 0.0
            then, before, rate = last
            if now - then >= 1.0:
                rate = max(0.0, (processed - before) / (now - then))
                self._rates[run_id] = (now, processed, rate)
            return rate


class QueueLengthCollector:
    """Reports ``dmap_queue_length``: messages waiting in the Celery queue (a Redis LIST named after it).

    Args:
        client: A redis-py client on the broker.
        queue: The queue name (``DMAP_QUEUE``).
    """

    def __init__(self, client: Any, queue: str) -> None:
        self.client, self.queue = client, queue

    def collect(self) -> Iterator[Any]:
        """Yield the queue length (nothing when the broker cannot be reached)."""
        pc = _prometheus().core
        try:
            length = int(self.client.llen(self.queue))
        except Exception:  # the exporter keeps serving run metrics while the broker is away
            logger.warning("cannot read the length of queue %s", self.queue, exc_info=True)
            return
        family = pc.GaugeMetricFamily("dmap_queue_length", "Children waiting in the Celery queue.", labels=["queue"])
        family.add_metric([self.queue], length)
        yield family


@dataclass
class MetricsServer:
    """A running metrics endpoint (see :func:`start_metrics_server`)."""

    port: int
    registry: Any
    runs: Callable[[], Iterable[TrackedRun]]
    _server: Any
    _thread: threading.Thread
    _hooks: _State | None = None

    def stop(self) -> None:
        """Stop serving (and, for the server of this process's runs, stop recording the hooks)."""
        global _state
        if self._hooks is not None and _state is self._hooks:
            _state = None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class _State:
    dispatch_latency: Any
    dispatched: Any


_active = ActiveRuns()
_state: _State | None = None


def track_map_run(store: RunStore, run_id: str, *, state_machine: str = "", label: str = "") -> None:
    """Hook: a Map Run started (or resumed) in this process; report it from now on. Cheap, never raises."""
    _active.track(TrackedRun(store, run_id, state_machine, label))


def finish_map_run(run_id: str) -> None:
    """Hook: a Map Run ended; its final counts stay reported for :data:`LINGER_SECONDS`."""
    _active.finish(run_id)


def forget_map_run(run_id: str) -> None:
    """Hook: this process let go of a Map Run (a Redis outage handed it over); whoever resumes it reports it."""
    _active.forget(run_id)


def execution_started(engine: Any, execution: Any) -> None:
    """Hook: an execution starts (or resumes) running here; counted once as ExecutionsStarted/Redriven. Never raises."""
    metrics_aws.record(engine, execution, "start")


def execution_finished(engine: Any, execution: Any) -> None:
    """Hook: an execution's run here ended; its terminal status is counted once (ExecutionsFailed...). Never raises."""
    metrics_aws.record(engine, execution, "end")


def observe_dispatch(seconds: float, children: int, *, backend: str = "") -> None:
    """Hook: ``children`` were granted and sent to the workers in ``seconds`` (no-op without a server)."""
    state = _state
    if state is not None and children > 0:
        state.dispatch_latency.labels(backend).observe(seconds)
        state.dispatched.labels(backend).inc(children)


def start_metrics_server(
    port: int = DEFAULT_PORT,
    addr: str = "0.0.0.0",
    *,
    runs: Callable[[], Iterable[TrackedRun]] | None = None,
    collectors: Iterable[Any] = (),
    executions: Callable[[], Iterable[metrics_aws.ExecutionCounters]] | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread.

    Args:
        port: The TCP port; 0 picks a free one (see :attr:`MetricsServer.port`).
        addr: The address to bind.
        runs: The runs to report; default the ones :func:`track_map_run` registered in this process.
        collectors: More prometheus-client collectors to serve (e.g. a :class:`QueueLengthCollector`).
        executions: Where top-level execution counts are read; default those this process counted into.

    Returns:
        The running server.

    Raises:
        ConfigurationError: prometheus-client is not installed.
    """
    global _state
    pc = _prometheus()
    registry = pc.CollectorRegistry()
    source = runs if runs is not None else _active
    registry.register(MapRunCollector(source, executions=executions or metrics_aws.process_counters))
    for collector in collectors:
        registry.register(collector)
    pc.ProcessCollector(registry=registry)
    latency = pc.Histogram(
        "dmap_dispatch_latency_seconds",
        "Seconds from asking for permits to the granted children being on the queue, per dispatch batch.",
        ["backend"],
        buckets=DISPATCH_BUCKETS,
        registry=registry,
    )
    dispatched = pc.Counter("dmap_dispatched_children", "Children sent to workers.", ["backend"], registry=registry)
    hooks = _State(latency, dispatched) if runs is None else None
    server, thread = pc.start_http_server(port, addr=addr, registry=registry)
    if hooks is not None:
        _state = hooks
    logger.info("serving Prometheus metrics on %s:%d/metrics", addr, server.server_port)
    return MetricsServer(server.server_port, registry, source, server, thread, hooks)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m dmap.metrics``."""
    parser = argparse.ArgumentParser(description="Prometheus exporter of dmap Map Runs in Redis.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="Port of /metrics.")
    parser.add_argument("--addr", default="0.0.0.0", help="Address to bind.")
    parser.add_argument("--linger", type=float, default=LINGER_SECONDS, help="Seconds finished runs stay reported.")
    return parser


def main(argv: list[str] | None = None) -> None:
    """``python -m dmap.metrics``: export the metrics of every Map Run in DMAP_REDIS_URL's Redis."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import redis

    from .config import get_settings, redact
    from .store.redis import RedisRunStore

    settings = get_settings()
    store = RedisRunStore.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=30)
    logger.info("reading map runs from %s", redact(settings.redis_url))
    queue = QueueLengthCollector(redis.Redis.from_url(settings.effective_broker_url, socket_timeout=30), settings.queue)
    discovery = RedisRunDiscovery(store, linger_seconds=args.linger)
    counters = metrics_aws.RedisExecutionCounters(store.client, store.prefix)
    start_metrics_server(args.port, args.addr, runs=discovery, collectors=[queue], executions=lambda: [counters])
    threading.Event().wait()


if __name__ == "__main__":
    main()

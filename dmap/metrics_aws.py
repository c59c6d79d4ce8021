"""The Prometheus metrics named after AWS Step Functions' CloudWatch metrics (``AWS/States``).

Naming: ``dmap_`` + the AWS metric name unchanged (CamelCase kept, so a CloudWatch dashboard or
alarm maps one to one); counters get the ``_total`` suffix prometheus-client gives every counter.

* ``dmap_ExecutionsStarted_total``, ``…Succeeded``, ``…Failed``, ``…Aborted``, ``…TimedOut``,
  ``…Redriven`` with labels ``state_machine`` and ``map_run``. As on AWS, top-level executions count
  under their state machine's name (``map_run=""``) and child executions under the qualified name
  ``<state machine>/<Map Run label>`` (AWS's ``StateMachineArn`` dimension of children), one series
  per Map Run (``map_run=<id>``).
* ``dmap_ApproximateOpenMapRunCount``, ``dmap_OpenMapRunLimit``, ``dmap_ApproximateMapRunBacklogSize``
  (AWS's account-level Map Run gauges), over the Map Runs the exporter reports.

Top-level executions are counted when they start and end, through :func:`record`, called by the
backend: in Redis on the celery backend (one idempotent Lua call per event, so a resumed
coordinator never counts an execution twice and every exporter of the cluster sees the same
totals), in this process's memory on the local backend. Child executions are read from the run
store at scrape time (the pull model of :mod:`dmap.metrics`): nothing is recorded per child.

This module owns these names and the execution counters; :mod:`dmap.metrics` serves them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any, Protocol

from .store import RunCounts

logger = logging.getLogger(__name__)

EXECUTION_METRICS = {
    "Started": "ExecutionsStarted",
    "Redriven": "ExecutionsRedriven",
    "SUCCEEDED": "ExecutionsSucceeded",
    "FAILED": "ExecutionsFailed",
    "ABORTED": "ExecutionsAborted",
    "TIMED_OUT": "ExecutionsTimedOut",
}
"""Execution event -> AWS metric name."""
_HELP = {
    "ExecutionsStarted": "Executions started (AWS/States ExecutionsStarted); children under <state machine>/<label>.",
    "ExecutionsRedriven": "Executions redriven (AWS/States ExecutionsRedriven).",
    "ExecutionsSucceeded": "Executions that succeeded (AWS/States ExecutionsSucceeded).",
    "ExecutionsFailed": "Executions that failed (AWS/States ExecutionsFailed).",
    "ExecutionsAborted": "Executions aborted or stopped (AWS/States ExecutionsAborted).",
    "ExecutionsTimedOut": "Executions that timed out (AWS/States ExecutionsTimedOut).",
}
OPEN_MAP_RUN_LIMIT = math.inf
"""dmap starts every Map Run at once: no cap on open Map Runs (AWS's is 1,000), so no backlog either."""
_LABELS = ["state_machine", "map_run"]
_SEEN_TTL = 90 * 86400  # an execution resumed later than this after its start would be counted again


class ExecutionCounters(Protocol):
    """Somewhere top-level execution counts are kept: ``{(AWS metric, state machine): count}``."""

    def read(self) -> dict[tuple[str, str], int]:
        """The counts now."""
        ...


class MemoryExecutionCounters:
    """Counts of the executions run by this process (the local backend)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._seen: set[tuple[str, str]] = set()

    def count(self, arn: str, event: str, metric: str, state_machine: str) -> bool:
        """Count ``event`` of execution ``arn`` unless it was counted before; True if counted now."""
        with self._lock:
            if (arn, event) in self._seen:
                return False
            self._seen.add((arn, event))
            key = (metric, state_machine)
            self._counts[key] = self._counts.get(key, 0) + 1
            return True

    def read(self) -> dict[tuple[str, str], int]:
        """The counts now."""
        with self._lock:
            return dict(self._counts)


class RedisExecutionCounters:
    """Counts of a cluster's executions in its Redis (the celery backend), shared by every process.

    Args:
        client: A redis-py client of the run store's Redis.
        prefix: The key prefix of the run store and journal (``dmap``).
        seen_ttl: How long the events of one execution are remembered (to count each once).
    """

    def __init__(self, client: Any, prefix: str = "dmap", seen_ttl: int = _SEEN_TTL) -> None:
        self.client, self.prefix, self.seen_ttl = client, prefix, seen_ttl
        self._script = client.register_script((resources.files("dmap") / "lua" / "count_execution.lua").read_text())

    @property
    def key(self) -> str:
        """The Redis hash of the counters."""
        return f"{self.prefix}:{{metrics}}:executions"

    def count(self, arn: str, event: str, metric: str, state_machine: str) -> bool:
        """Count ``event`` of execution ``arn`` unless it was counted before; True if counted now."""
        seen = f"{self.prefix}:{{metrics}}:seen:{arn}"
        return bool(self._script(keys=[self.key, seen], args=[event, f"{metric}|{state_machine}", self.seen_ttl]))

    def read(self) -> dict[tuple[str, str], int]:
        """The counts now (one HGETALL)."""
        out: dict[tuple[str, str], int] = {}
        for raw, value in self.client.hgetall(self.key).items():
            field = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            metric, _, state_machine = field.partition("|")
            out[(metric, state_machine)] = int(value)
        return out


_memory = MemoryExecutionCounters()
_redis: dict[tuple[int, str], RedisExecutionCounters] = {}
_redis_lock = threading.Lock()


def counters_of(engine: Any) -> MemoryExecutionCounters | RedisExecutionCounters:
    """Where ``engine``'s executions are counted: its journal's Redis if it has one, else this process."""
    journal = getattr(engine, "journal", None)
    client, prefix = getattr(journal, "client", None), getattr(journal, "prefix", None)
    if client is None or not isinstance(prefix, str):
        return _memory
    with _redis_lock:
        found = _redis.get((id(client), prefix))
        if found is None:
            ttl = int(getattr(journal, "retention", _SEEN_TTL))
            found = _redis[(id(client), prefix)] = RedisExecutionCounters(client, prefix, ttl)
        return found


def process_counters() -> list[ExecutionCounters]:
    """The counters this process has counted into (what its own metrics server reports)."""
    with _redis_lock:
        return [_memory, *_redis.values()]


def record(engine: Any, execution: Any, event: str) -> None:
    """Count an execution event: ``"start"`` (Started, or Redriven for a redrive) or ``"end"`` (its status).

    Never raises: a lost Redis costs a count, not the execution.
    """
    redrives = int(getattr(execution, "redrive_count", 0) or 0)
    if event == "start":
        key, once = ("Started", "Started") if redrives == 0 else ("Redriven", f"Redriven#{redrives}")
    else:
        key = str(execution.status)
        once = f"{key}#{redrives}"
    metric = EXECUTION_METRICS.get(key)
    if metric is None:  # still RUNNING (an infrastructure fault left it for a resume): nothing ended
        return
    try:
        counters_of(engine).count(execution.execution_arn, once, metric, execution.state_machine_name)
    except Exception:
        logger.warning("could not count %s of execution %s", metric, execution.execution_arn, exc_info=True)


class AwsFamilies:
    """The AWS-named families of one scrape, filled run by run by :class:`~dmap.metrics.MapRunCollector`.

    Args:
        core: ``prometheus_client.core``.
        counters: Where top-level execution counts are read from.
    """

    def __init__(self, core: Any, counters: Iterable[ExecutionCounters]) -> None:
        self._core = core
        self._counters = list(counters)
        self._executions = {
            metric: core.CounterMetricFamily(f"dmap_{metric}", _HELP[metric], labels=_LABELS) for metric in _HELP
        }
        self._open = 0

    def add_run(self, state_machine: str, label: str, run_id: str, counts: RunCounts, aborted: bool) -> None:
        """Add one Map Run: its children's execution counts, and whether it is still open."""
        c = counts.executions
        labels = [f"{state_machine}/{label}", run_id]
        done = {"Succeeded": c.succeeded, "Failed": c.failed, "Aborted": c.aborted, "TimedOut": c.timedOut}
        self._executions["ExecutionsStarted"].add_metric(labels, c.running + sum(done.values()))
        for name, value in done.items():
            self._executions[f"Executions{name}"].add_metric(labels, value)
        if not aborted and (c.pending + c.running + counts.leases > 0 or not counts.total_known):
            self._open += 1

    def collect(self) -> Iterator[Any]:
        """Yield every family: executions (top-level counts first read now), then the Map Run gauges."""
        totals: dict[tuple[str, str], int] = {}
        for source in self._counters:
            try:
                for key, value in source.read().items():
                    totals[key] = totals.get(key, 0) + value
            except Exception:  # the run metrics are still worth serving without the execution counts
                logger.warning("cannot read the execution counters", exc_info=True)
        for (metric, state_machine), value in sorted(totals.items()):
            if metric in self._executions:
                self._executions[metric].add_metric([state_machine, ""], value)
        yield from self._executions.values()
        core = self._core
        yield core.GaugeMetricFamily(
            "dmap_ApproximateOpenMapRunCount", "Map Runs open now (AWS/States ApproximateOpenMapRunCount).", self._open
        )
        yield core.GaugeMetricFamily(
            "dmap_OpenMapRunLimit",
            "Most open Map Runs before new ones wait (AWS: 1,000); dmap has no such limit: +Inf.",
            OPEN_MAP_RUN_LIMIT,
        )
        yield core.GaugeMetricFamily(
            "dmap_ApproximateMapRunBacklogSize",
            "Map Runs waiting for an open-Map-Run slot (AWS/States ApproximateMapRunBacklogSize); always 0 in dmap.",
            0,
        )

"""What someone watching a Map Run sees beyond DescribeMapRun: its pace, run times, failures by error, results.

Control functions like those of :mod:`dmap.control` (the console and the CLI call them; neither
reads the store): throughput over time and child run-time percentiles from the store's activity
record, the failure counts per error name from its failure index, and where the ResultWriter puts
the results. Nothing here changes a run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .control import _backend, _map_run
from .records import MapRunStatus
from .store import MAX_PERMITS
from .store.activity import RatePoint, percentile_ms, rates


@dataclass(frozen=True, slots=True)
class MapRunActivity:
    """A Map Run's pace.

    Attributes:
        rates: Items/s and failures/s over time, from the first completion (at most the points asked for).
        p50_ms: Median child run time in ms (a histogram bucket's upper bound: within about 19 %), or None.
        p95_ms: 95th percentile child run time in ms, likewise.
        in_flight: Children dispatched or running now (permits held); 0 once the run ended.
        max_concurrency: The run's MaxConcurrency now (0: no limit, i.e. 10,000 permits).
        permits: The effective limit: ``max_concurrency``, or 10,000 for 0.
    """

    rates: list[RatePoint]
    p50_ms: float | None
    p95_ms: float | None
    in_flight: int
    max_concurrency: int
    permits: int


def map_run_activity(arn: str, *, points: int = 120, backend: Any = None, now: float | None = None) -> MapRunActivity:
    """Throughput over time, child run-time percentiles and concurrency in use, read in two store calls.

    Args:
        arn: The Map Run ARN.
        points: At most this many chart points.
        backend: ``"local"``, ``"celery"`` or a Backend instance.
        now: Epoch seconds the chart of a running Map Run extends to (default: the clock).

    Raises:
        NotFoundError: No Map Run has this ARN.
    """
    engine = _backend(backend)
    map_run = _map_run(engine, arn)
    run = map_run.run_id
    activity = engine.store.activity(run)
    running = map_run.status == MapRunStatus.RUNNING
    config = engine.store.config(run) if running else None
    in_flight = engine.store.counts(run).leases if config is not None else 0
    limit = config.max_concurrency if config is not None else map_run.max_concurrency
    until = (time.time() if now is None else now) if running else None
    return MapRunActivity(
        rates=rates(activity, points=points, now=until),
        p50_ms=percentile_ms(activity.durations, 0.5),
        p95_ms=percentile_ms(activity.durations, 0.95),
        in_flight=in_flight,
        max_concurrency=limit,
        permits=limit if limit > 0 else MAX_PERMITS,
    )


def failure_groups(arn: str, *, limit: int = 50, backend: Any = None) -> list[tuple[str, int]]:
    """The error names of a Map Run's failed, timed-out and aborted children, each with how many (name order).

    Read from the failure index (one lookup and one count per name), never the records.

    Raises:
        NotFoundError: No Map Run has this ARN.
    """
    engine = _backend(backend)
    result: list[tuple[str, int]] = engine.store.failure_errors(_map_run(engine, arn).run_id, limit=limit)
    return result


def result_writer_location(arn: str, *, backend: Any = None) -> str | None:
    """Where the Map Run's ResultWriter writes: ``s3://<bucket>/<prefix>/<map-run-id>/``; None without one.

    A Bucket or Prefix given by a path (``Bucket.$``) or a JSONata expression is only known to the run:
    the location then shows that expression in braces.

    Raises:
        NotFoundError: No Map Run has this ARN.
    """
    from .writers import result_base

    engine = _backend(backend)
    map_run = _map_run(engine, arn)
    definition = engine.journal.definition(map_run.execution_arn) or {}
    state = (definition.get("States") or {}).get(map_run.state_name) or {}
    writer = state.get("ResultWriter") if isinstance(state, dict) else None
    if not isinstance(writer, dict) or "Resource" not in writer:
        return None
    params = writer.get("Parameters") or writer.get("Arguments") or {}
    if isinstance(params, str):
        return "{" + params + "}"
    bucket, prefix = (_static(params, name) for name in ("Bucket", "Prefix"))
    return f"s3://{bucket}/{result_base(prefix, map_run.run_id)}"


def _static(params: dict[str, Any], name: str) -> str | None:
    """A ResultWriter parameter as written: its value, or ``{<path>}`` when a path or expression gives it."""
    if name + ".$" in params:
        return "{" + str(params[name + ".$"]) + "}"
    value = params.get(name)
    if isinstance(value, str) and value.startswith("{%"):
        return "{" + value.strip("{}% ") + "}"
    return None if value is None else str(value)

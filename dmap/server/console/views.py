"""What each console page shows, as plain data built from the control functions (no HTML here).

Every function takes the backend and returns a dict the templates render and the JSON twins
return as they are, so the page and its live updates cannot drift. Only :mod:`dmap.control` and
:mod:`dmap.observe` are called: the console never reads the store or the journal itself. These
functions block on Redis; the routes run them in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from ... import control, observe
from ...records import ExecutionStatus
from .chart import duration_text, throughput_svg
from .history import history_page, state_views

EXECUTION_STATUSES = [s.value for s in ExecutionStatus]
PAGE = 25
"""Executions per page; failures per page."""
SCAN_LIMIT = control.LIST_SCAN
"""Executions examined per request when a filter is set (then the page ends and 'Older' goes on)."""
COUNT_KEYS = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total", "resultsWritten")
_INPUT_PREVIEW = 4096
_REDRIVABLE = {"FAILED", "TIMED_OUT", "ABORTED"}


def executions_view(engine: Any, *, status: str = "", machine: str = "", token: str | None = None) -> dict[str, Any]:
    """A page of executions, newest first, filtered by status and state machine name.

    :func:`dmap.control.list_executions` filters (the API's ListExecutions uses it too): one request
    reads at most :data:`SCAN_LIMIT` journal records, so a rare status never makes it read everything;
    the page then ends short and 'Older' goes on where it stopped.
    """
    page = control.list_executions(
        backend=engine,
        limit=PAGE,
        next_token=token,
        status=status or None,
        state_machine=machine or None,
        scan=SCAN_LIMIT,
    )
    return {
        "executions": [_execution_row(e) for e in page],
        "next_token": page.next_token,
        "status": status,
        "machine": machine,
        "statuses": EXECUTION_STATUSES,
        "scanned": page.scanned,
    }


def _execution_row(execution: Any) -> dict[str, Any]:
    counts = [m.item_counts for m in execution.map_runs]
    return {
        "arn": execution.execution_arn,
        "name": execution.name,
        "machine": execution.state_machine_name,
        "status": str(execution.status),
        "start": execution.start_date,
        "stop": execution.stop_date,
        "map_runs": len(execution.map_runs),
        "items": sum(c.get("total", 0) for c in counts),
        "failed": sum(c.get("failed", 0) + c.get("timedOut", 0) for c in counts),
        "redrives": execution.redrive_count,
    }


def execution_view(engine: Any, arn: str, *, history_token: str | None = None) -> dict[str, Any]:
    """An execution: its record, input and output, its states (and how far each got), a page of its history."""
    execution = control.describe_execution(arn, backend=engine)
    history = history_page(arn, backend=engine, next_token=history_token)
    definition = control.execution_definition(arn, backend=engine) or {}
    status = str(execution.status)
    return {
        "execution": _execution_row(execution),
        "error": execution.error,
        "cause": execution.cause,
        "input": _pretty(execution.input),
        "output": _pretty(execution.output) if execution.output is not None else None,
        "map_runs": [_map_run_row(m) for m in execution.map_runs],
        "states": state_views(definition, history.events, execution),
        "history": history.events,
        "history_next": history.next_token,
        "can_stop": status == "RUNNING",
        "can_redrive": status in _REDRIVABLE,
    }


def execution_live(engine: Any, arn: str) -> dict[str, Any]:
    """What the execution page refreshes: its status and its Map Runs' counts."""
    execution = control.describe_execution(arn, backend=engine)
    status = str(execution.status)
    return {
        "status": status,
        "stop": execution.stop_date,
        "map_runs": [_map_run_row(m) for m in execution.map_runs],
        "can_stop": status == "RUNNING",
        "can_redrive": status in _REDRIVABLE,
    }


def _map_run_row(map_run: Any) -> dict[str, Any]:
    counts = map_run.item_counts
    return {
        "arn": map_run.map_run_arn,
        "state": map_run.state_name,
        "label": map_run.label,
        "status": str(map_run.status),
        "done": sum(counts.get(k, 0) for k in ("succeeded", "failed", "timedOut", "aborted")),
        "total": counts.get("total", 0),
        "failed": counts.get("failed", 0) + counts.get("timedOut", 0),
    }


def map_run_live(engine: Any, arn: str) -> dict[str, Any]:
    """The live part of the Map Run page: counts, progress, pace, concurrency, the chart, and the parent's status."""
    map_run = control.describe_map_run(arn, backend=engine)
    progress = control.map_run_progress(arn, backend=engine)
    activity = observe.map_run_activity(arn, backend=engine)
    execution = control.describe_execution(map_run.execution_arn, backend=engine)
    status, parent = str(map_run.status), str(execution.status)
    percent = 100.0 * progress.done / progress.total if progress.total else (100.0 if status != "RUNNING" else 0.0)
    recent = activity.rates[-1] if activity.rates else None
    flow = map_run.flow or {}  # only a RUNNING Map Run has flow state: an ended one shows its MaxConcurrency
    effective = int(flow.get("effectiveConcurrency", activity.max_concurrency))
    return {
        "status": status,
        "execution_status": parent,
        "stop": map_run.stop_date,
        "items": {k: map_run.item_counts.get(k, 0) for k in COUNT_KEYS},
        "executions": {k: map_run.execution_counts.get(k, 0) for k in COUNT_KEYS},
        "done": progress.done,
        "total": progress.total,
        "total_known": progress.total_known,
        "percent": round(percent, 1),
        "eta": duration_text(progress.eta_seconds) if status == "RUNNING" else "done",
        "items_per_second": _rate(recent.items_per_second if recent else None),
        "failures_per_second": _rate(recent.failures_per_second if recent else None),
        "average_rate": _rate(progress.items_per_second),
        "p50": _ms(activity.p50_ms),
        "p95": _ms(activity.p95_ms),
        "in_flight": activity.in_flight,
        "max_concurrency": activity.max_concurrency,
        "max_concurrency_text": _limit(activity.max_concurrency),
        "effective_concurrency": effective,
        "effective_concurrency_text": _limit(effective),
        "adaptive": bool(flow.get("adaptive")),
        "adaptive_floor": int(flow.get("minConcurrency", 1)),
        "adaptive_text": f"on, floor {flow.get('minConcurrency', 1)}" if flow.get("adaptive") else "off",
        "waiting": int(flow.get("waiting", 0)),
        "throttled_calls": int(flow.get("throttledCalls", 0)),
        "permits": activity.permits,
        "chart": throughput_svg(activity.rates),
        "chart_points": len(activity.rates),
        "tolerated_count": map_run.tolerated_failure_count,
        "tolerated_percentage": map_run.tolerated_failure_percentage,
        "redrives": map_run.redrive_count,
        "can_update": status == "RUNNING",
        "can_stop": parent == "RUNNING",
        "can_redrive": parent in _REDRIVABLE,
    }


def map_run_view(engine: Any, arn: str, *, error: str = "", token: str | None = None) -> dict[str, Any]:
    """The Map Run page: the live part, plus its identity, the ResultWriter location and a page of failures."""
    map_run = control.describe_map_run(arn, backend=engine)
    live = map_run_live(engine, arn)
    page = control.list_failures(arn, error=error or None, limit=PAGE, backend=engine, next_token=token)
    failures = [_failure_row(f) for f in page]
    return {
        **live,
        "arn": arn,
        "label": map_run.label,
        "state": map_run.state_name,
        "execution_arn": map_run.execution_arn,
        "start": map_run.start_date,
        "location": observe.result_writer_location(arn, backend=engine),
        "groups": [{"error": name, "count": count} for name, count in observe.failure_groups(arn, backend=engine)],
        "failure_total": control.count_failures(arn, error=error or None, backend=engine),
        "error_filter": error,
        "failures": failures,
        "failures_next": page.next_token,
    }


def _failure_row(failure: control.ItemFailure) -> dict[str, Any]:
    row = asdict(failure)
    row["input"] = _pretty(failure.input, limit=_INPUT_PREVIEW)
    return row


def failures_jsonl(engine: Any, arn: str, *, error: str = "", page: int = 1000) -> Iterator[str]:
    """Every failure record of the Map Run as JSON lines, one chunk per store page (never all at once)."""
    token: str | None = None
    while True:
        failures = control.list_failures(arn, error=error or None, limit=page, backend=engine, next_token=token)
        chunk = "".join(json.dumps(asdict(f), default=str) + "\n" for f in failures)
        if chunk:
            yield chunk
        token = failures.next_token
        if token is None:
            return


def _pretty(value: Any, *, limit: int = 65536) -> str:
    text = json.dumps(value, indent=2, default=str)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit:,} more characters)"


def _limit(value: int) -> str:
    """A concurrency limit as the page says it (MaxConcurrency 0 means no limit of the user's)."""
    return f"{value:,}" if value > 0 else "unlimited"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}/s"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} ms"
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"

"""The flow-control commands: ``dmap limits set|list|delete``, ``dmap plan``, and ``dmap run``'s flow flags.

dmap/cli.py mounts them; this module prints, the rest of :mod:`dmap.flow` decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ConfigurationError, DmapError
from .limits import limits_for, limits_json, require_shared
from .options import FlowOptions
from .rates import make_limit

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
limits_app = typer.Typer(help="Cluster-wide rate limits on what children call.", no_args_is_help=True)


def flow_options(
    adaptive: bool, min_concurrency: int | None, limit: str | None, throttle_errors: list[str] | None
) -> dict[str, Any] | None:
    """``dmap run``'s flow flags as the ``flow`` argument of :func:`dmap.run` (None when none is given)."""
    if not adaptive and min_concurrency is None and limit is None and not throttle_errors:
        return None
    options = FlowOptions(
        adaptive=adaptive,
        min_concurrency=min_concurrency or 1,
        limit=limit,
        throttle_errors=tuple(throttle_errors or ()),
    )
    return options.as_dict()


def progress_note(store: Any, run: str) -> str:
    """The flow part of the progress line: the effective concurrency when adaptive, children waiting for tokens."""
    from .run import flow_state

    try:
        state = flow_state(store, run, 0)
    except Exception:  # the progress line is best effort; the run's outcome is reported anyway
        return ""
    note = f" · concurrency {state['effectiveConcurrency']}" if state.get("adaptive") else ""
    if state.get("waiting"):
        note += f" · {state['waiting']} waiting for tokens"
    if state.get("throttledCalls"):
        note += f" · {state['throttledCalls']} throttled"
    return note


def _shared_limits(backend: str | None) -> Any:
    from ..backends import get_backend

    limits = limits_for(get_backend(backend).store)
    require_shared(limits)
    return limits


def _exit(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


@limits_app.command("set")
def set_limit(
    key: Annotated[str, typer.Argument(help="Lambda ARN or function name, an http:invoke host, or a label.")],
    rate: Annotated[str, typer.Argument(help="50/s, 3000/m or 100/h.")],
    burst: Annotated[
        int | None, typer.Option(min=1, help="Calls that may go at once after a pause (default 1).")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="local or celery (whose Redis keeps the limit).")] = None,
) -> None:
    """Limit calls to KEY across every worker and Map Run (a Redis token bucket)."""
    try:
        limit = make_limit(key, rate, burst)
        _shared_limits(backend).set(limit)
    except ConfigurationError as exc:
        raise _exit(str(exc), 2) from None
    except DmapError as exc:
        raise _exit(str(exc), 3) from None
    per_second = f"{limit.per_second:g}/s"
    rate = limit.rate if limit.rate == per_second else f"{limit.rate} ({per_second})"
    out.print(f"{escape(limit.key)}: {escape(rate)}, burst {limit.burst}", highlight=False)


@limits_app.command("list")
def list_limits(
    output: Annotated[str, typer.Option(help="table or json.")] = "table",
    backend: Annotated[str | None, typer.Option(help="local or celery.")] = None,
) -> None:
    """Every rate limit."""
    try:
        limits = _shared_limits(backend).all()
    except ConfigurationError as exc:
        raise _exit(str(exc), 2) from None
    if output == "json":
        print(limits_json(limits))
        return
    from rich.table import Table

    table = Table("key", "rate", "per second", "burst")
    for limit in limits:
        table.add_row(escape(limit.key), escape(limit.rate), f"{limit.per_second:g}", str(limit.burst))
    out.print(table)


@limits_app.command("delete")
def delete_limit(
    key: Annotated[str, typer.Argument(help="The limited key.")],
    backend: Annotated[str | None, typer.Option(help="local or celery.")] = None,
) -> None:
    """Remove the limit on KEY (exit 1 if there was none)."""
    try:
        removed = _shared_limits(backend).delete(key)
    except ConfigurationError as exc:
        raise _exit(str(exc), 2) from None
    if not removed:
        raise _exit(f"no rate limit on {key!r}", 1)
    out.print(f"removed the limit on {escape(key)}", highlight=False)


def plan_command(
    definition: Annotated[Path, typer.Argument(help="A definition file.")],
    manifest: Annotated[str | None, typer.Option(help="Items for the first DISTRIBUTED Map: s3://… or a file.")] = None,
    input: Annotated[str | None, typer.Option("--input", help="Execution input: JSON or @file.")] = None,
    sample: Annotated[int, typer.Option(min=0, help="Run this many randomly drawn items on the local backend.")] = 0,
    imports: Annotated[list[str] | None, typer.Option("--import", help="Module that registers task handlers.")] = None,
    express_memory_mb: Annotated[
        int | None, typer.Option(help="Express: billed memory per child (default: AWS's estimate, 64-MB chunks).")
    ] = None,
    express_seconds: Annotated[
        float | None, typer.Option(help="Express: seconds per child (default: the sample's mean, else 1).")
    ] = None,
    output: Annotated[str, typer.Option(help="table or json.")] = "table",
) -> None:
    """Count, price and time a run before running it: items, batches, bytes, AWS cost, a sampled projection."""
    from ..cli import _import_handlers, _json_arg
    from .plan import plan

    _import_handlers(imports)
    value = _json_arg(input, "--input")
    try:
        result = plan(
            definition,
            manifest,
            input=value,
            sample=sample,
            express_memory_mb=express_memory_mb,
            express_seconds=express_seconds,
        )
    except ConfigurationError as exc:
        raise _exit(str(exc), 2) from None
    except DmapError as exc:
        raise _exit(str(exc), 1) from None
    if output == "json":
        print(json.dumps(result.as_dict(), indent=2))
        return
    for line in result.lines():
        out.print(line, highlight=False, markup=False)

"""The ``dmap`` command line (typer + rich), mirroring ``aws stepfunctions`` verbs (DESIGN §4).

Exit codes: 0 SUCCEEDED (or a valid definition), 1 FAILED/ABORTED/TIMED_OUT or an invalid
definition, 2 a usage error. Errors are one clear message on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .errors import ConfigurationError, DefinitionError, DmapError


class Output(StrEnum):
    """How results are printed."""

    table = "table"
    json = "json"


app = typer.Typer(
    name="dmap",
    help="Run AWS Step Functions Distributed Map workloads on your own machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


def _where(d: Any) -> str:
    """A diagnostic's location as printed (``/`` for the whole definition)."""
    return str(d.location or "/")


def _json_arg(value: str | None, what: str) -> Any:
    """A JSON value given inline or as ``@file``."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text("utf-8") if value.startswith("@") else value
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(f"{what} is not valid JSON: {exc}", 2) from None


@app.command()
def validate(definition: Annotated[Path, typer.Argument(help="A definition file (.json / .asl.json).")]) -> None:
    """Check a definition and print every problem with its location; exit 1 on any ERROR."""
    from .asl import validate as check

    diagnostics = check(definition)
    for d in diagnostics:
        colour = "red" if d.severity == "ERROR" else "yellow"
        out.print(f"[{colour}]{d.severity}[/{colour}] {escape(_where(d))}: {escape(d.message)} [dim]({d.code})[/dim]")
    errors = sum(1 for d in diagnostics if d.severity == "ERROR")
    if errors:
        raise typer.Exit(1)
    warnings = f" ({len(diagnostics)} warning(s))" if diagnostics else ""
    out.print(f"[green]valid[/green]: {escape(str(definition))}{warnings}")


@app.command()
def run(
    definition: Annotated[Path, typer.Argument(help="A definition file.")],
    input: Annotated[str | None, typer.Option("--input", help="Execution input: JSON or @file.")] = None,
    manifest: Annotated[str | None, typer.Option(help="Items for the first DISTRIBUTED Map: s3://… or a file.")] = None,
    backend: Annotated[str | None, typer.Option(help="local (default) or celery.")] = None,
    max_concurrency: Annotated[int | None, typer.Option(min=0, help="Override MaxConcurrency.")] = None,
    name: Annotated[str | None, typer.Option(help="Execution name; the same name resumes a run.")] = None,
    detach: Annotated[bool, typer.Option(help="Submit to the cluster and return at once (celery).")] = False,
    imports: Annotated[list[str] | None, typer.Option("--import", help="Module that registers task handlers.")] = None,
    output: Annotated[Output, typer.Option(help="table or json.")] = Output.table,
) -> None:
    """Run a state machine and print its outcome; exit 0 only if it SUCCEEDED. Ctrl-C stops it (ABORTED)."""
    from .api import start
    from .config import get_settings

    _import_handlers(imports)
    if get_settings().metrics_port:
        from .metrics import start_metrics_server

        try:
            start_metrics_server(get_settings().metrics_port)
        except DmapError as exc:
            raise _fail(str(exc), 2) from None
    value = _json_arg(input, "--input")
    try:
        if detach:
            from .detach import submit

            execution = submit(
                definition, manifest=manifest, input=value, name=name, max_concurrency=max_concurrency, backend=backend
            )
            _print_execution(execution, output)
            raise typer.Exit(0)
        execution = start(
            definition, manifest=manifest, input=value, backend=backend, name=name, max_concurrency=max_concurrency
        )
        _watch(execution, backend, show=output == Output.table and out.is_terminal)
    except DefinitionError as exc:
        for d in exc.diagnostics:
            err.print(f"[red]{d.severity}[/red] {escape(_where(d))}: {escape(d.message)} [dim]({d.code})[/dim]")
        raise typer.Exit(1) from None
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except DmapError as exc:  # infrastructure (Redis, storage): 3, so a Job can tell it from a FAILED run
        raise _fail(str(exc), 3) from None
    _print_execution(execution, output)
    raise typer.Exit(0 if execution.status == "SUCCEEDED" else 1)


def _watch(execution: Any, backend: str | None, *, show: bool) -> None:
    """Wait for a running execution; a live progress bar on a terminal; Ctrl-C stops the execution cleanly."""
    import time

    from . import control
    from .backends import get_backend

    engine = get_backend(backend)
    progress = _progress() if show else None
    task = progress.add_task("items", total=None, rate="") if progress else None
    started = time.monotonic()
    try:
        if progress:
            progress.start()
        while execution.status == "RUNNING":
            if progress is not None and task is not None and execution.map_runs:
                run = execution.map_runs[-1]
                counts = engine.store.counts(run.run_id).items
                done = counts.succeeded + counts.failed + counts.timedOut + counts.aborted
                rate = done / max(time.monotonic() - started, 1e-3)
                progress.update(
                    task,
                    total=counts.total or None,
                    completed=done,
                    rate=f"{rate:,.0f} items/s",
                    description=f"{escape(run.state_name)}: [green]{counts.succeeded} ok[/green] "
                    f"[red]{counts.failed + counts.timedOut} failed[/red] {counts.running} running",
                )
            time.sleep(0.2)
    except KeyboardInterrupt:
        err.print("[yellow]stopping[/yellow] (Ctrl-C): running children stop at their next state…")
        try:
            control.stop_execution(execution.execution_arn, backend=engine)
        except DmapError:
            pass
        while execution.status == "RUNNING":
            time.sleep(0.1)
    finally:
        if progress:
            progress.stop()


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _summary(execution: Any) -> None:
    from rich.table import Table

    colour = "green" if execution.status == "SUCCEEDED" else "red"
    out.print(f"[bold]{execution.execution_arn}[/bold]  [{colour}]{execution.status}[/{colour}]")
    if execution.error or execution.cause:
        out.print(f"[red]{escape(str(execution.error))}[/red]: {escape(str(execution.cause))}", highlight=False)
    for map_run in execution.map_runs:
        table = Table(title=escape(f"Map Run {map_run.map_run_arn}"), title_justify="left")
        keys = ("total", "succeeded", "failed", "timedOut", "aborted", "pending")
        for column in ("status", *keys):
            table.add_column(column, justify="right")
        counts = map_run.item_counts
        table.add_row(str(map_run.status), *(str(counts.get(k, 0)) for k in keys))
        out.print(table)
    if execution.status == "SUCCEEDED":
        text = json.dumps(execution.output, default=str)
        if len(text) <= 2000:
            out.print(json.dumps(execution.output, indent=2, default=str), highlight=False, markup=False)
        else:
            out.print(f"output: {len(text):,} bytes of JSON (print it with --output json)")


def _print_execution(execution: Any, output: Output) -> None:
    if output == Output.json:
        print(json.dumps(execution.describe(), indent=2, default=str))
    else:
        _summary(execution)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: CPU count).")] = None,
    imports: Annotated[list[str] | None, typer.Option("--import", help="Module that registers task handlers.")] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Start a Celery worker that runs dmap children (queue DMAP_QUEUE, broker DMAP_BROKER_URL)."""
    if imports:
        os.environ["DMAP_IMPORTS"] = ",".join(filter(None, [os.environ.get("DMAP_IMPORTS", ""), *imports]))
    from .config import get_settings

    get_settings.cache_clear()
    from workers.app import create_app

    settings = get_settings()
    celery_app = create_app(settings)
    argv = [
        "worker",
        "-Q",
        settings.queue,
        "-P",
        pool,
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv += ["-c", str(concurrency)]
    celery_app.worker_main(argv)


BackendOption = Annotated[str | None, typer.Option("--backend", help="local or celery (default: DMAP_BACKEND).")]
OutputOption = Annotated[Output, typer.Option(help="table or json.")]


def _control(call: Any) -> Any:
    """Run a control-plane call; known errors become one line and exit code 1 (2 for bad arguments)."""
    from .errors import ConfigurationError

    try:
        return call()
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except DmapError as exc:
        raise _fail(str(exc), 1) from None


@app.command("describe-execution")
def describe_execution(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN.")],
    backend: BackendOption = None,
    output: OutputOption = Output.json,
) -> None:
    """An execution's status, input, output, error and Map Runs (AWS's DescribeExecution shape)."""
    from . import control

    _print_execution(_control(lambda: control.describe_execution(execution_arn, backend=backend)), output)


@app.command("list-executions")
def list_executions(
    backend: BackendOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    output: OutputOption = Output.table,
) -> None:
    """The most recent executions first."""
    from rich.table import Table

    from . import control

    executions = _control(lambda: control.list_executions(backend=backend, limit=limit))
    if output == Output.json:
        print(json.dumps([e.describe() for e in executions], indent=2, default=str))
        return
    table = Table("name", "status", "started", "stopped")
    table.add_column("executionArn", overflow="fold")
    for e in executions:
        table.add_row(*map(escape, (e.name, str(e.status), e.start_date, e.stop_date or "", e.execution_arn)))
    out.print(table)


@app.command("stop-execution")
def stop_execution(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN.")],
    backend: BackendOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Stop a running execution: it ends ABORTED, unstarted items stay PENDING (redrivable)."""
    from . import control
    from .interpreter.context import iso_now

    _control(lambda: control.stop_execution(execution_arn, backend=backend))
    if output == Output.json:
        print(json.dumps({"executionArn": execution_arn, "stopDate": iso_now()}))  # AWS StopExecution's shape
    else:
        out.print(f"stop requested: {escape(execution_arn)}")


@app.command("list-map-runs")
def list_map_runs(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN.")],
    backend: BackendOption = None,
    output: OutputOption = Output.json,
) -> None:
    """The Map Runs of an execution (AWS's ListMapRuns shape)."""
    from . import control

    runs = _control(lambda: control.list_map_runs(execution_arn, backend=backend))
    items = [
        {
            "executionArn": r.execution_arn,
            "mapRunArn": r.map_run_arn,
            "stateMachineArn": r.state_machine_arn,
            "startDate": r.start_date,
            **({"stopDate": r.stop_date} if r.stop_date else {}),
        }
        for r in runs
    ]
    print(json.dumps({"mapRuns": items}, indent=2))


@app.command("describe-map-run")
def describe_map_run(
    map_run_arn: Annotated[str, typer.Argument(help="The Map Run ARN.")],
    backend: BackendOption = None,
    output: OutputOption = Output.json,
) -> None:
    """A Map Run's status, limits and item/execution counts (AWS's DescribeMapRun shape; JSON either way)."""
    from . import control

    print(json.dumps(_control(lambda: control.describe_map_run(map_run_arn, backend=backend)).describe(), indent=2))


@app.command("update-map-run")
def update_map_run(
    map_run_arn: Annotated[str, typer.Argument(help="The Map Run ARN.")],
    max_concurrency: Annotated[int | None, typer.Option(min=0, help="New MaxConcurrency (0 = 10,000).")] = None,
    tolerated_failure_count: Annotated[int | None, typer.Option(min=0, help="New ToleratedFailureCount.")] = None,
    tolerated_failure_percentage: Annotated[
        float | None, typer.Option(min=0, max=100, help="New ToleratedFailurePercentage (0-100).")
    ] = None,
    backend: BackendOption = None,
    output: OutputOption = Output.json,
) -> None:
    """Change a running Map Run's concurrency or failure tolerance; takes effect at once (prints it as JSON)."""
    from . import control

    run = _control(
        lambda: control.update_map_run(
            map_run_arn,
            max_concurrency=max_concurrency,
            tolerated_failure_count=tolerated_failure_count,
            tolerated_failure_percentage=tolerated_failure_percentage,
            backend=backend,
        )
    )
    print(json.dumps(run.describe(), indent=2))


@app.command("redrive-execution")
def redrive_execution(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN.")],
    backend: BackendOption = None,
    imports: Annotated[list[str] | None, typer.Option("--import", help="Module that registers task handlers.")] = None,
    manifest: Annotated[
        str | None,
        typer.Option(help="The same items again (S3 URI or path) when the original cannot be read again."),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Re-run only the failed, timed-out, aborted and pending items of a FAILED/ABORTED execution."""
    from . import control

    _import_handlers(imports)
    execution = _control(
        lambda: control.redrive_execution(execution_arn, backend=backend, wait=False, manifest=manifest)
    )
    _watch(execution, backend, show=output == Output.table and out.is_terminal)
    _print_execution(execution, output)
    raise typer.Exit(0 if execution.status == "SUCCEEDED" else 1)


@app.command()
def failures(
    map_run_arn: Annotated[str, typer.Argument(help="The Map Run ARN.")],
    error: Annotated[str | None, typer.Option(help="Only this error name.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    backend: BackendOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Which items of a Map Run failed, and why: item index, input, error, cause, attempts."""
    from dataclasses import asdict

    from rich.table import Table

    from . import control

    found = _control(lambda: list(control.list_failures(map_run_arn, error=error, limit=limit, backend=backend)))
    if output == Output.json:
        print(json.dumps([asdict(f) for f in found], indent=2, default=str))
        return
    table = Table("item", "status", "error", "cause", "input", "attempts", title=f"{len(found)} failed item(s)")
    for f in found:
        cause = _readable_cause(f.cause)
        cells = (str(f.index), f.status, f.error, cause, json.dumps(f.input)[:80], str(f.attempts))
        table.add_row(*map(escape, cells))
    out.print(table)


def _readable_cause(cause: str, width: int = 120) -> str:
    """A Lambda-style JSON cause shown as its errorMessage; anything else as is; cut to ``width``."""
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        cause = str(parsed["errorMessage"])
    return cause if len(cause) <= width else cause[: width - 1] + "…"


def _import_handlers(modules: list[str] | None) -> None:
    import importlib

    from .config import get_settings

    sys.path.insert(0, os.getcwd())
    for module in [*get_settings().import_list, *(modules or [])]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise _fail(f"cannot import handler module {module!r}: {exc}", 2) from None


def main() -> None:
    """Entry point of the ``dmap`` script."""
    app()

"""The ``dmap`` command line (typer + rich), mirroring ``aws stepfunctions`` verbs (DESIGN §4).

Exit codes: 0 SUCCEEDED (or a valid definition), 1 FAILED/ABORTED/TIMED_OUT or an invalid
definition, 2 a usage error, 3 an infrastructure fault (Redis, the broker, object storage), so a
Job can tell "the run failed" from "the cluster is down". Errors are one clear message on stderr,
never a traceback: every verb runs inside :func:`_reporting` (``DMAP_DEBUG=1`` shows the traceback
of an unexpected error).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .errors import (
    BackendError,
    ConfigurationError,
    DefinitionError,
    DmapError,
    ExecutionAlreadyExists,
    StorageError,
)

F = TypeVar("F", bound=Callable[..., Any])

#: Exit code of an infrastructure fault (Redis, the broker, object storage unreachable or failing).
EXIT_INFRASTRUCTURE = 3
#: Exit code when the reader of standard output went away (``dmap … | head``): 128 + SIGPIPE, as shells report it.
EXIT_PIPE_CLOSED = 141


class Output(StrEnum):
    """How results are printed."""

    table = "table"
    json = "json"


class _App(typer.Typer):
    """A Typer whose every command reports errors through :func:`_reporting` (one line, the right exit code)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(function: F) -> F:
            register(_reporting(function))
            return function

        return decorator


app = _App(
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


def _reporting(function: F) -> F:
    """Wrap a verb so that no error escapes as a traceback.

    ``DefinitionError`` -> its diagnostics, exit 1; ``ConfigurationError`` -> exit 2;
    ``BackendError``/``StorageError`` and raw Redis/broker/connection errors -> exit 3; any other
    ``DmapError`` (unknown ARN, wrong status) -> exit 1; anything else is a bug: one line, exit 1.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import click

        try:
            return function(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except DefinitionError as exc:
            _print_diagnostics(exc.diagnostics)
            raise typer.Exit(1) from None
        except ConfigurationError as exc:
            raise _fail(str(exc), 2) from None
        except (BackendError, StorageError) as exc:
            raise _fail(str(exc), EXIT_INFRASTRUCTURE) from None
        except DmapError as exc:
            raise _fail(str(exc), 1) from None
        except BrokenPipeError:
            if not _stdout_closed():
                raise _fail("a connection failed: BrokenPipeError", EXIT_INFRASTRUCTURE) from None
            # `dmap … | head`: the reader went away, nothing failed. Exit as a shell does on SIGPIPE.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_PIPE_CLOSED) from None
        except Exception as exc:
            infrastructure = _infrastructure_message(exc)
            if infrastructure is not None:
                raise _fail(infrastructure, EXIT_INFRASTRUCTURE) from None
            if os.environ.get("DMAP_DEBUG"):
                raise
            from .config import redact

            what = f"{type(exc).__name__}: {redact(str(exc))}"
            raise _fail(f"internal error: {what} (run with DMAP_DEBUG=1 to see the traceback)", 1) from None

    return wrapper  # type: ignore[return-value]


def _stdout_closed() -> bool:
    """True when whoever reads our standard output has gone away (a closed pipe)."""
    import select

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _infrastructure_message(exc: BaseException) -> str | None:
    """One line naming what failed for a raw Redis, broker or network error; None for anything else.

    Lower layers wrap most of these in :class:`BackendError`, but a connection that drops in the
    middle of a call can still surface as redis-py's or kombu's own exception.
    """
    import redis

    from .config import get_settings, redact

    settings = get_settings()
    if isinstance(exc, redis.RedisError):
        where = redact(settings.redis_url)
        return f"Redis at {where} (DMAP_REDIS_URL) failed: {type(exc).__name__}: {redact(str(exc))}"
    try:
        from kombu.exceptions import OperationalError
    except ImportError:  # celery is an optional extra
        OperationalError = ()  # type: ignore[assignment,misc]  # noqa: N806
    if isinstance(exc, OperationalError):
        where = redact(settings.effective_broker_url)
        return f"the Celery broker at {where} (DMAP_BROKER_URL) failed: {redact(str(exc))}"
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"a connection failed: {type(exc).__name__}: {redact(str(exc))}"
    return None


def _print_diagnostics(diagnostics: Any) -> None:
    """Every diagnostic of an invalid definition on stderr, one per line with its location."""
    for d in diagnostics:
        colour = "red" if d.severity == "ERROR" else "yellow"
        err.print(f"[{colour}]{d.severity}[/{colour}] {escape(_where(d))}: {escape(d.message)} [dim]({d.code})[/dim]")


def _where(d: Any) -> str:
    """A diagnostic's location as printed (``/`` for the whole definition)."""
    return str(d.location or "/")


def _json_arg(value: str | None, what: str) -> Any:
    """A JSON value given inline or as ``@file``."""
    if value is None:
        return None
    source = what
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        source = f"{what} {value}"
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            raise _fail(f"{source}: no such file: {path.absolute()}", 2) from None
        except IsADirectoryError:
            raise _fail(f"{source}: {path.absolute()} is a folder, not a JSON file", 2) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"{source}: cannot read {path.absolute()}: {exc}", 2) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{source} is not valid JSON: {exc}", 2) from None


@app.command()
def validate(
    definition: Annotated[Path, typer.Argument(help="A definition file (.json / .asl.json).")],
    output: Annotated[Output, typer.Option(help="table or json (a list of diagnostics).")] = Output.table,
) -> None:
    """Check a definition and print every problem with its location; exit 1 on any ERROR."""
    from dataclasses import asdict

    from .asl import validate as check

    diagnostics = check(definition)
    if output == Output.json:
        # severity, code, message, location: AWS ValidateStateMachineDefinition's diagnostic fields.
        print(json.dumps([{k: str(v) for k, v in asdict(d).items()} for d in diagnostics], indent=2))
        raise typer.Exit(1 if any(d.severity == "ERROR" for d in diagnostics) else 0)
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
    adaptive: Annotated[bool, typer.Option(help="Adaptive concurrency: AIMD on throttling errors.")] = False,
    min_concurrency: Annotated[int | None, typer.Option(min=1, help="Floor of adaptive concurrency.")] = None,
    limit: Annotated[str | None, typer.Option(help="A rate-limit label every Task call takes a token of.")] = None,
    throttle_error: Annotated[
        list[str] | None, typer.Option(help="Another error name (or pattern) that means throttling.")
    ] = None,
) -> None:
    """Run a state machine and print its outcome; exit 0 only if it SUCCEEDED. Ctrl-C stops it (ABORTED)."""
    from .api import start
    from .config import get_settings

    _import_handlers(imports)
    _show_admission_warnings()
    if get_settings().metrics_port:
        from .metrics import start_metrics_server

        try:
            start_metrics_server(get_settings().metrics_port)
        except DmapError as exc:
            raise _fail(str(exc), 2) from None
    value = _json_arg(input, "--input")
    flow = flow_options(adaptive, min_concurrency, limit, throttle_error)
    try:
        if detach:
            from .detach import submit

            execution = submit(
                definition,
                manifest=manifest,
                input=value,
                name=name,
                max_concurrency=max_concurrency,
                backend=backend,
                flow=flow,
            )
            _print_execution(execution, output)
            raise typer.Exit(0)
        execution = start(
            definition,
            manifest=manifest,
            input=value,
            backend=backend,
            name=name,
            max_concurrency=max_concurrency,
            flow=flow,
        )
        _watch(execution, backend, show=output == Output.table and out.is_terminal)
    except DefinitionError as exc:
        for d in exc.diagnostics:
            err.print(f"[red]{d.severity}[/red] {escape(_where(d))}: {escape(d.message)} [dim]({d.code})[/dim]")
        raise typer.Exit(1) from None
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except ExecutionAlreadyExists as exc:  # the name is taken (AWS's rule): nothing ran, nothing was changed
        raise _fail(str(exc), 1) from None
    except DmapError as exc:  # infrastructure (Redis, storage): 3, so a Job can tell it from a FAILED run
        raise _fail(str(exc), 3) from None
    _print_execution(execution, output)
    raise typer.Exit(0 if execution.status == "SUCCEEDED" else 1)


def _watch(execution: Any, backend: str | None, *, show: bool) -> None:
    """Wait for a running execution; a live progress bar on a terminal; Ctrl-C stops the execution cleanly."""
    import time

    from . import control
    from .backends import get_backend, settle

    engine = get_backend(backend)
    progress = _progress() if show else None
    task = progress.add_task("items", total=None, rate="") if progress else None
    started = time.monotonic()
    listeners = _listener_watch(engine)
    try:
        if progress:
            progress.start()
        while execution.status == "RUNNING":
            if progress is not None and task is not None and execution.map_runs:
                run = execution.map_runs[-1]
                live = engine.store.counts(run.run_id)
                counts = live.items
                done = counts.succeeded + counts.failed + counts.timedOut + counts.aborted
                rate = done / max(time.monotonic() - started, 1e-3)
                progress.update(
                    task,
                    # Until the source is counted (or read to its end) its total is unknown: "n/?", no ETA.
                    total=counts.total if live.total_known and counts.total else None,
                    completed=done,
                    rate=f"{rate:,.0f} items/s",
                    description=f"{escape(run.state_name)}: [green]{counts.succeeded} ok[/green] "
                    f"[red]{counts.failed + counts.timedOut} failed[/red] {counts.running} running"
                    + _deserted(listeners, engine)
                    + progress_note(engine.store, run.run_id),
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
    # The outcome printed next must already be the journal's: exiting before the record is saved
    # would leave the execution RUNNING for describe-execution and refuse its redrive.
    if not settle(execution.execution_arn):
        err.print(f"warning: the final record of {escape(execution.execution_arn)} is not saved yet")


def _listener_watch(engine: Any) -> Any:
    """A watch on the worker registry for the progress line (celery), else None."""
    from .store.workers import ListenerWatch

    store = getattr(engine, "redis", None)
    return None if store is None else ListenerWatch(store.client, store.prefix, engine.settings.queue)


def _deserted(listeners: Any, engine: Any) -> str:
    """The progress line's note when no live worker has listened on the queue for a while ('' otherwise)."""
    from .coordinator import WORKERLESS_SECONDS

    silent = 0.0 if listeners is None else listeners.silent_for()
    if silent < WORKERLESS_SECONDS:
        return ""
    queue = escape(engine.settings.queue)
    return f" [yellow]no dmap worker on queue {queue!r} for {silent:.0f} s (start one: dmap worker)[/yellow]"


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
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            help="Celery node name, unique per worker (default: dmap-<pid>@<host>; %h is the host name).",
        ),
    ] = None,
) -> None:
    """Start a Celery worker that runs dmap children (queue DMAP_QUEUE, broker DMAP_BROKER_URL)."""
    from .config import get_settings

    # Import here first, so a broken handler module is one clear line (exit 2), not a Celery traceback;
    # the workers then import the resolved module names (a file path becomes its module).
    modules = _import_handlers(imports)
    os.environ["DMAP_IMPORTS"] = ",".join(dict.fromkeys(modules))
    get_settings.cache_clear()
    from workers.app import create_app

    settings = get_settings()
    celery_app = create_app(settings)
    _check_reachable(settings, celery_app)
    argv = [
        "worker",
        "-Q",
        settings.queue,
        "-P",
        pool,
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        # Unique per process: workers sharing a node name share its pidbox queue, which RabbitMQ
        # grants to one of them only (RESOURCE_LOCKED), and Celery's own default is celery@<host>.
        "-n",
        name or f"dmap-{os.getpid()}@%h",
    ]
    if concurrency:
        argv += ["-c", str(concurrency)]
    celery_app.worker_main(argv)


def _check_reachable(settings: Any, celery_app: Any) -> None:
    """Refuse to start (exit 3) when Redis or the broker cannot be reached at all.

    Once running, a worker rides out outages (Celery reconnects); at start an unreachable address is
    almost always a wrong URL, and retrying it for minutes hides that.
    """
    from .backends.celery import CeleryBackend
    from .config import redact

    CeleryBackend(settings).close()  # pings the run store's Redis: BackendError naming DMAP_REDIS_URL
    url = settings.effective_broker_url
    if url == settings.redis_url:
        return
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=5)
    except Exception as exc:
        raise BackendError(f"cannot reach the broker at {redact(url)} (DMAP_BROKER_URL): {redact(str(exc))}") from None


BackendOption = Annotated[str | None, typer.Option("--backend", help="local or celery (default: DMAP_BACKEND).")]
OutputOption = Annotated[Output, typer.Option(help="table or json.")]


def _control(call: Any) -> Any:
    """Run a control-plane call. Its errors become one line and an exit code in :func:`_reporting`."""
    return call()


@app.command("describe-execution")
def describe_execution(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN or name.")],
    backend: BackendOption = None,
    output: OutputOption = Output.json,
) -> None:
    """An execution's status, input, output, error and Map Runs (AWS's DescribeExecution shape)."""
    from . import control

    arn = _execution_arn(execution_arn, backend)
    _print_execution(_control(lambda: control.describe_execution(arn, backend=backend)), output)


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
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN or name.")],
    backend: BackendOption = None,
    error: Annotated[
        str | None, typer.Option(help="The error code the execution ends with (AWS's StopExecution).")
    ] = None,
    cause: Annotated[str | None, typer.Option(help="A more detailed explanation of the stop.")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Stop a running execution: it ends ABORTED, unstarted items stay PENDING (redrivable)."""
    from . import control
    from .interpreter.context import iso_now

    execution_arn = _execution_arn(execution_arn, backend)
    _control(lambda: control.stop_execution(execution_arn, error=error, cause=cause, backend=backend))
    if output == Output.json:
        print(json.dumps({"executionArn": execution_arn, "stopDate": iso_now()}))  # AWS StopExecution's shape
    else:
        out.print(f"stop requested: {escape(execution_arn)}")


@app.command("get-execution-history")
def get_execution_history(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN or name.")],
    backend: BackendOption = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Newest event first.")] = False,
    output: OutputOption = Output.table,
) -> None:
    """An execution's history events (AWS's GetExecutionHistory): ids, causal links, types, details."""
    from . import control

    arn = _execution_arn(execution_arn, backend)
    events: list[dict[str, Any]] = []
    token: str | None = None
    dropped = 0
    while True:  # a page at a time; a history is bounded (DMAP_HISTORY_MAX_EVENTS), so this ends
        page = _control(
            lambda token=token: control.get_execution_history(
                arn, reverse_order=reverse, max_results=1000, next_token=token, backend=backend
            )
        )
        events.extend(page)
        dropped, token = page.dropped, page.next_token
        if token is None:
            break
    if output == Output.json:
        shown = [{**e, "timestamp": e["timestamp"].isoformat()} for e in events]
        print(json.dumps({"events": shown}, indent=2))
    else:
        from rich.table import Table

        table = Table("id", "prev", "type", "time", title=f"History of {escape(arn)}")
        table.add_column("detail", overflow="fold")
        for e in events:
            stamp = e["timestamp"].strftime("%H:%M:%S.%f")[:-3]
            table.add_row(str(e["id"]), str(e["previousEventId"]), e["type"], stamp, escape(_event_summary(e)))
        out.print(table)
    if dropped:
        err.print(f"{dropped} events were not kept (past DMAP_HISTORY_MAX_EVENTS/DMAP_HISTORY_MAX_BYTES)")


def _event_summary(event: dict[str, Any]) -> str:
    """One line for an event in the table: its state name, index, error or payload, cut short."""
    details = next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
    parts = []
    for key in ("name", "index", "length", "mapRunArn", "resource", "error", "cause", "input", "output"):
        if key in details:
            parts.append(f"{key}={details[key]}")
    text = " ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


@app.command("list-map-runs")
def list_map_runs(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN or name.")],
    backend: BackendOption = None,
    output: OutputOption = Output.json,
) -> None:
    """The Map Runs of an execution (AWS's ListMapRuns shape)."""
    from . import control

    execution_arn = _execution_arn(execution_arn, backend)
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
    if output == Output.json:
        print(json.dumps({"mapRuns": items}, indent=2))
        return
    from rich.table import Table

    table = Table("state", "status", "started", "stopped", title=f"Map Runs of {escape(execution_arn)}")
    table.add_column("mapRunArn", overflow="fold")
    for r in runs:
        table.add_row(*map(escape, (r.state_name, str(r.status), r.start_date, r.stop_date or "", r.map_run_arn)))
    out.print(table)


@app.command("describe-map-run")
def describe_map_run(
    map_run_arn: Annotated[
        str, typer.Argument(help="The Map Run ARN, or the ARN or name of an execution with one Map Run.")
    ],
    backend: BackendOption = None,
    output: OutputOption = Output.json,
) -> None:
    """A Map Run's status, limits and item/execution counts (AWS's DescribeMapRun shape); a table adds the ETA."""
    from . import control

    map_run_arn = _map_run_arn(map_run_arn, backend)
    map_run = _control(lambda: control.describe_map_run(map_run_arn, backend=backend))
    _print_map_run(map_run, output)
    if output == Output.table:
        _print_progress(_control(lambda: control.map_run_progress(map_run_arn, backend=backend)))


def _print_progress(progress: Any) -> None:
    """dmap's own progress line under describe-map-run's table: done, the total (when known), rate and ETA."""
    total = f"{progress.total:,}" if progress.total_known else f"{progress.total:,}+ (the total is not known yet)"
    rate = "-" if progress.items_per_second is None else f"{progress.items_per_second:,.0f} items/s"
    eta = "-" if progress.eta_seconds is None else _duration(progress.eta_seconds)
    out.print(f"done {progress.done:,} of {total}   rate {rate}   ETA {eta}", highlight=False)


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@app.command("update-map-run")
def update_map_run(
    map_run_arn: Annotated[
        str, typer.Argument(help="The Map Run ARN, or the ARN or name of an execution with one Map Run.")
    ],
    max_concurrency: Annotated[int | None, typer.Option(min=0, help="New MaxConcurrency (0 = 10,000).")] = None,
    tolerated_failure_count: Annotated[int | None, typer.Option(min=0, help="New ToleratedFailureCount.")] = None,
    tolerated_failure_percentage: Annotated[
        float | None, typer.Option(min=0, max=100, help="New ToleratedFailurePercentage (0-100).")
    ] = None,
    backend: BackendOption = None,
    output: OutputOption = Output.json,
    adaptive: Annotated[
        bool | None, typer.Option("--adaptive/--no-adaptive", help="Switch adaptive concurrency on or off.")
    ] = None,
    min_concurrency: Annotated[int | None, typer.Option(min=1, help="Floor of adaptive concurrency.")] = None,
) -> None:
    """Change a running Map Run's concurrency or failure tolerance; takes effect at once (prints it as JSON)."""
    from . import control

    changes = (max_concurrency, tolerated_failure_count, tolerated_failure_percentage, adaptive, min_concurrency)
    if all(change is None for change in changes):  # in this command's words, not the Python API's
        raise _fail(
            "nothing to update: give --max-concurrency, --tolerated-failure-count, "
            "--tolerated-failure-percentage, --adaptive/--no-adaptive or --min-concurrency",
            2,
        )
    map_run_arn = _map_run_arn(map_run_arn, backend)
    run = _control(
        lambda: control.update_map_run(
            map_run_arn,
            max_concurrency=max_concurrency,
            tolerated_failure_count=tolerated_failure_count,
            tolerated_failure_percentage=tolerated_failure_percentage,
            backend=backend,
            adaptive=adaptive,
            min_concurrency=min_concurrency,
        )
    )
    _print_map_run(run, output)


def _print_map_run(map_run: Any, output: Output) -> None:
    """A Map Run as AWS's DescribeMapRun JSON, or as a table of its settings and item counts."""
    described = map_run.describe()
    if output == Output.json:
        print(json.dumps(described, indent=2))
        return
    from rich.table import Table

    colour = {"SUCCEEDED": "green", "RUNNING": "cyan"}.get(str(map_run.status), "red")
    out.print(f"[bold]{escape(map_run.map_run_arn)}[/bold]  [{colour}]{escape(str(map_run.status))}[/{colour}]")
    settings = Table("field", "value", show_header=False)
    for key, value in described.items():
        if not isinstance(value, dict):
            settings.add_row(escape(key), escape(str(value)))
    out.print(settings)
    keys = ("total", "succeeded", "failed", "timedOut", "aborted", "running", "pending", "resultsWritten")
    counts = Table("", *keys, title="counts")
    for what in ("itemCounts", "executionCounts"):
        counts.add_row(what, *(str(described[what].get(k, 0)) for k in keys))
    out.print(counts)


@app.command("redrive-execution")
def redrive_execution(
    execution_arn: Annotated[str, typer.Argument(help="The execution ARN or name.")],
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
    execution_arn = _execution_arn(execution_arn, backend)
    _show_admission_warnings()
    execution = _control(
        lambda: control.redrive_execution(execution_arn, backend=backend, wait=False, manifest=manifest)
    )
    _watch(execution, backend, show=output == Output.table and out.is_terminal)
    _print_execution(execution, output)
    raise typer.Exit(0 if execution.status == "SUCCEEDED" else 1)


@app.command()
def failures(
    map_run_arn: Annotated[
        str, typer.Argument(help="The Map Run ARN, or the ARN or name of an execution with one Map Run.")
    ],
    error: Annotated[str | None, typer.Option(help="Only this error name.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    backend: BackendOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Which items of a Map Run failed, and why: item index, input, error, cause, attempts."""
    from dataclasses import asdict

    from rich.table import Table

    from . import control

    map_run_arn = _map_run_arn(map_run_arn, backend)
    found = _control(lambda: list(control.list_failures(map_run_arn, error=error, limit=limit, backend=backend)))
    title = f"{len(found)} failed item(s)"
    if limit is not None and len(found) == limit:  # maybe cut: the store counts the rest without reading them
        total = control.count_failures(map_run_arn, error=error, backend=backend)
        if total > len(found):
            title = f"showing {len(found)} of {total} failed item(s)"
    if output == Output.json:
        print(json.dumps([asdict(f) for f in found], indent=2, default=str))
        if title.startswith("showing"):
            err.print(escape(title), highlight=False)  # stdout stays the JSON list
        return
    table = Table("item", "status", "error", "cause", "input", "attempts", title=title)
    for f in found:
        cause = _readable_cause(f.cause)
        cells = (str(f.index), f.status, f.error, cause, json.dumps(f.input)[:80], str(f.attempts))
        table.add_row(*map(escape, cells))
    out.print(table)


#: How many recent executions a name is looked up among (names are not indexed; ARNs always work).
NAME_LOOKUP_LIMIT = 1000


def _execution_arn(ref: str, backend: str | None, *, kind: str = "execution") -> str:
    """The ARN of the execution ``ref`` names: an ARN as given, or a name among the recent executions.

    Several executions with one name (in different state machines) are listed and the verb exits 2.
    """
    from . import control
    from .errors import NotFoundError
    from .records import journal_arn

    if ref.startswith("arn:"):
        return journal_arn(ref)  # as AWS or `dmap serve` shows it (any region and account) or the journal's own
    named = [e for e in control.list_executions(backend=backend, limit=NAME_LOOKUP_LIMIT) if e.name == ref]
    if not named:
        raise NotFoundError(kind, ref)
    if len(named) > 1:
        listing = "\n".join(f"  {e.execution_arn}  {e.status}  started {e.start_date}" for e in named)
        raise _fail(f"{len(named)} executions are named {ref!r}; give the ARN of one:\n{listing}", 2)
    return str(named[0].execution_arn)


def _map_run_arn(ref: str, backend: str | None) -> str:
    """The Map Run ARN ``ref`` means: a Map Run ARN, or an execution (ARN or name) that has exactly one Map Run.

    An execution with several Map Runs has them listed and the verb exits 2, asking to pick one.
    """
    from . import control
    from .errors import NotFoundError
    from .records import journal_arn, parse_map_run_arn

    if parse_map_run_arn(ref) is not None or (ref.startswith("arn:") and ":execution:" not in ref):
        return journal_arn(ref)  # a Map Run ARN (any region and account), or something control will refuse
    kind = "map run (or execution)"
    execution_arn = _execution_arn(ref, backend, kind=kind)
    try:
        runs = control.list_map_runs(execution_arn, backend=backend)
    except NotFoundError:
        raise NotFoundError(kind, ref) from None
    if len(runs) == 1:
        return str(runs[0].map_run_arn)
    if not runs:
        raise _fail(f"execution {execution_arn} has no Map Run (no DISTRIBUTED Map state started)", 1)
    listing = "\n".join(f"  {r.map_run_arn}  {r.state_name}  {r.status}" for r in runs)
    raise _fail(f"execution {execution_arn} has {len(runs)} Map Runs; give the ARN of one:\n{listing}", 2)


def _readable_cause(cause: str, width: int = 120) -> str:
    """A Lambda-style JSON cause shown as its errorMessage; anything else as is; cut to ``width``."""
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        cause = str(parsed["errorMessage"])
    return cause if len(cause) <= width else cause[: width - 1] + "…"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (DMAP_SERVE_HOST, default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (DMAP_SERVE_PORT, default 8083).")] = None,
    backend: BackendOption = None,
    imports: Annotated[list[str] | None, typer.Option("--import", help="Module that registers task handlers.")] = None,
) -> None:
    """Serve the Step Functions API (AWS JSON 1.0: boto3, the aws CLI) and the console over HTTP.

    Point an SDK at it: boto3.client("stepfunctions", endpoint_url="http://127.0.0.1:8083"), or
    AWS_ENDPOINT_URL_SFN=http://127.0.0.1:8083 for the aws CLI. The console is at the same address.
    Runs until Ctrl-C. Lambda resources resolve to the handlers of the --import and DMAP_IMPORTS modules.
    """
    from .server import serve as run_server

    _import_handlers(imports)
    run_server(host, port, backend)


@app.command("workers")
def workers(
    queue: Annotated[str | None, typer.Option(help="Only workers consuming this queue.")] = None,
    output: OutputOption = Output.table,
) -> None:
    """The live dmap workers (celery backend): host, pid, queues, concurrency, version, handlers and code hashes.

    A worker renews its record every few seconds; one that stopped renewing drops out within its TTL.
    Exit 0 (also when none is listening), 3 when Redis cannot be reached.
    """
    from dataclasses import asdict

    from rich.table import Table

    from .store.workers import list_workers

    try:
        found = list_workers(queue=queue)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    except DmapError as exc:
        raise _fail(str(exc), 3) from None
    if output == Output.json:
        print(json.dumps([{**asdict(w), "queues": list(w.queues)} for w in found], indent=2))
        return
    if not found:
        where = f"queue {queue!r}" if queue else "any queue"
        out.print(f"no dmap worker is listening on {escape(where)} (start one with: dmap worker)")
        return
    table = Table("host", "pid", "queues", "slots", "version", "started", title=f"{len(found)} worker(s)")
    table.add_column("handler  code hash", overflow="fold")
    for w in found:
        handlers = "\n".join(f"{name}  {digest}" for name, digest in sorted(w.handlers.items())) or "none"
        started = w.started.replace("T", " ")[:19]
        cells = (w.host, str(w.pid), ",".join(w.queues), str(w.concurrency), w.version, started, handlers)
        table.add_row(*map(escape, cells))
    out.print(table)


def _show_admission_warnings() -> None:
    """Print what the submission checks warn about (no worker listening, workers on other code) on stderr, at once."""
    import logging

    class Printer(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            err.print(f"[yellow]warning:[/yellow] {escape(record.getMessage())}", highlight=False)

    # With a handler of its own the logger no longer reaches logging's last-resort stderr handler: printed once.
    log = logging.getLogger("dmap.admission")
    if not any(type(h).__name__ == "Printer" for h in log.handlers):
        log.addHandler(Printer(logging.WARNING))


def _import_handlers(modules: list[str] | None) -> list[str]:
    """Import DMAP_IMPORTS and ``--import`` modules; a failure is a usage error (exit 2) naming file:line.

    Returns:
        The module names imported (file paths resolved), for workers to import again.
    """
    from .config import get_settings
    from .imports import import_handlers

    return import_handlers([*get_settings().import_list, *(modules or [])])


from .flow.cli import flow_options, limits_app, plan_command, progress_note  # noqa: E402 - the commands of dmap/flow

app.add_typer(limits_app, name="limits")
app.command("plan")(plan_command)


def main() -> None:
    """Entry point of the ``dmap`` script."""
    app()


from . import cli_callbacks  # noqa: E402, F401  (registers send-task-success/-failure/-heartbeat on app)

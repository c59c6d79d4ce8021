"""The ``dmap`` command line (typer + rich), mirroring ``aws stepfunctions`` verbs (DESIGN §4).

Exit codes: 0 SUCCEEDED (or a valid definition), 1 FAILED/ABORTED/TIMED_OUT or an invalid
definition, 2 a usage error. Errors are one clear message on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .errors import DefinitionError, DmapError

app = typer.Typer(
    name="dmap",
    help="Run AWS Step Functions Distributed Map workloads on your own machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


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
        out.print(f"[{colour}]{d.severity}[/{colour}] {d.location or '/'}: {d.message} [dim]({d.code})[/dim]")
    errors = sum(1 for d in diagnostics if d.severity == "ERROR")
    if errors:
        raise typer.Exit(1)
    out.print(f"[green]valid[/green]: {definition}" + (f" ({len(diagnostics)} warning(s))" if diagnostics else ""))


@app.command()
def run(
    definition: Annotated[Path, typer.Argument(help="A definition file.")],
    input: Annotated[str | None, typer.Option("--input", help="Execution input: JSON or @file.")] = None,
    manifest: Annotated[str | None, typer.Option(help="Items for the first DISTRIBUTED Map: s3://… or a file.")] = None,
    backend: Annotated[str | None, typer.Option(help="local (default) or celery.")] = None,
    max_concurrency: Annotated[int | None, typer.Option(min=0, help="Override MaxConcurrency.")] = None,
    name: Annotated[str | None, typer.Option(help="Execution name; the same name resumes a run.")] = None,
    imports: Annotated[list[str] | None, typer.Option("--import", help="Module that registers task handlers.")] = None,
    output: Annotated[str, typer.Option(help="table or json.")] = "table",
) -> None:
    """Run a state machine and print its outcome; exit 0 only if it SUCCEEDED."""
    import dmap

    _import_handlers(imports)
    try:
        execution = dmap.run(
            definition,
            manifest=manifest,
            input=_json_arg(input, "--input"),
            backend=backend,
            name=name,
            max_concurrency=max_concurrency,
        )
    except DefinitionError as exc:
        for d in exc.diagnostics:
            err.print(f"[red]{d.severity}[/red] {d.location or '/'}: {d.message} [dim]({d.code})[/dim]")
        raise typer.Exit(1) from None
    except DmapError as exc:
        raise _fail(str(exc)) from None
    if output == "json":
        print(json.dumps(execution.describe(), indent=2, default=str))
    else:
        _summary(execution)
    raise typer.Exit(0 if execution.status == "SUCCEEDED" else 1)


def _summary(execution: Any) -> None:
    from rich.table import Table

    colour = "green" if execution.status == "SUCCEEDED" else "red"
    out.print(f"[bold]{execution.execution_arn}[/bold]  [{colour}]{execution.status}[/{colour}]")
    if execution.error or execution.cause:
        out.print(f"[red]{execution.error}[/red]: {execution.cause}", highlight=False)
    for map_run in execution.map_runs:
        table = Table(title=f"Map Run {map_run.map_run_arn}", title_justify="left")
        for column in ("status", "total", "succeeded", "failed", "timedOut", "aborted", "pending"):
            table.add_column(column, justify="right")
        counts = map_run.item_counts
        table.add_row(
            str(map_run.status),
            *(str(counts.get(k, 0)) for k in ("total", "succeeded", "failed", "timedOut", "aborted", "pending")),
        )
        out.print(table)
    if execution.status == "SUCCEEDED":
        text = json.dumps(execution.output, indent=2, default=str)
        out.print(text if len(text) < 4000 else text[:4000] + "\n… (truncated; use --output json)", highlight=False)


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

"""What the deployment files must agree on with the code: settings names, CLI commands, ports."""

from __future__ import annotations

import importlib
import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dmap.config import Settings

from .conftest import ROOT

BOTO3_VARIABLES = frozenset(
    {
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_REQUEST_CHECKSUM_CALCULATION",
        "AWS_RESPONSE_CHECKSUM_VALIDATION",
    }
)
"""boto3's own environment variables the deployment files may set (DESIGN §5: no private endpoint flags)."""


def settings_variables() -> set[str]:
    """``DMAP_<FIELD>`` for every field of :class:`dmap.config.Settings`."""
    return {f"DMAP_{name.upper()}" for name in Settings.model_fields}


def check_environment(env: dict[str, Any], where: str) -> Settings:
    """Every name is a real setting or a boto3 variable, and the DMAP_* values parse; returns the settings."""
    unknown = set(env) - settings_variables() - BOTO3_VARIABLES
    assert not unknown, f"{where}: {sorted(unknown)} are neither dmap.config.Settings fields nor boto3 variables"
    values = {k[len("DMAP_") :].lower(): str(v) for k, v in env.items() if k.startswith("DMAP_")}
    return Settings.model_validate(values)


def parse_cli(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``dmap ARGS`` with the real typer/click command (no execution): (subcommand, its parameters)."""
    from typer.main import get_command

    from dmap.cli import app

    group: Any = get_command(app)  # a click Group (typer vendors click)
    with group.make_context("dmap", list(args)) as ctx:
        protected = list(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", []))
        name, command, rest = group.resolve_command(ctx, protected + ctx.args)
        assert command is not None, f"unknown dmap subcommand in {args}"
        with command.make_context(name or "", rest, parent=ctx) as sub:
            return str(name), dict(sub.params)


def assert_importable(module: str) -> None:
    """A handler module named in a command or DMAP_IMPORTS imports (from the repository root = /app)."""
    importlib.import_module(module)


def check_worker_args(args: list[str], settings: Settings) -> dict[str, Any]:
    """A ``dmap worker`` command line: parses, and every module it imports exists."""
    name, params = parse_cli(args)
    assert name == "worker", args
    for module in [*(params.get("imports") or []), *settings.import_list]:
        assert_importable(module)
    return params


def check_run_args(args: list[str], settings: Settings) -> dict[str, Any]:
    """A ``dmap run`` command line: parses, its definition (relative to /app = the repo) is valid, imports exist."""
    import dmap

    name, params = parse_cli(args)
    assert name == "run", args
    definition = Path(params["definition"])
    assert not definition.is_absolute(), "definitions are read relative to the image's WORKDIR /app"
    path = ROOT / definition
    for module in [*(params.get("imports") or []), *settings.import_list]:
        assert_importable(module)
    errors = [d for d in dmap.validate(path) if d.severity == "ERROR"]
    assert not errors, errors
    assert params.get("backend") in (None, "celery")
    assert params.get("backend") == "celery" or settings.backend == "celery"
    return params


def check_metrics_args(args: list[str]) -> int:
    """``python -m dmap.metrics ARGS`` parses with the exporter's own parser; returns the port."""
    from dmap.metrics import build_parser

    return int(build_parser().parse_args(args).port)


def redis_host_port(url: str) -> tuple[str, int, int]:
    """``(host, port, db)`` of a Redis URL."""
    parts = urlsplit(url)
    return str(parts.hostname), parts.port or 6379, int(parts.path.strip("/") or 0)


def ping_command_targets_own_node(command: str) -> bool:
    """A worker probe pings its own Celery node through the workers.app app."""
    words = shlex.split(command.replace("$$", "$"))
    return words[:3] == ["celery", "-A", "workers.app"] and "ping" in words and "celery@$HOSTNAME" in words


def dashboard_metric_names(path: Path) -> set[str]:
    """Every ``dmap_*`` metric name a Grafana dashboard's queries use."""
    import re

    text = json.dumps(json.loads(path.read_text("utf-8")))
    return set(re.findall(r"\bdmap_[a-z_]+", text))

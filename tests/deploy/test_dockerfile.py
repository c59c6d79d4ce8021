"""The Dockerfile agrees with pyproject.toml and the settings: entry point, extras, user, ports, inputs."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from dmap import metrics

from .conftest import ROOT
from .drift import check_environment


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text("utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def runtime_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1] :]


def test_the_image_enters_through_the_dmap_console_script(
    instructions: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    final = runtime_stage(instructions)
    entrypoint = [json.loads(args) for word, args in final if word == "ENTRYPOINT"]
    assert entrypoint == [["dmap"]]
    assert pyproject["project"]["scripts"]["dmap"] == "dmap.cli:main"
    assert [json.loads(args) for word, args in final if word == "CMD"] == [["worker"]]


def test_the_image_installs_the_parquet_and_metrics_extras_that_pyproject_defines(
    instructions: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    installs = [args for word, args in instructions if word == "RUN" and "pip install" in args]
    assert any('".[parquet,metrics]"' in args and "--no-cache-dir" in args for args in installs)
    extras = pyproject["project"]["optional-dependencies"]
    assert "pyarrow" in " ".join(extras["parquet"]) and "prometheus-client" in " ".join(extras["metrics"])


def test_the_image_runs_python_3_11_slim_as_a_non_root_user(
    instructions: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    args = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for w, a in instructions if w == "ARG")))
    assert args["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    assert pyproject["project"]["requires-python"] == ">=3.11"
    users = [a for w, a in runtime_stage(instructions) if w == "USER"]
    assert users and not users[-1].startswith(("0", "root"))


def test_the_image_copies_only_what_the_build_and_the_demo_need(instructions: list[tuple[str, str]]) -> None:
    copied = set()
    for word, args in instructions:
        if word == "COPY" and "--from" not in args:
            copied |= {token for token in args.split()[:-1] if not token.startswith("--")}
    assert copied == {"pyproject.toml", "README.md", "dmap", "workers", "examples"}
    allowed = (ROOT / ".dockerignore").read_text("utf-8").split()
    for needed in ("!pyproject.toml", "!README.md", "!dmap/", "!workers/", "!examples/"):
        assert needed in allowed


def test_the_image_environment_uses_real_settings_and_exposes_the_metrics_port(
    instructions: list[tuple[str, str]],
) -> None:
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for w, a in runtime_stage(instructions) if w == "ENV")))
    check_environment({k: v for k, v in env.items() if k.startswith("DMAP_")}, "Dockerfile ENV")
    assert [a for w, a in runtime_stage(instructions) if w == "EXPOSE"] == [str(metrics.DEFAULT_PORT)]

"""What a new user hit on the merged front door, pinned: each test failed before its fix.

A source URI that cannot be used fails the Map Run honestly (never left RUNNING); a closed output
pipe is not an infrastructure fault; ``dmap worker`` refuses to start against an unreachable Redis
or broker (exit 3); execution names follow AWS's character rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from tests.definitions import distributed_map

PASS_MAP: dict[str, Any] = distributed_map()


def dmap_cli(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The real ``dmap`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "dmap", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def test_an_unusable_manifest_uri_fails_the_map_run_instead_of_leaving_it_running() -> None:
    backend = LocalBackend(Settings())
    try:
        execution = dmap.run(PASS_MAP, "s3://", backend=backend)
    finally:
        backend.close()
    assert (execution.status, execution.error) == ("FAILED", "States.ItemReaderFailed")
    assert "S3 URI without a bucket" in (execution.cause or "")
    (map_run,) = execution.map_runs
    assert map_run.status == "FAILED"
    counts = map_run.item_counts
    assert counts["running"] == 0 and min(counts.values()) >= 0


def test_a_closed_output_pipe_ends_quietly_with_the_shells_sigpipe_code(tmp_path: Path) -> None:
    many = {"StartAt": "A", "States": {f"S{i}": {"Type": "Pass", "Nxt": "x"} for i in range(400)}}
    (tmp_path / "big.json").write_text(json.dumps(many), "utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dmap", "validate", "big.json", "--output", "json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    proc.stdout.close()  # `| head -c 1`: the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "error" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "env",
    [
        {"DMAP_REDIS_URL": "redis://u:secret@127.0.0.1:1/0"},
        {"DMAP_BROKER_URL": "amqp://guest:secret@127.0.0.1:1//"},
    ],
    ids=["redis", "broker"],
)
def test_a_worker_that_cannot_reach_redis_or_its_broker_exits_3_at_once(env: dict[str, str], redis_url: str) -> None:
    done = dmap_cli("worker", env={"DMAP_REDIS_URL": redis_url, **env})
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach") and "secret" not in line and "***" in line


@pytest.mark.parametrize("name", ["bad/name", "two words", "a:b", "x" * 81, ""])
def test_execution_names_follow_aws_character_rule(name: str) -> None:
    with pytest.raises(dmap.InvalidName) as raised:
        dmap.run(PASS_MAP, [1], name=name)
    assert raised.value.name == name
    assert isinstance(raised.value, dmap.ConfigurationError)


def test_the_cli_refuses_an_invalid_name_as_a_usage_error() -> None:
    done = dmap_cli(
        "run",
        "examples/quickstart/definition.json",
        "--import",
        "examples.quickstart.handlers",
        "--input",
        "@examples/quickstart/input.json",
        "--name",
        "bad/name",
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: invalid execution name 'bad/name': it contains ['/']")

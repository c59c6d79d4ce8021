"""What a newcomer hits first in the ``dmap`` CLI: one clear line and the right exit code, never a traceback.

Exit codes: 1 a FAILED run, an invalid definition, an unknown ARN; 2 a usage error (bad option, a
handler module that cannot be imported, a missing ``--input`` file); 3 an infrastructure fault
(Redis, the broker or object storage unreachable), from every verb.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dmap.cli import app
from dmap.config import get_settings

EXECUTION = "arn:aws:states:local:000000000000:execution:fan:no-such-execution"
MAP_RUN = "arn:aws:states:local:000000000000:mapRun:fan/label:no-such-map-run"
DEAD_REDIS = "redis://someone:hunter2@127.0.0.1:1/0"
"""Nothing listens on port 1; the password must never be printed."""


def said(text: str) -> str:
    """``text`` with every run of whitespace (rich's line wrapping) as one space."""
    return " ".join(text.split())


def invoke(*args: str | Path) -> Result:
    """``dmap ARGS`` in this process; a traceback or an escaped exception fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def dmap_process(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A real ``python -m dmap ARGS`` process (its own handler registry, its own settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMAP_") and k != "COLUMNS"}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), str(cwd)]))
    done = subprocess.run(
        [sys.executable, "-m", "dmap", *map(str, args)],
        cwd=cwd,
        env={**base, "COLUMNS": "250", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


@pytest.fixture
def dead_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The celery backend pointed at a Redis that does not answer."""
    monkeypatch.setenv("DMAP_BACKEND", "celery")
    monkeypatch.setenv("DMAP_REDIS_URL", DEAD_REDIS)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- 1. every verb exits 3 when Redis is unreachable -----------------------------------------------

VERBS = [
    ["describe-execution", EXECUTION],
    ["list-executions"],
    ["stop-execution", EXECUTION],
    ["list-map-runs", EXECUTION],
    ["describe-map-run", MAP_RUN],
    ["update-map-run", MAP_RUN, "--max-concurrency", "2"],
    ["redrive-execution", EXECUTION],
    ["failures", MAP_RUN],
]


@pytest.mark.parametrize("args", VERBS, ids=[a[0] for a in VERBS])
def test_every_verb_exits_3_with_one_redacted_line_when_redis_is_unreachable(dead_redis: None, args: list[str]) -> None:
    result = invoke(*args)

    assert result.exit_code == 3, result.output
    message = said(result.stderr)
    assert message.startswith("error: cannot reach Redis at redis://someone:***@127.0.0.1:1/0 (DMAP_REDIS_URL)")
    assert "hunter2" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_redis_error_in_the_middle_of_a_verb_is_an_infrastructure_fault_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    from dmap import control

    def lost(**_: object) -> None:
        raise redis.ConnectionError(f"Connection closed by server ({DEAD_REDIS})")

    monkeypatch.setattr(control, "list_executions", lost)
    result = invoke("list-executions")

    assert result.exit_code == 3, result.output
    assert "Redis at" in result.stderr and "ConnectionError" in result.stderr
    assert "hunter2" not in result.output


def test_a_real_dmap_process_exits_3_when_redis_is_unreachable(tmp_path: Path) -> None:
    done = dmap_process("list-executions", cwd=tmp_path, env={"DMAP_BACKEND": "celery", "DMAP_REDIS_URL": DEAD_REDIS})

    assert done.returncode == 3, done.stderr
    assert "cannot reach Redis at redis://someone:***@127.0.0.1:1/0" in said(done.stderr)

"""Small tools the fault scenarios share: processes, coordinator subprocesses, run ids, progress.

Owns nothing of dmap: it runs an execution in the background, finds a worker's pool processes in
``/proc``, reads a process's resident memory, starts :mod:`tests.faults.drive` coordinators, and
names a run's Map Run id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap.interpreter.context import execution_arn
from dmap.records import new_run_id
from tests.integration.conftest import ROOT

from . import flows


class Background:
    """``dmap.run(...)`` on a thread of this process, so the test can inject faults while the run goes on."""

    def __init__(self, run: Callable[[], dmap.Execution]) -> None:
        self._run = run
        self._box: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._target, name="faults-run", daemon=True)
        self._thread.start()

    def _target(self) -> None:
        try:
            self._box["execution"] = self._run()
        except BaseException as exc:  # re-raised in the test thread by result()
            self._box["error"] = exc

    def done(self) -> bool:
        """True once the run returned or raised."""
        return not self._thread.is_alive()

    def result(self, timeout: float) -> dmap.Execution:
        """The finished execution; fails the test if the run is still going after ``timeout`` seconds."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            pytest.fail(f"the run did not finish within {timeout:g}s")
        if "error" in self._box:
            raise self._box["error"]
        execution: dmap.Execution = self._box["execution"]
        return execution


def run_id_of(name: str) -> str:
    """The Map Run id of the first Map Run of execution ``name`` (deterministic, so known in advance)."""
    return new_run_id(execution_arn("dmap", name), flows.MAP_STATE, 0)


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (a Celery worker's pool processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def resident_mib(pid: int) -> float:
    """The resident memory of process ``pid`` in MiB (0 if it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def coordinator(
    env: dict[str, str], folder: Path, name: str, definition: Any = None, input: Any = None, *, redrive: bool = False
) -> subprocess.Popen[bytes]:
    """Start a :mod:`tests.faults.drive` coordinator process for execution ``name`` (output piped)."""
    spec = folder / f"spec-{name}-{len(list(folder.glob('spec-*')))}.json"
    spec.write_text(json.dumps({"name": name, "definition": definition, "input": input, "redrive": redrive}))
    command = [sys.executable, "-m", "tests.faults.drive", str(spec)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def outcome(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, dict[str, Any] | None, str]:
    """Wait for a coordinator process: ``(exit code, its JSON summary or None, the end of its stderr)``."""
    out, err = proc.communicate(timeout=timeout)
    lines = out.decode("utf-8", errors="replace").strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return int(proc.returncode), summary, err.decode("utf-8", errors="replace")[-4000:]

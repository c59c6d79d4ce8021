"""A coordinator process for the fault scenarios: ``python -m tests.faults.drive SPEC.json``.

``SPEC.json`` holds ``{"name", "definition", "input", "redrive"}``. The process runs the execution
on the celery backend (settings from the ``DMAP_*`` environment) under ``name`` — running it again
resumes the same Map Run — or, with ``"redrive": true``, redrives the FAILED execution of that name
through :func:`dmap.control.redrive_execution`. It prints one JSON line describing the outcome and
exits 0 if the execution SUCCEEDED. A test tool, not dmap code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dmap
from dmap.control import redrive_execution
from dmap.interpreter.context import execution_arn

from . import handlers as _handlers  # noqa: F401 - registers FaultWork for the resource check


def main(argv: list[str]) -> int:
    """Run (or redrive) the execution, print ``{"status", "error", "cause", "item_counts", ...}``."""
    spec = json.loads(Path(argv[0]).read_text("utf-8"))
    if spec.get("redrive"):
        execution = redrive_execution(execution_arn("dmap", spec["name"]), backend="celery")
    else:
        execution = dmap.run(spec["definition"], input=spec["input"], backend="celery", name=spec["name"])
    runs = execution.map_runs
    summary = {
        "status": str(execution.status),
        "error": execution.error,
        "cause": execution.cause,
        "output": execution.output,
        "item_counts": runs[-1].item_counts if runs else None,
        "run_id": runs[-1].run_id if runs else None,
        "redrive_count": runs[-1].redrive_count if runs else None,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if execution.status == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

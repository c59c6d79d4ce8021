"""A coordinator process for the crash tests: ``python -m tests.integration.drive NAME NS COUNT LIMIT SLEEP_MS``.

Runs the ``flows.work_map`` workflow on the celery backend (settings from the ``DMAP_*``
environment) under the execution name ``NAME`` and prints one JSON line describing the outcome.
Running it again with the same name resumes the same Map Run. It is a test tool, not dmap code.
"""

from __future__ import annotations

import json
import sys

import dmap

from . import flows
from . import handlers as _handlers  # noqa: F401 - registers the Task handlers for the resource check


def main(argv: list[str]) -> int:
    """Run the execution, print ``{"status", "error", "cause", "output", "item_counts", ...}``; 0 if SUCCEEDED."""
    name, ns, count, limit, sleep_ms = argv
    execution = dmap.run(
        flows.work_map(max_concurrency=int(limit)),
        input=flows.work_input(ns, int(count), sleep_ms=float(sleep_ms)),
        backend="celery",
        name=name,
    )
    runs = execution.map_runs
    summary = {
        "status": str(execution.status),
        "error": execution.error,
        "cause": execution.cause,
        "output": execution.output,
        "item_counts": runs[-1].item_counts if runs else None,
        "execution_counts": runs[-1].execution_counts if runs else None,
        "map_run_arn": runs[-1].map_run_arn if runs else None,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if execution.status == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

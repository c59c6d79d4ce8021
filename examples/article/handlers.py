"""Handlers of the two seed-article workflows (corrected): count the lines and errors of log files."""

from __future__ import annotations

from typing import Any

import dmap
from dmap.storage import get_storage


@dmap.task("SummarizeLog")
def summarize_log(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Read one log object (from DMAP_S3_ROOT or S3) and count its lines and ERROR lines."""
    lines = errors = 0
    with get_storage().open_read(event["Bucket"], event["Key"]) as body:
        for raw in body:
            lines += 1
            errors += b"ERROR" in raw
    return {"key": event["Key"], "lines": lines, "errors": errors}


@dmap.task("ScoreRecord")
def score_record(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Score one manifest record."""
    return {"id": event["id"], "score": len(event.get("tags", [])) * 10 + event.get("priority", 0)}

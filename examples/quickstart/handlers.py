"""Task handlers of the quick start: registered by name, called as Lambda functions would be."""

from __future__ import annotations

from typing import Any

import dmap


@dmap.task("ScoreOrder")
def score_order(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Score one order: a stand-in for real per-item work."""
    total = sum(line["qty"] * line["price"] for line in event["lines"])
    return {"order": event["order"], "total": round(total, 2), "big": total >= 100}

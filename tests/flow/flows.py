"""Definitions the flow tests and ``bench.flow`` share: a child that calls an HTTP service once."""

from __future__ import annotations

from typing import Any

from tests.definitions import distributed_map


def http_map(url: str, *, max_concurrency: int, max_attempts: int = 50) -> dict[str, Any]:
    """A DISTRIBUTED Map whose child POSTs its item to ``url``, retrying 429s (as users write it for AWS)."""
    call = {
        "Type": "Task",
        "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {"ApiEndpoint": url, "Method": "POST", "RequestBody.$": "$"},
        "Retry": [
            {
                "ErrorEquals": ["States.Http.StatusCode.429"],
                "IntervalSeconds": 1,
                "BackoffRate": 1.5,
                "MaxDelaySeconds": 4,
                "MaxAttempts": max_attempts,
                "JitterStrategy": "FULL",
            }
        ],
        "ResultSelector": {"status.$": "$.StatusCode"},
        "End": True,
    }
    return distributed_map({"Call": call}, name="Fan", MaxConcurrency=max_concurrency)

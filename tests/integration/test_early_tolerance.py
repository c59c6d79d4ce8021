"""Early tolerance on real workers: an S3 CSV manifest whose every item fails stops after about ``pct x total``.

The coordinator counts the manifest (moto's S3 over HTTP) while it dispatches to ``dmap worker``
processes, declares the total to Redis, and the completion script applies AWS's rule (failed items
x 100 > percentage x total) from then on. Without the count the percentage could only be judged
once the whole manifest was read, i.e. after nearly every doomed item ran.
"""

from __future__ import annotations

from typing import Any

import dmap

from .conftest import Cluster, engine_for

ITEMS = 10_000
PERCENTAGE = 5
THRESHOLD = ("States.ExceedToleratedFailureThreshold", "The specified tolerated failure threshold was exceeded")


def _failing_map(bucket: str, key: str) -> dict[str, Any]:
    """Every item of the CSV manifest fails: the ItemSelector marks it so (CSV values are strings)."""
    state = {
        "Type": "Map",
        "ToleratedFailurePercentage": PERCENTAGE,
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV"},
            "Parameters": {"Bucket": bucket, "Key": key},
        },
        "ItemSelector": {"i.$": "$$.Map.Item.Value.i", "fail": True, "ns.$": "$.ns"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "ITestWork", "End": True}},
        },
        "End": True,
    }
    return {"StartAt": "Fan", "States": {"Fan": state}}


def test_a_doomed_s3_manifest_stops_after_about_its_tolerated_percentage_of_failures(
    cluster: Cluster, backend_kind: str, s3_client: Any, bucket: str
) -> None:
    body = "i,name\n" + "".join(f"{i},item {i}\n" for i in range(ITEMS))
    s3_client.put_object(Bucket=bucket, Key="doomed.csv", Body=body.encode())
    backend = engine_for(cluster, backend_kind, workers=2, concurrency=2)

    execution = dmap.run(_failing_map(bucket, "doomed.csv"), input={"ns": cluster.ns}, backend=backend)

    assert (execution.status, execution.error, execution.cause) == ("FAILED", *THRESHOLD)
    (map_run,) = execution.map_runs
    counts = map_run.item_counts
    assert counts["total"] == ITEMS
    assert sum(counts[k] for k in ("pending", "running", "succeeded", "failed", "timedOut", "aborted")) == ITEMS
    calls = sum(cluster.calls().values())
    print(f"{backend_kind}: {calls} handler calls, {counts['failed']} failed of {ITEMS} ({PERCENTAGE} % tolerated)")
    assert counts["failed"] > ITEMS * PERCENTAGE // 100  # strict: 500 failures of 10,000 are tolerated
    assert calls < ITEMS // 5  # about 500, not 10,000

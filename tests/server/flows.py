"""The state machines and waits the API tests share."""

from __future__ import annotations

import json
from typing import Any

from tests.control.conftest import WORK, Ctl

ROLE = "arn:aws:iam::210987654321:role/dmap-tests"


def csv_map(*, writer: bool = False) -> dict[str, Any]:
    """A DISTRIBUTED Map over a CSV in S3 (bucket and key from the input) running ``CtlWork`` per row.

    CSV values are strings: the ItemSelector turns ``i`` and ``fail`` back into JSON values.
    ``MaxConcurrencyPath`` reads ``$.max`` so one state machine serves every scenario. ``writer`` exports
    the results to ``s3://<bucket>/results/`` and tolerates every failure.
    """
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
        },
        "ItemSelector": {
            "i.$": "States.StringToJson($$.Map.Item.Value.i)",
            "fail.$": "States.StringToJson($$.Map.Item.Value.fail)",
            "hold.$": "$.hold",
            "ns.$": "$.ns",
            "sleep_ms.$": "$.sleep_ms",
        },
        "MaxConcurrencyPath": "$.max",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": WORK},
        },
        "End": True,
    }
    if writer:  # results exported to the input's bucket, failures tolerated so both files are written
        state["ResultWriter"] = {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket.$": "$.bucket", "Prefix": "results"},
        }
        state["ToleratedFailurePercentage"] = 100
    return {"Comment": "dmap API test", "StartAt": "Fan", "States": {"Fan": state}}


def put_csv(s3: Any, bucket: str, key: str, count: int, failing: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    """Write ``count`` rows ``i,fail`` to ``s3://bucket/key``."""
    rows = ["i,fail", *(f"{i},{'true' if i in failing else 'false'}" for i in range(count))]
    s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(rows) + "\n").encode())


def run_input(
    ctl: Ctl, bucket: str, key: str, *, hold: int = 0, max_concurrency: int = 0, ns: str | None = None
) -> str:
    """The execution input (JSON text, as the API takes it); ``ns`` (default the test's) names the handler's counters.

    The handler holds only an item's first call, so a run that holds uses a namespace of its own
    (one starting with the test's, so its keys are removed with the test's).
    """
    value = {"ns": ns or ctl.ns, "bucket": bucket, "key": key, "hold": hold, "sleep_ms": 0, "max": max_concurrency}
    return json.dumps(value)


def wait_status(ctl: Ctl, sfn: Any, arn: str, *, leave: str = "RUNNING", timeout: float = 90.0) -> dict[str, Any]:
    """Poll DescribeExecution until the execution is no longer ``leave``; its last description."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(sfn.describe_execution(executionArn=arn))
        return bool(seen["status"] != leave)

    ctl.wait_for(done, f"execution {arn} to leave {leave}", timeout)
    return seen


def serve_s3(serve: Any, ctl: Ctl, backend: str, *, concurrency: int = 2, env: dict[str, str] | None = None) -> Any:
    """A ``dmap serve`` on ``backend`` (the ``serve`` fixture's ``Server``) whose S3 is moto's, for it and the workers.

    On celery, one ``dmap worker`` with ``concurrency`` slots is started first. ``env``: more server settings.
    """
    ctl.extra_env["DMAP_S3_ROOT"] = ""  # S3 is moto's (AWS_ENDPOINT_URL_S3), for the server and the workers alike
    if backend == "celery":
        ctl.start_workers(1, concurrency=concurrency)
    return serve(backend, **(env or {}))

"""The ResultWriter files of an execution started through the API hold the ARNs its caller was shown.

manifest.json, SUCCEEDED_n.json and FAILED_n.json are what AWS users parse; they held the journal's
``arn:aws:states:local:000000000000:…`` while DescribeExecution and ListMapRuns answered with the
request's region and ``DMAP_ACCOUNT_ID``, so a file's ARN matched nothing the API had returned.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.control.conftest import Ctl

from .conftest import ACCOUNT, REGION
from .flows import ROLE, csv_map, put_csv, run_input, serve_s3, wait_status


def read_json(s3: Any, bucket: str, key: str) -> Any:
    """An S3 object's JSON."""
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_result_files_carry_the_arns_the_api_caller_was_shown(
    backend: str, serve: Any, ctl: Ctl, s3_client: Any, bucket: str
) -> None:
    sfn = serve_s3(serve, ctl, backend).client()
    put_csv(s3_client, bucket, "rows.csv", 4, failing={2})
    made = sfn.create_state_machine(name=f"{ctl.ns}-rw", definition=json.dumps(csv_map(writer=True)), roleArn=ROLE)
    arn = sfn.start_execution(stateMachineArn=made["stateMachineArn"], input=run_input(ctl, bucket, "rows.csv"))[
        "executionArn"
    ]
    done = wait_status(ctl, sfn, arn)
    assert done["status"] == "SUCCEEDED", done
    shown = f"arn:aws:states:{REGION}:{ACCOUNT}:"
    map_run = sfn.list_map_runs(executionArn=arn)["mapRuns"][0]["mapRunArn"]
    output = json.loads(done["output"])
    assert output["MapRunArn"] == map_run
    manifest = read_json(s3_client, bucket, output["ResultWriterDetails"]["Key"])
    assert manifest["MapRunArn"] == map_run
    records = []
    for group in ("SUCCEEDED", "FAILED"):
        (file,) = manifest["ResultFiles"][group]
        records += read_json(s3_client, bucket, file["Key"])
    assert len(records) == 4
    children = {c["executionArn"] for c in sfn.list_executions(mapRunArn=map_run)["executions"]}
    for record in records:
        assert record["ExecutionArn"] in children  # the ARN ListExecutions returned for that child
        assert record["StateMachineArn"].startswith(f"{shown}stateMachine:{ctl.ns}-rw/")

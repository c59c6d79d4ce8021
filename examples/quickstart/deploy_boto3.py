"""Deploy and run the quick start through the Step Functions API, exactly as a boto3 script for AWS would.

The only dmap-specific line is ``endpoint_url`` (leave it out, or unset ``SFN_ENDPOINT``, and the
same script deploys to AWS, given a real role and a Lambda function named ScoreOrder)::

    dmap serve --import examples.quickstart.handlers &
    SFN_ENDPOINT=http://127.0.0.1:8083 python -m examples.quickstart.deploy_boto3

Prints the execution's output and exits 0 once it SUCCEEDED.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import boto3

HERE = Path(__file__).parent
NAME = "quickstart"
ROLE = "arn:aws:iam::123456789012:role/StepFunctionsQuickstart"


def main() -> int:
    """Create (or update) the state machine, start one execution, wait for it and print its output."""
    sfn = boto3.client("stepfunctions", endpoint_url=os.environ.get("SFN_ENDPOINT"))  # the one dmap line
    definition = (HERE / "definition.json").read_text()
    try:
        machine = sfn.create_state_machine(name=NAME, definition=definition, roleArn=ROLE)["stateMachineArn"]
    except sfn.exceptions.StateMachineAlreadyExists:
        machine = next(
            m["stateMachineArn"]
            for page in sfn.get_paginator("list_state_machines").paginate()
            for m in page["stateMachines"]
            if m["name"] == NAME
        )
        sfn.update_state_machine(stateMachineArn=machine, definition=definition, roleArn=ROLE)
    started = sfn.start_execution(stateMachineArn=machine, input=(HERE / "input.json").read_text())
    while True:
        execution = sfn.describe_execution(executionArn=started["executionArn"])
        if execution["status"] != "RUNNING":
            break
        time.sleep(0.2)
    for run in sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]:
        counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"])["itemCounts"]
        print(f"Map Run {run['mapRunArn']}: {counts['succeeded']}/{counts['total']} items succeeded", file=sys.stderr)
    if execution["status"] != "SUCCEEDED":
        print(f"{execution['status']}: {execution.get('error')}: {execution.get('cause')}", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(execution["output"]), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

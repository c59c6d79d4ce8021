"""UpdateMapRun with nothing to change names the API's parameters, as AWS's ValidationException does.

It answered with the Python API's names ("give max_concurrency and/or a tolerated failure value"),
which an SDK caller has never seen.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from tests.control.conftest import Ctl
from tests.definitions import distributed_map

from .flows import ROLE, wait_status

FAN = distributed_map(name="Fan", ItemsPath="$.items")


def test_update_map_run_without_a_change_names_the_api_parameters(serve: Any, ctl: Ctl) -> None:
    sfn = serve("local").client()
    made = sfn.create_state_machine(name=f"{ctl.ns}-fan", definition=json.dumps(FAN), roleArn=ROLE)
    arn = sfn.start_execution(stateMachineArn=made["stateMachineArn"], input='{"items": [1, 2]}')["executionArn"]
    assert wait_status(ctl, sfn, arn)["status"] == "SUCCEEDED"
    map_run = sfn.list_map_runs(executionArn=arn)["mapRuns"][0]["mapRunArn"]
    try:
        sfn.update_map_run(mapRunArn=map_run)
    except ClientError as exc:
        error = exc.response["Error"]
    else:
        raise AssertionError("UpdateMapRun without a change succeeded")
    assert error["Code"] == "ValidationException"
    for name in ("maxConcurrency", "toleratedFailurePercentage", "toleratedFailureCount"):
        assert name in error["Message"]
    assert "max_concurrency" not in error["Message"] and "tolerated_failure" not in error["Message"]

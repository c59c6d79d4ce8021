"""A workflow as AWS users write it — a Choice in front of a Distributed Map — fails by tolerance and is redriven.

Redrive reloads the definition the journal kept; a kept Choice rule that did not load again made
every such execution unredrivable (``InvalidDefinition`` from RedriveExecution).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.control.conftest import Ctl

from .flows import ROLE, csv_map, put_csv, run_input, wait_status

ITEMS = 4


def choice_then_map() -> dict[str, Any]:
    """``csv_map`` behind a Choice on the input's ``bucket``."""
    definition = csv_map()
    definition["States"]["Fan"]["ResultPath"] = "$.map"
    choice = {"Variable": "$.bucket", "IsPresent": True, "Next": "Fan"}
    definition["States"]["Route"] = {"Type": "Choice", "Choices": [choice], "Default": "Nothing"}
    definition["States"]["Nothing"] = {"Type": "Fail", "Error": "NoBucket"}
    definition["StartAt"] = "Route"
    return definition


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_an_execution_with_a_choice_state_is_redriven_through_the_api(
    backend: str, serve: Any, ctl: Ctl, s3_client: Any, bucket: str
) -> None:
    ctl.extra_env["DMAP_S3_ROOT"] = ""
    if backend == "celery":
        ctl.start_workers(1, concurrency=2)
    sfn = serve(backend).client()
    put_csv(s3_client, bucket, "broken.csv", ITEMS, failing={2})
    machine = sfn.create_state_machine(name=f"{ctl.ns}-choice", definition=json.dumps(choice_then_map()), roleArn=ROLE)[
        "stateMachineArn"
    ]
    arn = sfn.start_execution(stateMachineArn=machine, input=run_input(ctl, bucket, "broken.csv"))["executionArn"]
    failed = wait_status(ctl, sfn, arn)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold"), failed

    ctl.fix()
    assert sfn.redrive_execution(executionArn=arn)["redriveDate"]
    redriven = wait_status(ctl, sfn, arn)
    assert (redriven["status"], redriven["redriveCount"]) == ("SUCCEEDED", 1), redriven
    kept = json.loads(sfn.describe_state_machine_for_execution(executionArn=arn)["definition"])
    assert kept["States"]["Route"]["Choices"] == choice_then_map()["States"]["Route"]["Choices"]

"""A workflow as AWS users write it — a Task and a Choice in front of a Distributed Map — fails by tolerance and
is redriven.

Redrive reloads the definition the journal kept; a kept Choice rule that did not load again made
every such execution unredrivable (``InvalidDefinition`` from RedriveExecution). On celery the
server, started as the docs show (``dmap serve --backend celery``, no ``--import``), hands the redrive
to the workers: it must not ask for the top-level Task's handler in its own process.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.control.conftest import Ctl

from .flows import ROLE, csv_map, put_csv, run_input, serve_s3, wait_status

ITEMS = 4


def choice_then_map() -> dict[str, Any]:
    """``csv_map`` behind a Task (its result discarded) and a Choice on the input's ``bucket``."""
    definition = csv_map()
    definition["States"]["Fan"]["ResultPath"] = "$.map"
    choice = {"Variable": "$.bucket", "IsPresent": True, "Next": "Fan"}
    definition["States"]["Route"] = {"Type": "Choice", "Choices": [choice], "Default": "Nothing"}
    definition["States"]["Nothing"] = {"Type": "Fail", "Error": "NoBucket"}
    first = {"i": -1, "ns.$": "$.ns", "fail": False}
    definition["States"]["First"] = {"Type": "Task", "Resource": "CtlWork", "Parameters": first, "ResultPath": None}
    definition["States"]["First"]["Next"] = "Route"
    definition["StartAt"] = "First"
    return definition


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_an_execution_with_a_choice_state_is_redriven_through_the_api(
    backend: str, serve: Any, ctl: Ctl, s3_client: Any, bucket: str
) -> None:
    sfn = serve_s3(serve, ctl, backend, env={} if backend == "local" else {"DMAP_IMPORTS": ""}).client()
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

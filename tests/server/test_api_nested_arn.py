"""A nested workflow deployed as for AWS: the parent names its child by the ARN CreateStateMachine returned.

That ARN carries the request's region and account (``arn:aws:states:eu-west-1:210987654321:…``), as
on AWS; ``states:startExecution`` looked it up as given and failed with
``StepFunctions.StateMachineDoesNotExistException`` although every API verb accepts it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.control.conftest import Ctl

from .conftest import ACCOUNT, REGION
from .flows import ROLE, wait_status


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_a_parent_starts_its_child_by_the_arn_the_api_returned(backend: str, serve: Any, ctl: Ctl) -> None:
    if backend == "celery":
        ctl.start_workers(1, concurrency=2)
    sfn = serve(backend).client()
    child_definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"got.$": "$.a"}, "End": True}}}
    child = sfn.create_state_machine(name=f"{ctl.ns}-child", definition=json.dumps(child_definition), roleArn=ROLE)
    assert child["stateMachineArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:")
    nested = {"StateMachineArn": child["stateMachineArn"], "Input": {"a": 1}}
    task = {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "Parameters": nested}
    parent_definition = {"StartAt": "Nest", "States": {"Nest": {**task, "End": True}}}
    parent = sfn.create_state_machine(name=f"{ctl.ns}-parent", definition=json.dumps(parent_definition), roleArn=ROLE)
    arn = sfn.start_execution(stateMachineArn=parent["stateMachineArn"])["executionArn"]
    done = wait_status(ctl, sfn, arn)
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    assert (output["Status"], output["Output"]) == ("SUCCEEDED", {"got": 1})

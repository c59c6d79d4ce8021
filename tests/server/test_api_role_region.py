"""An execution started through the API runs with its state machine's role, and its history names the
caller's region, as on AWS.

``$$.Execution.RoleArn`` and ExecutionStarted's ``roleArn`` were always ``arn:aws:iam::000000000000:role/dmap``
whatever role CreateStateMachine was given, and TaskScheduled's ``region`` said ``local`` while every ARN
of the same response carried the caller's region.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.control.conftest import Ctl

from .conftest import REGION
from .flows import ROLE, wait_status

WHO = {"Type": "Pass", "Parameters": {"role.$": "$$.Execution.RoleArn"}}


def role_machine() -> dict[str, Any]:
    """Read the role at the top, call a ``lambda:invoke`` Task (a TaskScheduled event), read it in Map children."""
    return {
        "StartAt": "Who",
        "States": {
            "Who": {**WHO, "ResultPath": "$.who", "Next": "Call"},
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "CtlWork", "Payload": {"ns.$": "$.ns", "i": 0}},
                "ResultSelector": {"i.$": "$.Payload.i"},
                "ResultPath": "$.call",
                "Next": "Fan",
            },
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "ChildWho",
                    "States": {"ChildWho": {**WHO, "End": True}},
                },
                "ResultPath": "$.children",
                "End": True,
            },
        },
    }


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_the_state_machines_role_and_the_callers_region_reach_the_execution(backend: str, serve: Any, ctl: Ctl) -> None:
    if backend == "celery":
        ctl.start_workers(1, concurrency=2)
    sfn = serve(backend).client()
    machine = sfn.create_state_machine(name=f"{ctl.ns}-role", definition=json.dumps(role_machine()), roleArn=ROLE)
    value = json.dumps({"ns": ctl.ns, "items": [1, 2, 3]})
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=value)["executionArn"]
    done = wait_status(ctl, sfn, arn)
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    assert output["who"] == {"role": ROLE}
    assert output["children"] == [{"role": ROLE}] * 3  # children run with their parent's role
    events = sfn.get_execution_history(executionArn=arn)["events"]
    started = next(e for e in events if e["type"] == "ExecutionStarted")
    assert started["executionStartedEventDetails"]["roleArn"] == ROLE
    scheduled = next(e for e in events if e["type"] == "TaskScheduled")
    assert scheduled["taskScheduledEventDetails"]["region"] == REGION
    assert sfn.describe_state_machine_for_execution(executionArn=arn)["roleArn"] == ROLE

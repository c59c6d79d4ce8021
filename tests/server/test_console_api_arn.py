"""The console opens an execution by the ARN boto3 returned (the request's region and account).

``/map-runs/<arn>`` took such an ARN; ``/executions/<arn>`` answered 404 because the history read
(``dmap.get_execution_history``) looked the ARN up as given instead of in the journal's form.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.control.conftest import Ctl

from .flows import ROLE, wait_status


def test_the_console_and_the_python_history_take_the_arn_boto3_returned(serve: Any, ctl: Ctl) -> None:
    server = serve("local")
    sfn = server.client()
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(name=f"{ctl.ns}-pass", definition=json.dumps(definition), roleArn=ROLE)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")["executionArn"]
    assert wait_status(ctl, sfn, arn)["status"] == "SUCCEEDED"
    page = httpx.get(f"{server.url}/executions/{arn}", timeout=10)
    assert page.status_code == 200, page.text[-500:]
    assert "ExecutionSucceeded" in page.text

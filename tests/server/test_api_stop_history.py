"""StopExecution's ``error`` and ``cause`` reach the history's ExecutionAborted event, as on AWS.

DescribeExecution returned them while GetExecutionHistory's last event said ``States.Aborted`` /
``The execution was stopped``: two answers for one stop.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.control.conftest import Ctl
from tests.control.handlers import key

from .flows import ROLE, csv_map, put_csv, run_input, serve_s3, wait_status


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_a_stopped_executions_history_ends_with_the_stops_error_and_cause(
    backend: str, serve: Any, ctl: Ctl, s3_client: Any, bucket: str
) -> None:
    sfn = serve_s3(serve, ctl, backend).client()
    put_csv(s3_client, bucket, "rows.csv", 3)
    machine = sfn.create_state_machine(name=f"{ctl.ns}-stop", definition=json.dumps(csv_map()), roleArn=ROLE)
    ns = f"{ctl.ns}held"
    value = run_input(ctl, bucket, "rows.csv", hold=1, max_concurrency=1, ns=ns)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=value)["executionArn"]
    ctl.wait_for(lambda: ctl.conn.smembers(key(ns, "held")), "a child to be held")
    sfn.stop_execution(executionArn=arn, error="Operator", cause="stopped by hand")
    ctl.conn.set(key(ns, "release"), "1")
    stopped = wait_status(ctl, sfn, arn)
    assert (stopped["status"], stopped["error"], stopped["cause"]) == ("ABORTED", "Operator", "stopped by hand")
    last = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=1)["events"][0]
    assert last["type"] == "ExecutionAborted"
    assert last["executionAbortedEventDetails"] == {"error": "Operator", "cause": "stopped by hand"}

"""Every AWS error code the API promises, each produced by a real request to a ``dmap serve`` subprocess.

The server checks each error code against the operation's declared errors (a mismatch fails the
test through the ``serve`` fixture), so these are codes an SDK knows for that operation.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from dmap.server.shapes import check_error, check_response
from tests.control.conftest import Ctl
from tests.definitions import distributed_map

from .conftest import ACCOUNT, REGION
from .flows import ROLE, wait_status

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}
ITEMS = distributed_map(execution_type="EXPRESS", ItemsPath="$.items")


def code(call: Any, **kwargs: Any) -> str:
    """The AWS error code a client call answers (fails the test if it succeeds)."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def test_every_promised_error_code_comes_from_a_real_request(serve: Any, ctl: Ctl) -> None:
    server = serve("local")
    sfn = server.client()
    prefix = f"arn:aws:states:{REGION}:{ACCOUNT}"
    machine = sfn.create_state_machine(name=f"{ctl.ns}-pass", definition=json.dumps(PASS), roleArn=ROLE)[
        "stateMachineArn"
    ]
    done = sfn.start_execution(stateMachineArn=machine, name="once", input="{}")["executionArn"]
    assert wait_status(ctl, sfn, done)["status"] == "SUCCEEDED"

    assert code(sfn.start_execution, stateMachineArn=machine, name="once", input='{"other": 1}') == (
        "ExecutionAlreadyExists"
    )
    with pytest.raises(ClientError) as taken:  # AWS's message, not the CLI's advice
        sfn.start_execution(stateMachineArn=machine, name="once", input="{}")
    assert taken.value.response["Error"]["Message"] == f"Execution Already Exists: '{done}'"
    assert code(sfn.describe_state_machine, stateMachineArn=f"{prefix}:stateMachine:nope") == "StateMachineDoesNotExist"
    assert code(sfn.start_execution, stateMachineArn=f"{prefix}:stateMachine:nope") == "StateMachineDoesNotExist"
    assert code(sfn.describe_execution, executionArn=f"{prefix}:execution:{ctl.ns}-pass:nope") == (
        "ExecutionDoesNotExist"
    )
    assert code(sfn.create_state_machine, name=f"{ctl.ns}-bad", definition='{"StartAt": "X"}', roleArn=ROLE) == (
        "InvalidDefinition"
    )
    assert code(sfn.describe_execution, executionArn="not-an-arn") == "InvalidArn"
    assert code(sfn.describe_map_run, mapRunArn=machine) == "InvalidArn"  # a state machine is no Map Run
    assert code(sfn.start_execution, stateMachineArn=machine, name="has space") == "InvalidName"
    assert code(sfn.create_state_machine, name="a/b", definition=json.dumps(PASS), roleArn=ROLE) == "InvalidName"
    versioned = {"name": f"{ctl.ns}-v", "definition": json.dumps(PASS), "roleArn": ROLE, "publish": True}
    assert code(sfn.create_state_machine, **versioned) == "ValidationException"
    assert code(sfn.describe_state_machine, stateMachineArn=f"{machine}:1") == "ValidationException"  # a version
    assert code(sfn.create_state_machine, name=f"{ctl.ns}-pass", definition=json.dumps(ITEMS), roleArn=ROLE) == (
        "StateMachineAlreadyExists"
    )
    assert code(sfn.redrive_execution, executionArn=done) == "ExecutionNotRedrivable"
    unknown_run = f"{prefix}:mapRun:{ctl.ns}-pass/M:0c6b0f5e-0000-4000-8000-000000000000"
    assert code(sfn.describe_map_run, mapRunArn=unknown_run) == "ResourceNotFound"
    assert code(sfn.list_executions, stateMachineArn=machine, nextToken="garbage") == "InvalidToken"
    assert code(sfn.start_execution, stateMachineArn=machine, input="{not json") == "InvalidExecutionInput"
    sync = server.client(inject_host_prefix=False)  # StartSyncExecution's "sync-" host prefix, turned off
    assert code(sync.start_sync_execution, stateMachineArn=machine) == "StateMachineTypeNotSupported"

    # The same definition again is idempotent, as on AWS: the same ARN and creation date.
    again = sfn.create_state_machine(name=f"{ctl.ns}-pass", definition=json.dumps(PASS), roleArn=ROLE)
    assert again["stateMachineArn"] == machine
    # A raw request without the SDK: AWS's error document, and a required member named.
    raw = httpx.post(
        server.url,
        content=b"{}",
        headers={"X-Amz-Target": "AWSStepFunctions.DescribeExecution", "Content-Type": "application/x-amz-json-1.0"},
    )
    assert raw.status_code == 400
    assert raw.json()["__type"] == "com.amazonaws.sfn#ValidationException"
    assert "executionArn" in raw.json()["message"]


def test_state_machines_are_described_listed_updated_and_deleted(serve: Any, ctl: Ctl) -> None:
    server = serve("local")
    sfn = server.client()
    arns = [
        sfn.create_state_machine(name=f"{ctl.ns}-{n}", definition=json.dumps(PASS), roleArn=ROLE)["stateMachineArn"]
        for n in range(3)
    ]
    described = sfn.describe_state_machine(stateMachineArn=arns[0])
    assert (described["name"], described["type"]) == (f"{ctl.ns}-0", "STANDARD")
    assert json.loads(described["definition"]) == PASS
    listed, token = [], None
    while True:
        page = sfn.list_state_machines(maxResults=2, **({"nextToken": token} if token else {}))
        listed += [m["stateMachineArn"] for m in page["stateMachines"]]
        token = page.get("nextToken")
        if not token:
            break
    assert listed == sorted(arns)
    first = sfn.start_execution(stateMachineArn=arns[0], input="{}")["executionArn"]
    wait_status(ctl, sfn, first)
    time.sleep(0.01)  # the update's date must follow the execution's start (millisecond timestamps)
    updated = sfn.update_state_machine(stateMachineArn=arns[0], definition=json.dumps(ITEMS))
    assert updated["revisionId"] != described["revisionId"]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arns[0])["definition"]) == ITEMS
    # The execution ran the definition it started with.
    ran = sfn.describe_state_machine_for_execution(executionArn=first)
    assert json.loads(ran["definition"])["States"]["P"]["Type"] == "Pass"
    sfn.delete_state_machine(stateMachineArn=arns[1])
    assert [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]] == [arns[0], arns[2]]
    assert sfn.describe_execution(executionArn=first)["status"] == "SUCCEEDED"  # executions outlive their machine


def test_validate_returns_dmaps_diagnostics_with_json_pointer_locations(serve: Any) -> None:
    sfn = serve("local").client()
    bad = json.loads(json.dumps(ITEMS))
    bad["States"]["M"]["MaxConcurrency"] = -1
    answer = sfn.validate_state_machine_definition(definition=json.dumps(bad))
    assert answer["result"] == "FAIL"
    assert any(d["location"] == "/States/M/MaxConcurrency" for d in answer["diagnostics"])
    assert sfn.validate_state_machine_definition(definition=json.dumps(PASS)) == {
        **{"result": "OK", "diagnostics": [], "truncated": False},
        "ResponseMetadata": sfn.validate_state_machine_definition(definition=json.dumps(PASS))["ResponseMetadata"],
    }


def test_an_express_state_machine_answers_start_sync_execution_in_aws_shape(serve: Any, ctl: Ctl) -> None:
    server = serve("local")
    # StartSyncExecution has AWS's "sync-" host prefix: a local endpoint turns it off, as with Step Functions Local.
    sfn = server.client(inject_host_prefix=False)
    machine = sfn.create_state_machine(
        name=f"{ctl.ns}-express", definition=json.dumps(ITEMS), roleArn=ROLE, type="EXPRESS"
    )["stateMachineArn"]
    answer = sfn.start_sync_execution(stateMachineArn=machine, input=json.dumps({"items": [1, 2, 3]}))
    assert (answer["status"], json.loads(answer["output"])) == ("SUCCEEDED", [1, 2, 3])
    assert answer["billingDetails"]["billedDurationInMilliseconds"] % 100 == 0
    assert answer["billingDetails"]["billedMemoryUsedInMB"] == 64
    assert answer["stopDate"] >= answer["startDate"]


def test_the_shape_checker_finds_what_an_sdk_could_not_parse() -> None:
    assert check_response("StartExecution", {"executionArn": "a", "startDate": 1.5}) == []
    problems = check_response(
        "DescribeMapRun",
        {"mapRunArn": "a", "executionArn": "b", "status": "DONE", "startDate": "2026-12-06T00:00:00Z", "extra": 1},
    )
    text = "\n".join(problems)
    expected_problems = ("'DONE' is not one of", "startDate: timestamp expected", "extra: not a member", "Concurrency")
    for expected in expected_problems:
        assert expected in text, text
    assert check_response("DescribeMapRun", {"itemCounts": {"total": "3"}})  # nested: a string is no long
    assert check_error("StartExecution", "ExecutionAlreadyExists") == []
    assert check_error("DescribeExecution", "ExecutionAlreadyExists")
    assert check_error("DescribeExecution", "ValidationException") == []  # a member constraint: any operation


def test_a_server_started_with_api_keys_refuses_other_access_keys(serve: Any) -> None:
    server = serve("local", DMAP_API_KEYS="allowed")
    sfn = server.client()  # access key "testing"
    assert code(sfn.list_state_machines) == "UnrecognizedClientException"
    allowed = server.client(access_key="allowed")
    assert allowed.list_state_machines()["stateMachines"] == []

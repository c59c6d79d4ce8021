"""TestState through boto3 against a real ``dmap serve``: each supported state type, Retry and Catch, inspection data.

Every response is checked against botocore's TestState output shape by the server itself
(``DMAP_SERVE_CHECK_SHAPES``; a mismatch fails the test through the ``serve`` fixture).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.control.conftest import Ctl
from tests.control.handlers import key

from .flows import ROLE


def outcome(sfn: Any, state: dict[str, Any], value: Any, level: str = "INFO", **kwargs: Any) -> dict[str, Any]:
    """TestState's response for ``state`` on ``value`` (metadata dropped)."""
    made = sfn.test_state(
        definition=json.dumps(state), roleArn=ROLE, input=json.dumps(value), inspectionLevel=level, **kwargs
    )
    made.pop("ResponseMetadata")
    return dict(made)


def test_test_state_runs_one_state_with_aws_statuses_and_inspection_data(serve: Any, ctl: Ctl) -> None:
    sfn = serve("local").client(inject_host_prefix=False)  # TestState carries the `sync-` host prefix

    passed = {
        "Type": "Pass",
        "InputPath": "$.order",
        "Parameters": {"id.$": "$.id"},
        "ResultPath": "$.picked",
        "OutputPath": "$.picked",
        "Next": "Ship",
    }
    info = outcome(sfn, passed, {"order": {"id": 7, "x": 1}})
    assert info == {"status": "SUCCEEDED", "output": '{"id": 7}', "nextState": "Ship"}
    debug = outcome(sfn, passed, {"order": {"id": 7, "x": 1}}, "DEBUG")["inspectionData"]
    assert {k: json.loads(v) for k, v in debug.items()} == {
        "input": {"order": {"id": 7, "x": 1}},
        "afterInputPath": {"id": 7, "x": 1},
        "afterParameters": {"id": 7},
        "afterResultSelector": {"id": 7},
        "afterResultPath": {"order": {"id": 7, "x": 1}, "picked": {"id": 7}},  # ResultPath places into the raw input
    }

    # A Task calls the handler registered in the server (tests.control.handlers), once.
    task = {"Type": "Task", "Resource": "CtlWork", "ResultSelector": {"twice.$": "$.double"}, "End": True}
    item = {"i": 4, "ns": ctl.ns, "fail": False}
    done = outcome(sfn, task, item, "TRACE")
    assert (done["status"], json.loads(done["output"]), "nextState" in done) == ("SUCCEEDED", {"twice": 8}, False)
    assert json.loads(done["inspectionData"]["result"]) == {"i": 4, "double": 8}
    assert ctl.counts("calls") == {4: 1}

    # A failing Task: RETRIABLE while a retrier has attempts left, then CAUGHT_ERROR, FAILED without a catcher.
    retried = {
        **task,
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 3, "BackoffRate": 2}],
        "Catch": [{"ErrorEquals": ["ItemBroken"], "ResultPath": "$.error", "Next": "Recover"}],
    }
    broken = {**item, "i": 5, "fail": True}
    first = outcome(sfn, retried, broken, "DEBUG")
    assert (first["status"], first["error"]) == ("RETRIABLE", "ItemBroken")
    assert first["inspectionData"]["errorDetails"] == {"retryIndex": 0, "retryBackoffIntervalSeconds": 3}
    second = outcome(sfn, retried, broken, "DEBUG", stateConfiguration={"retrierRetryCount": 1})
    assert second["inspectionData"]["errorDetails"]["retryBackoffIntervalSeconds"] == 6
    caught = outcome(sfn, retried, broken, stateConfiguration={"retrierRetryCount": 2})
    assert (caught["status"], caught["nextState"], caught["error"]) == ("CAUGHT_ERROR", "Recover", "ItemBroken")
    assert json.loads(caught["output"])["error"]["Error"] == "ItemBroken"
    failed = outcome(sfn, task, broken)
    assert (failed["status"], failed["error"], "output" in failed) == ("FAILED", "ItemBroken", False)
    assert "is broken" in failed["cause"]
    assert ctl.counts("calls")[5] == 4  # one call per test: nothing retried or looped here

    # Choice, Wait (not slept), Succeed and Fail; a state picked out of a whole state machine by stateName.
    choice = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}],
        "Default": "Small",
    }
    assert outcome(sfn, choice, {"n": 2})["nextState"] == "Big"
    assert outcome(sfn, choice, {"n": 0})["nextState"] == "Small"
    waited = outcome(sfn, {"Type": "Wait", "Seconds": 3600, "Next": "After"}, {"a": 1})
    assert waited == {"status": "SUCCEEDED", "output": '{"a": 1}', "nextState": "After"}
    assert outcome(sfn, {"Type": "Succeed"}, {"a": 1}) == {"status": "SUCCEEDED", "output": '{"a": 1}'}
    fail = outcome(sfn, {"Type": "Fail", "Error": "Nope", "Cause": "said no"}, {})
    assert fail == {"status": "FAILED", "error": "Nope", "cause": "said no"}
    machine = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Result": 1, "End": True}},
    }
    assert outcome(sfn, machine, {}, stateName="B") == {"status": "SUCCEEDED", "output": "1"}

    # What it refuses, in AWS's codes.
    parallel = {"Type": "Parallel", "Branches": [], "End": True}
    for state, wanted in (
        (parallel, "ValidationException"),
        ({"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {}}, "End": True}, "ValidationException"),
        ({"Type": "Pass", "Next": 5}, "InvalidDefinition"),
    ):
        with pytest.raises(ClientError) as refused:
            outcome(sfn, state, {})
        assert refused.value.response["Error"]["Code"] == wanted, state
    with pytest.raises(ClientError) as bad_input:
        sfn.test_state(definition=json.dumps(passed), roleArn=ROLE, input="{nope")
    assert bad_input.value.response["Error"]["Code"] == "InvalidExecutionInput"
    assert not ctl.conn.exists(key(ctl.ns, "held"))

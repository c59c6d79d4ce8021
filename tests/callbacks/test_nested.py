"""Nested workflows on the local backend: ``states:startExecution``, ``.sync``, ``.sync:2`` and ``.waitForTaskToken``.

The nested state machine is stored in the backend's registry (files under its DMAP_HOME) as
``dmap serve``'s CreateStateMachine stores it; the nested execution is a normal execution of the
same journal.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.interpreter import registry
from dmap.machines import StateMachineRecord, machines
from dmap.records import journal_arn

START = "arn:aws:states:::states:startExecution"
ROLE = "arn:aws:iam::123456789012:role/dmap"
DOUBLE = {
    "StartAt": "Double",
    "States": {
        "Double": {
            "Type": "Pass",
            "Parameters": {
                "doubled.$": "States.MathAdd($.x, $.x)",
                "by.$": "$.AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID",
            },
            "End": True,
        }
    },
}
FAIL = {"StartAt": "No", "States": {"No": {"Type": "Fail", "Error": "Nope", "Cause": "the child says no"}}}


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    """A private local backend whose state machines live under ``tmp_path``."""
    made = LocalBackend(Settings(home=str(tmp_path)), threads=8)
    yield made
    made.close()


def _store(backend: LocalBackend, definition: dict[str, Any]) -> str:
    name = f"Child{uuid.uuid4().hex[:8]}"
    arn = f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"  # as boto3 shows it
    stored = journal_arn(arn)  # as CreateStateMachine stores it
    machines(backend).put(StateMachineRecord(arn=stored, name=name, definition=json.dumps(definition), role_arn=ROLE))
    return arn


def _parent(resource: str, machine: str, **parameters: Any) -> dict[str, Any]:
    arguments = {
        "StateMachineArn": machine,
        "Input": {"x.$": "$.x", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"},
        **parameters,
    }
    return {
        "StartAt": "Nested",
        "States": {"Nested": {"Type": "Task", "Resource": resource, "Parameters": arguments, "End": True}},
    }


def test_sync_returns_the_nested_execution_described_with_its_output_as_json_text(backend: LocalBackend) -> None:
    machine = _store(backend, DOUBLE)
    execution = dmap.run(_parent(START + ".sync", machine, Name="nested-sync"), input={"x": 21}, backend=backend)
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    result = execution.output
    assert result["Status"] == "SUCCEEDED"
    assert json.loads(result["Output"]) == {"doubled": 42, "by": execution.execution_arn}
    assert result["Name"] == "nested-sync"
    assert result["StateMachineArn"] == journal_arn(machine)
    assert isinstance(result["StartDate"], int) and isinstance(result["StopDate"], int)
    nested = dmap.describe_execution(result["ExecutionArn"], backend=backend)  # a normal execution of the journal
    assert (nested.status, nested.output) == ("SUCCEEDED", {"doubled": 42, "by": execution.execution_arn})


def test_sync_2_returns_the_output_as_json(backend: LocalBackend) -> None:
    machine = _store(backend, DOUBLE)
    execution = dmap.run(_parent(START + ".sync:2", machine), input={"x": 5}, backend=backend)
    assert execution.output["Output"] == {"doubled": 10, "by": execution.execution_arn}


def test_a_failed_nested_execution_fails_the_task_with_its_description_as_the_cause(backend: LocalBackend) -> None:
    machine = _store(backend, FAIL)
    execution = dmap.run(_parent(START + ".sync", machine), input={"x": 1}, backend=backend)
    assert (execution.status, execution.error) == ("FAILED", "States.TaskFailed")
    cause = json.loads(execution.cause or "")
    assert (cause["Status"], cause["Error"], cause["Cause"]) == ("FAILED", "Nope", "the child says no")


def test_fire_and_forget_returns_the_arn_and_start_date_and_the_execution_runs_on(backend: LocalBackend) -> None:
    machine = _store(backend, DOUBLE)
    execution = dmap.run(_parent(START, machine), input={"x": 2}, backend=backend)
    assert set(execution.output) == {"ExecutionArn", "StartDate"}
    assert isinstance(execution.output["StartDate"], int)
    deadline = time.monotonic() + 30
    while (nested := dmap.describe_execution(execution.output["ExecutionArn"], backend=backend)).status == "RUNNING":
        assert time.monotonic() < deadline, "the nested execution did not end"
        time.sleep(0.01)
    assert nested.output == {"doubled": 4, "by": execution.execution_arn}


def test_wait_for_task_token_waits_for_the_nested_execution_to_answer(backend: LocalBackend) -> None:
    registry.register("Reply", lambda event, context: dmap.send_task_success(event["token"], {"reply": event["x"]}))
    try:
        child = {
            "StartAt": "Answer",
            "States": {
                "Answer": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "Reply", "Payload.$": "$"},
                    "End": True,
                }
            },
        }
        machine = _store(backend, child)
        parent = _parent(START + ".waitForTaskToken", machine, Input={"x.$": "$.x", "token.$": "$$.Task.Token"})
        execution = dmap.run(parent, input={"x": "hi"}, backend=backend)
        assert execution.output == {"reply": "hi"}
    finally:
        registry.unregister("Reply")


def test_a_state_machine_that_does_not_exist_is_stepfunctions_error(backend: LocalBackend) -> None:
    missing = "arn:aws:states:us-east-1:123456789012:stateMachine:Nowhere"
    execution = dmap.run(_parent(START + ".sync", missing), input={"x": 1}, backend=backend)
    assert execution.error == "StepFunctions.StateMachineDoesNotExistException"
    assert missing in (execution.cause or "")


def test_children_of_a_distributed_map_run_nested_executions(backend: LocalBackend) -> None:
    machine = _store(backend, DOUBLE)
    processor = _parent(START + ".sync:2", machine)
    processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    processor["States"]["Nested"]["OutputPath"] = "$.Output.doubled"
    definition = {"StartAt": "Each", "States": {"Each": {"Type": "Map", "ItemProcessor": processor, "End": True}}}
    execution = dmap.run(definition, input=[{"x": i} for i in range(5)], backend=backend)
    assert execution.output == [0, 2, 4, 6, 8]

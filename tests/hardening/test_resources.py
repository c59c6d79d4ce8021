"""A definition can call registered handlers and enabled integrations, and nothing else.

Python dotted paths (``os.system``), Lambda ARNs of unregistered names and service integrations
while ``DMAP_INTEGRATIONS`` is empty are refused with a ``DefinitionError`` naming the state and the
resource — before the first state runs — wherever the Task sits (top level, a Parallel branch, an
INLINE or DISTRIBUTED Map's processor). A FunctionName chosen at run time is checked when it runs,
and an unregistered one fails the Task without calling anything.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend

from .handlers import CALLS

pytestmark = pytest.mark.timeout(30)

FIRST = {"Type": "Task", "Resource": "HardeningRecord", "Next": "Call"}
"""A registered handler that runs first (and counts its calls) if the run ever starts."""

FORBIDDEN: list[tuple[str, dict[str, Any] | None]] = [
    ("os.system", None),
    ("builtins.eval", None),
    ("subprocess.run", None),
    ("tests.hardening.handlers.record", None),  # a real function, but not registered under this name
    ("arn:aws:lambda:us-east-1:123456789012:function:NotRegistered", None),
    ("arn:aws:lambda:us-east-1:123456789012:function:os.system", None),
    ("arn:aws:states:::lambda:invoke", {"FunctionName": "os.system", "Payload": "id"}),
    ("arn:aws:states:::lambda:invoke", {"FunctionName": "arn:aws:lambda:us-east-1:1:function:Nope"}),
    ("arn:aws:states:::aws-sdk:s3:getObject", {"Bucket": "b", "Key": "k"}),
    ("arn:aws:states:::aws-sdk:s3:deleteBucket", {"Bucket": "b"}),
    ("arn:aws:states:::aws-sdk:lambda:invoke", {"FunctionName": "x"}),
    ("arn:aws:states:::s3:getObject", {"Bucket": "b", "Key": "k"}),
    ("arn:aws:states:::s3:putObject", {"Bucket": "b", "Key": "k", "Body": "x"}),
    ("arn:aws:states:::http:invoke", {"ApiEndpoint": "http://127.0.0.1:9/", "Method": "GET"}),
    ("arn:aws:states:::ecs:runTask.sync", {"Cluster": "c"}),
]
IDS = [f"{resource}|{(params or {}).get('FunctionName', '')}" for resource, params in FORBIDDEN]


def call(resource: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": resource, "End": True}
    if parameters is not None:
        state["Parameters"] = parameters
    return state


def placed(where: str, state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A definition that runs ``FIRST`` then reaches ``state`` ``where``; and the pointer of its Resource."""
    inner = {"StartAt": "Inner", "States": {"Inner": copy.deepcopy(state)}}
    if where == "top":
        return {"StartAt": "First", "States": {"First": FIRST, "Call": state}}, "/States/Call/Resource"
    if where == "parallel":
        wrapper: dict[str, Any] = {"Type": "Parallel", "Branches": [inner], "End": True}
        return {"StartAt": "First", "States": {"First": FIRST, "Call": wrapper}}, (
            "/States/Call/Branches/0/States/Inner/Resource"
        )
    mode = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"} if where == "distributed" else {"Mode": "INLINE"}
    wrapper = {"Type": "Map", "ItemProcessor": {"ProcessorConfig": mode, **inner}, "End": True}
    return {"StartAt": "First", "States": {"First": FIRST, "Call": wrapper}}, (
        "/States/Call/ItemProcessor/States/Inner/Resource"
    )


@pytest.mark.parametrize("where", ["top", "parallel", "inline", "distributed"])
@pytest.mark.parametrize(("resource", "parameters"), FORBIDDEN, ids=IDS)
def test_a_resource_that_is_neither_a_registered_handler_nor_an_enabled_integration_is_refused_before_the_run(
    resource: str,
    parameters: dict[str, Any] | None,
    where: str,
    integrations: Callable[[str], None],
    local_backend: Callable[..., LocalBackend],
) -> None:
    definition, location = placed(where, call(resource, parameters))
    before = CALLS["First"]

    with pytest.raises(dmap.DefinitionError) as raised:
        dmap.run(definition, input=[1], backend=local_backend())

    [found] = [d for d in raised.value.diagnostics if d.location == location]
    assert found.severity == "ERROR"
    assert resource in found.message or (parameters or {}).get("FunctionName", "\0") in found.message
    assert "'Inner'" in found.message or "'Call'" in found.message
    assert CALLS["First"] == before, "a state ran before the definition was refused"


def test_a_registered_handler_named_by_its_lambda_arn_is_allowed(
    local_backend: Callable[..., LocalBackend],
) -> None:
    definition = {
        "StartAt": "Call",
        "States": {"Call": call("arn:aws:lambda:us-east-1:123456789012:function:HardeningEcho", None)},
    }

    execution = dmap.run(definition, input={"x": 1}, backend=local_backend())

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["event"] == {"x": 1}


def _shell(target: Path) -> str:
    return f"touch {shlex.quote(str(target))}"


def test_a_function_name_chosen_at_run_time_that_is_not_registered_fails_the_task_without_calling_it(
    tmp_path: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    target = tmp_path / "pwned"
    parameters = {"FunctionName.$": "$.fn", "Payload.$": "$.cmd"}
    definition = {"StartAt": "Call", "States": {"Call": call("arn:aws:states:::lambda:invoke", parameters)}}

    execution = dmap.run(definition, input={"fn": "os.system", "cmd": _shell(target)}, backend=local_backend())

    assert execution.status == "FAILED"
    assert execution.error == "States.TaskFailed"
    assert "'os.system' is not a registered dmap task handler" in (execution.cause or "")
    assert not target.exists()


def test_a_jsonata_function_name_expression_never_calls_an_unregistered_function(
    tmp_path: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    target = tmp_path / "pwned"
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Arguments": {"FunctionName": "{% $states.input.fn %}", "Payload": "{% $states.input.cmd %}"},
        "End": True,
    }
    definition = {"QueryLanguage": "JSONata", "StartAt": "Call", "States": {"Call": state}}

    try:
        execution = dmap.run(definition, input={"fn": "os.system", "cmd": _shell(target)}, backend=local_backend())
    except dmap.DefinitionError as refused:
        assert any(d.location == "/States/Call/Resource" for d in refused.diagnostics)
    else:
        assert execution.status == "FAILED"
        assert execution.error == "States.TaskFailed"
    assert not target.exists()

"""A service integration dmap does not run (sns:publish, dynamodb:putItem, ...) is refused before the run,
saying what it is and how to run the definition anyway: through the ``aws-sdk`` integration enabled with
``DMAP_INTEGRATIONS``, or through a registered handler called as a Lambda resource.
"""

from __future__ import annotations

from typing import Any

import pytest

import dmap
from dmap.errors import DefinitionError
from dmap.interpreter import Registry, Runtime, execute
from dmap.interpreter.tasks import check_resources


def _notify(resource: str) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": resource, "Parameters": {"TopicArn": "t", "Message": "m"}, "End": True}
    return {"StartAt": "Notify", "States": {"Notify": task}}


def _refusal(resource: str) -> dmap.Diagnostic:
    with pytest.raises(DefinitionError) as info:
        dmap.asl.load(_notify(resource), extra_checks=lambda data: check_resources(data, Registry()))
    [diagnostic] = info.value.diagnostics
    return diagnostic


@pytest.mark.parametrize(
    ("resource", "sdk"),
    [
        ("arn:aws:states:::sns:publish", "arn:aws:states:::aws-sdk:sns:publish"),
        ("arn:aws:states:::dynamodb:putItem", "arn:aws:states:::aws-sdk:dynamodb:putItem"),
        ("arn:aws:states:::sqs:sendMessage.waitForTaskToken", "arn:aws:states:::aws-sdk:sqs:sendMessage"),
        ("arn:aws:states:::events:putEvents", "arn:aws:states:::aws-sdk:eventbridge:putEvents"),
        ("arn:aws:states:::states:describeExecution", "arn:aws:states:::aws-sdk:sfn:describeExecution"),
    ],
)
def test_an_integration_dmap_does_not_run_is_named_with_the_sdk_form_and_the_handler_form(
    resource: str, sdk: str
) -> None:
    diagnostic = _refusal(resource)
    assert (diagnostic.code, diagnostic.location) == ("INTEGRATION_NOT_SUPPORTED", "/States/Notify/Resource")
    assert f"{resource!r} is an AWS service integration, which dmap does not run" in diagnostic.message
    service = sdk.split(":")[-2]
    assert f'"Resource": "{sdk}" with DMAP_INTEGRATIONS=aws-sdk:{service}' in diagnostic.message
    assert "@dmap.task('Notify')" in diagnostic.message
    assert '"Resource": "arn:aws:lambda:us-east-1:123456789012:function:Notify"' in diagnostic.message
    assert "registered:" not in diagnostic.message


def test_a_pattern_the_integration_uses_is_named_too() -> None:
    assert (
        "(nor its .waitForTaskToken pattern)" in _refusal("arn:aws:states:::sqs:sendMessage.waitForTaskToken").message
    )


def test_an_integration_without_an_sdk_twin_suggests_only_a_handler() -> None:
    message = _refusal("arn:aws:states:::apigateway:invoke").message
    assert "aws-sdk" not in message and "@dmap.task('Notify')" in message


def test_a_handler_registered_under_the_integration_arn_still_runs_it() -> None:
    registry = Registry()
    registry.register("arn:aws:states:::sns:publish", lambda event, context: {"MessageId": "1"})
    machine = dmap.asl.load(
        _notify("arn:aws:states:::sns:publish"), extra_checks=lambda d: check_resources(d, registry)
    )
    assert execute(machine, {}, runtime=Runtime(registry=registry)).output == {"MessageId": "1"}


def test_at_run_time_the_task_fails_with_the_same_explanation() -> None:
    machine = dmap.asl.load(_notify("arn:aws:states:::sns:publish"))  # the pre-run check skipped
    result = execute(machine, {}, runtime=Runtime(registry=Registry()))
    assert result.error == "States.TaskFailed"
    assert "is an AWS service integration, which dmap does not run" in (result.cause or "")

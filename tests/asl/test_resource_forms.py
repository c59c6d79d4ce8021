"""Task Resource forms: exactly AWS's, and a clear refusal before the run for what dmap does not run.

AWS accepts as a Task Resource a Lambda function ARN (``arn:aws:lambda:REGION:ACCOUNT:function:NAME``
with an optional version or alias), ``arn:aws:states:::lambda:invoke`` and its callback form
``.waitForTaskToken``, activities, and ``arn:aws:states:::`` service integrations. dmap runs the first
three (and ``states:startExecution``, tested with the callbacks); it warns where a definition uses a
bare handler name (AWS refuses it, dmap runs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dmap.asl
from dmap.asl.diagnostics import Diagnostic
from dmap.errors import DefinitionError
from dmap.interpreter import Registry
from dmap.interpreter.tasks import check_resources


def _task(resource: str, **fields: Any) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": resource, "End": True, **fields}}}


def _found(resource: str, **fields: Any) -> list[Diagnostic]:
    return dmap.asl.validate(_task(resource, **fields))


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:lambda:us-east-1:123456789012:function:Work",
        "arn:aws:lambda:us-east-1:123456789012:function:Work:prod",
        "arn:aws:lambda:us-east-1:123456789012:function:Work:$LATEST",
        "arn:aws:lambda:eu-west-3:123456789012:function:work_2:7",
        "arn:aws:states:::lambda:invoke",
    ],
)
def test_the_lambda_forms_aws_accepts_draw_no_diagnostic(resource: str) -> None:
    fields = {"Parameters": {"FunctionName": "Work"}} if resource.startswith("arn:aws:states") else {}
    assert _found(resource, **fields) == []


def test_wait_for_task_token_is_the_callback_pattern_dmap_runs() -> None:
    assert _found("arn:aws:states:::lambda:invoke.waitForTaskToken", Parameters={"FunctionName": "W"}) == []


@pytest.mark.parametrize(
    ("resource", "fragment"),
    [
        ("arn:aws:states:::lambda:invoke.sync", "Lambda has no '.sync' pattern"),
        ("arn:aws:states:::lambda:invokeAsync", "InvokeAsync API has no Step Functions integration"),
        ("arn:aws:states:::lambda:invoke.Sync", "Lambda has no '.Sync' pattern"),
        ("arn:aws:states:::lambda:call", "is not a resource AWS knows"),
    ],
)
def test_lambda_integration_forms_aws_does_not_know_are_errors(resource: str, fragment: str) -> None:
    [diagnostic] = _found(resource, Parameters={"FunctionName": "W"})
    assert (diagnostic.severity, diagnostic.code, diagnostic.location) == (
        "ERROR",
        "INVALID_RESOURCE",
        "/States/S/Resource",
    )
    assert fragment in diagnostic.message
    assert "arn:aws:states:::lambda:invoke (with Parameters/Arguments FunctionName and Payload)" in diagnostic.message


def test_an_activity_is_refused_because_nothing_polls_it() -> None:
    [diagnostic] = _found("arn:aws:states:us-east-1:123456789012:activity:Review")
    assert (diagnostic.severity, diagnostic.code) == ("ERROR", "UNSUPPORTED_RESOURCE")


@pytest.mark.parametrize(
    "resource",
    ["arn:aws:states:::lambda:invoke.sync", "arn:aws:states:::lambda:invoke.Sync"],
)
def test_a_registered_handler_does_not_make_an_unsupported_form_run(resource: str) -> None:
    registry = Registry()
    registry.register("W", lambda event, context: event)
    registry.register(resource, lambda event, context: event)
    definition = _task(resource, Parameters={"FunctionName": "W"})
    with pytest.raises(DefinitionError) as info:
        dmap.asl.load(definition, extra_checks=lambda data: check_resources(data, registry))
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code in ("UNSUPPORTED_RESOURCE", "INVALID_RESOURCE")


def test_a_bare_handler_name_is_a_warning_that_points_at_the_arn_to_use() -> None:
    [diagnostic] = _found("Work")
    assert (diagnostic.severity, diagnostic.code, diagnostic.location) == (
        "WARNING",
        "NOT_AN_AWS_ARN",
        "/States/S/Resource",
    )
    assert "'arn:aws:lambda:us-east-1:123456789012:function:Work'" in diagnostic.message
    assert '"FunctionName": "Work"' in diagnostic.message


def test_a_bare_name_in_a_map_processor_is_located_there() -> None:
    processor = {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "S", "States": _task("Work")["States"]}
    definition = {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}}}
    [diagnostic] = dmap.asl.validate(definition)
    assert (diagnostic.code, diagnostic.location) == ("NOT_AN_AWS_ARN", "/States/M/ItemProcessor/States/S/Resource")


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:lambda:us-east-1:123456789012:layer:Work",
        "arn:aws:lambda:us-east-1:123456789012:function:",
        "arn:aws:ecs:x",
    ],
)
def test_a_malformed_arn_is_a_warning(resource: str) -> None:
    [diagnostic] = _found(resource)
    assert (diagnostic.severity, diagnostic.code) == ("WARNING", "NOT_AN_AWS_ARN")


def test_query_language_inside_states_is_one_error_without_the_cascade() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "QueryLanguage": "JSONata",
            "A": {"Type": "Pass", "Output": "{% $states.input %}", "Next": "B"},
            "B": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Arguments": {"FunctionName": "f", "Payload": "{% $states.input %}"},
                "Output": "{% $states.result.Payload %}",
                "End": True,
            },
        },
    }
    [diagnostic] = dmap.asl.validate(definition)
    assert (diagnostic.severity, diagnostic.code, diagnostic.location) == (
        "ERROR",
        "MISPLACED_QUERY_LANGUAGE",
        "/States/QueryLanguage",
    )
    assert diagnostic.message.startswith("QueryLanguage belongs at the top level or inside a state, not in States")


EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "examples").rglob("*.json")
    if p.name.endswith(".asl.json") or p.name == "definition.json"
)


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(p.parents[1])) for p in EXAMPLES])
def test_the_example_definitions_validate_without_a_warning(path: Path) -> None:
    assert dmap.asl.validate(path) == []

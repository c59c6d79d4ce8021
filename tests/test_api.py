"""The Python entry points: ``dmap.run``, ``dmap.load``/``dmap.asl.load`` and ``dmap.validate`` (DESIGN §2).

``dmap.run`` returns FAILED executions instead of raising; it raises ``DefinitionError`` with every
diagnostic — before anything runs — for an invalid definition or a Task resource that resolves to
no registered handler. Diagnostics carry exact JSON-pointer locations and never leak a pydantic or
jsonpath exception. Handlers registered here go into the global registry and are removed again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dmap
import dmap.asl
from dmap.interpreter import TaskContext

Register = Callable[[str, Callable[[Any, TaskContext], Any]], str]

PASS = {
    "StartAt": "Hello",
    "States": {"Hello": {"Type": "Pass", "Result": "world", "ResultPath": "$.hello", "End": True}},
}


@pytest.fixture
def register(register_handler: Register) -> Register:
    """Register handlers in the global registry under unique names; all are removed after the test."""
    return register_handler


def _definition_error(call: Callable[[], Any]) -> dmap.DefinitionError:
    with pytest.raises(dmap.DefinitionError) as caught:
        call()
    error = caught.value
    text = str(error)
    for leak in ("pydantic", "validation error for", "jsonpath_ng", "Traceback", "errors.pydantic.dev"):
        assert leak not in text, text
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert error.diagnostics and all(d.severity == "ERROR" for d in error.diagnostics)
    return error


def test_run_returns_a_succeeded_execution_with_its_output() -> None:
    execution = dmap.run(PASS, input={"a": 1})
    assert execution.status == dmap.ExecutionStatus.SUCCEEDED
    assert execution.output == {"a": 1, "hello": "world"}
    assert execution.execution_arn.startswith("arn:aws:states:")
    assert execution.execution_arn.endswith(":" + execution.name)
    assert (execution.error, execution.cause) == (None, None)


def test_run_defaults_the_input_to_an_empty_object() -> None:
    assert dmap.run(PASS).output == {"hello": "world"}


def test_run_returns_a_failed_execution_instead_of_raising() -> None:
    execution = dmap.run({"StartAt": "No", "States": {"No": {"Type": "Fail", "Error": "Nope", "Cause": "why"}}})
    assert (execution.status, execution.error, execution.cause, execution.output) == ("FAILED", "Nope", "why", None)


def test_run_uses_the_given_execution_name() -> None:
    name = f"named-{uuid.uuid4().hex[:8]}"
    execution = dmap.run(PASS, name=name, backend="local")
    assert execution.name == name and execution.execution_arn.endswith(f":{name}")


def test_run_accepts_json_text_and_a_file_named_after_the_state_machine(tmp_path: Path) -> None:
    path = tmp_path / "orders.asl.json"
    path.write_text(json.dumps(PASS), encoding="utf-8")
    from_text = dmap.run(json.dumps(PASS))
    from_path = dmap.run(path)
    from_str = dmap.run(str(path))
    assert from_text.output == from_path.output == from_str.output == {"hello": "world"}
    assert ":execution:orders:" in from_path.execution_arn
    assert ":execution:orders:" in from_str.execution_arn


def test_run_calls_registered_handlers_through_lambda_arns_and_lambda_invoke(register: Register) -> None:
    double = register("Double", lambda event, context: event["n"] * 2)
    definition = {
        "StartAt": "Direct",
        "States": {
            "Direct": {
                "Type": "Task",
                "Resource": f"arn:aws:lambda:us-east-1:123456789012:function:{double}:prod",
                "ResultPath": "$.direct",
                "Next": "Invoke",
            },
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": double, "Payload": {"n.$": "$.direct"}},
                "ResultSelector": {"value.$": "$.Payload"},
                "ResultPath": "$.invoked",
                "End": True,
            },
        },
    }
    execution = dmap.run(definition, input={"n": 5})
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output == {"n": 5, "direct": 10, "invoked": {"value": 20}}


def test_run_reports_a_handler_exception_as_its_class_name(register: Register) -> None:
    def broken(event: Any, context: TaskContext) -> Any:
        raise KeyError("sku")

    name = register("Broken", broken)
    execution = dmap.run({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": name, "End": True}}})
    assert (execution.status, execution.error) == ("FAILED", "KeyError")
    assert json.loads(execution.cause or "")["errorType"] == "KeyError"


def test_run_rejects_an_unregistered_resource_before_running_anything(register: Register) -> None:
    ran: list[Any] = []
    known = register("Known", lambda event, context: ran.append(event))
    ghost = "arn:aws:lambda:us-east-1:123456789012:function:GhostFunction"
    definition = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": known, "Next": "Second"},
            "Second": {"Type": "Task", "Resource": ghost, "End": True},
        },
    }
    error = _definition_error(lambda: dmap.run(definition))
    (diagnostic,) = error.diagnostics
    assert (diagnostic.code, diagnostic.location) == ("UNRESOLVED_RESOURCE", "/States/Second/Resource")
    assert "'Second'" in diagnostic.message and ghost in diagnostic.message
    assert known in diagnostic.message  # the registered handlers are listed
    assert ran == []


def test_run_rejects_an_unregistered_lambda_invoke_function_name() -> None:
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "NotRegisteredAnywhere", "Payload.$": "$"},
                "End": True,
            }
        },
    }
    (diagnostic,) = _definition_error(lambda: dmap.run(definition)).diagnostics
    assert diagnostic.code == "UNRESOLVED_RESOURCE"
    assert "NotRegisteredAnywhere" in diagnostic.message


def test_run_reports_unresolved_resources_together_with_the_other_problems() -> None:
    definition = {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": "NotRegisteredAnywhere", "Next": "Missing"}},
    }
    error = _definition_error(lambda: dmap.run(definition))
    codes = {d.code for d in error.diagnostics}
    assert {"MISSING_TRANSITION_TARGET", "UNRESOLVED_RESOURCE"} <= codes


@pytest.mark.parametrize("entry", [dmap.run, dmap.load, dmap.asl.load], ids=["run", "load", "asl.load"])
def test_text_that_is_not_json_is_a_definition_error(entry: Callable[[Any], Any]) -> None:
    (diagnostic,) = _definition_error(lambda: entry('{"StartAt": "A", "States": {')).diagnostics
    assert diagnostic.code == "INVALID_JSON_DESCRIPTION"
    assert "line 1" in diagnostic.message


@pytest.mark.parametrize("entry", [dmap.run, dmap.asl.load], ids=["run", "asl.load"])
def test_a_json_array_is_a_definition_error(entry: Callable[[Any], Any]) -> None:
    (diagnostic,) = _definition_error(lambda: entry('[{"StartAt": "A"}]')).diagnostics
    assert diagnostic.location == ""
    assert "object" in diagnostic.message


def test_validate_reports_a_json_array_without_raising() -> None:
    (diagnostic,) = dmap.validate('[{"StartAt": "A"}]')
    assert (diagnostic.severity, diagnostic.location) == ("ERROR", "")


def test_a_missing_file_is_a_definition_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.asl.json"
    (diagnostic,) = _definition_error(lambda: dmap.run(missing)).diagnostics
    assert "nowhere.asl.json" in diagnostic.message


def test_a_missing_start_at_is_a_definition_error() -> None:
    definition = {"States": {"A": {"Type": "Pass", "End": True}}}
    (diagnostic,) = _definition_error(lambda: dmap.run(definition)).diagnostics
    assert diagnostic.location == "/StartAt"


def test_a_transition_to_a_missing_state_is_a_definition_error_with_every_problem() -> None:
    definition = {
        "StartAt": "Ghost",
        "States": {"A": {"Type": "Pass", "Next": "AlsoGhost"}, "B": {"Type": "Pass", "Nxt": "A", "End": True}},
    }
    error = _definition_error(lambda: dmap.asl.load(definition))
    locations = {d.location for d in error.diagnostics}
    assert {"/StartAt", "/States/A/Next", "/States/B/Nxt"} <= locations
    assert len(error.diagnostics) >= 3
    assert "Ghost" in str(error) and "AlsoGhost" in str(error)


def test_bad_paths_and_intrinsics_are_diagnostics_not_library_exceptions() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Pass",
                "Parameters": {"bad.$": "$.a[", "worse.$": "States.Format('{}'"},
                "ResultPath": "$$.context",
                "End": True,
            }
        },
    }
    error = _definition_error(lambda: dmap.load(definition))
    assert {(d.code, d.location) for d in error.diagnostics} == {
        ("INVALID_PATH", "/States/A/Parameters/bad.$"),
        ("INVALID_INTRINSIC", "/States/A/Parameters/worse.$"),
        ("INVALID_REFERENCE_PATH", "/States/A/ResultPath"),
    }


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Nxt": "B", "End": True}}},
            [("SCHEMA_VALIDATION_FAILED", "/States/A/Nxt", "did you mean 'Next'?")],
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pas", "End": True}}},
            [("SCHEMA_VALIDATION_FAILED", "/States/A/Type", "'Pas'")],
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True},
                                        "C": {"Type": "Pass", "End": True}}},
            [("UNREACHABLE_STATE", "/States/C", "'C'")],
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": -1, "End": True}}},
            [("SCHEMA_VALIDATION_FAILED", "/States/A/Seconds", "-1")],
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "x", "End": True,
                                              "TimeoutSeconds": 1, "HeartbeatSeconds": 2}}},
            [("SCHEMA_VALIDATION_FAILED", "/States/A/HeartbeatSeconds", "TimeoutSeconds")],
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Choice", "Default": "B", "Choices": [
                {"Variable": "$.x", "NumericEquals": "1", "Next": "B"}]}, "B": {"Type": "Succeed"}}},
            [("INVALID_CHOICE_RULE", "/States/A/Choices/0/NumericEquals", "number")],
        ),
        (
            {"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
                {"StartAt": "In", "States": {"In": {"Type": "Pass", "Next": "Out"}}}]},
                "Out": {"Type": "Succeed"}}},
            [("MISSING_TRANSITION_TARGET", "/States/P/Branches/0/States/In/Next", "'Out'"),
             ("MISSING_TERMINAL_STATE", "/States/P/Branches/0/States", ""),
             ("UNREACHABLE_STATE", "/States/Out", "'Out'")],
        ),
        (
            {"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, "ItemProcessor": {
                "StartAt": "I", "States": {"I": {"Type": "Task", "Resource": "r", "End": True, "Retry": [
                    {"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}}}},
            [("INVALID_RETRY", "/States/M/ItemProcessor/States/I/Retry/0/ErrorEquals", "last")],
        ),
    ],
    ids=[
        "misspelt field",
        "unknown type",
        "unreachable state",
        "negative wait",
        "heartbeat over timeout",
        "choice operand type",
        "branch leaves its scope",
        "states.all not last in a map processor",
    ],
)  # fmt: skip
def test_validate_locates_each_problem_by_json_pointer(
    definition: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    found = [d for d in dmap.validate(definition) if d.severity == "ERROR"]
    assert sorted((d.code, d.location) for d in found) == sorted((code, where) for code, where, _ in expected)
    for code, where, words in expected:
        (diagnostic,) = [d for d in found if (d.code, d.location) == (code, where)]
        assert words in diagnostic.message


def test_validate_returns_nothing_for_a_valid_definition() -> None:
    assert dmap.validate(PASS) == []


def test_validate_never_raises_on_malformed_values() -> None:
    malformed: list[Any] = [
        "",
        "   ",
        "[",
        "null",
        '{"StartAt": 1}',
        '{"StartAt": "A", "States": []}',
        {"States": None},
    ]
    for definition in malformed:
        diagnostics = dmap.validate(definition)
        assert diagnostics and all(isinstance(d, dmap.Diagnostic) for d in diagnostics), definition


def test_load_returns_the_same_machine_when_given_one() -> None:
    machine = dmap.load(PASS)
    assert dmap.load(machine) is machine
    assert machine.start_at == "Hello"

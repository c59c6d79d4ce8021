"""Tests for dmap.asl.payload: resolving payload templates, their errors, and the static checks.

The last test replays every conformance case (recorded on AWS) that is a single JSONPath Pass
state with Parameters: its payload, ResultPath and OutputPath run through this layer alone.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dmap.asl import paths
from dmap.asl.payload import check_template, resolve
from dmap.errors import StatesError

CASES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "cases"


def runtime_error(template: Any, data: Any, **kwargs: Any) -> str:
    with pytest.raises(StatesError) as info:
        resolve(template, data, **kwargs)
    assert info.value.name == "States.Runtime"
    return info.value.cause


def test_a_template_without_dynamic_fields_is_returned_as_written() -> None:
    template = {"a": 1, "b": [True, None, {"c": "$.not-a-path"}], "d": {"e": "States.Format('x')"}}
    assert resolve(template, {"x": 1}) == template


def test_dynamic_fields_lose_their_suffix_and_take_the_selected_value() -> None:
    data = {"detail": {"delivery-partner": "UQS", "shipped": ["A", "B"]}}
    context = {"Map": {"Item": {"Value": "A", "Index": 0}}}
    template = {
        "original_input.$": "$",
        "iteration_input_value.$": "$$.Map.Item.Value",
        "iteration_index.$": "$$.Map.Item.Index",
        "from_input_constant.$": "$.detail.delivery-partner",
        "constant_value": "HelloWorld",
    }
    assert resolve(template, data, context=context) == {
        "original_input": data,
        "iteration_input_value": "A",
        "iteration_index": 0,
        "from_input_constant": "UQS",
        "constant_value": "HelloWorld",
    }


def test_dynamic_fields_are_resolved_inside_nested_objects_and_arrays() -> None:
    template = {"outer": {"inner.$": "$.a"}, "list": [{"x.$": "$.b[0]"}, "plain", [{"y.$": "$v"}]]}
    out = resolve(template, {"a": 1, "b": [2]}, variables={"v": 3})
    assert out == {"outer": {"inner": 1}, "list": [{"x": 2}, "plain", [{"y": 3}]]}


def test_dynamic_fields_accept_intrinsics_and_indefinite_paths() -> None:
    template = {"greeting.$": "States.Format('Hi {}', $.name)", "ids.$": "$.items[*].id"}
    data = {"name": "Ana", "items": [{"id": 1}, {"id": 2}]}
    assert resolve(template, data) == {"greeting": "Hi Ana", "ids": [1, 2]}


def test_resolving_never_mutates_the_template_or_the_data() -> None:
    template = {"a.$": "$.x", "b": [{"c.$": "$.y"}]}
    data = {"x": {"deep": [1]}, "y": 2}
    before_template, before_data = copy.deepcopy(template), copy.deepcopy(data)
    resolve(template, data)
    assert template == before_template
    assert data == before_data


def test_non_object_templates_are_walked_too() -> None:
    assert resolve([{"a.$": "$.x"}, 1], {"x": 5}) == [{"a": 5}, 1]
    assert resolve("literal", {"x": 5}) == "literal"


def test_a_path_that_matches_nothing_fails_with_aws_wording() -> None:
    cause = runtime_error({"JobName.$": "$.JobName"}, {})
    assert cause == "The JSONPath '$.JobName' specified for the field 'JobName.$' could not be found in the input '{}'"
    cause = runtime_error({"outer": {"a.$": "$.x.y"}}, {"x": {"z": [1, "ü"]}})
    assert cause == (
        "The JSONPath '$.x.y' specified for the field 'a.$' could not be found in the input '{\"x\":{\"z\":[1,\"ü\"]}}'"
    )


def test_a_context_path_that_matches_nothing_shows_the_context() -> None:
    cause = runtime_error({"b.$": "$$.Map.Item.Value.Bucket"}, {}, context={"Map": {"Item": {"Value": {"Key": "k"}}}})
    assert cause == (
        "The JSONPath '$$.Map.Item.Value.Bucket' specified for the field 'b.$' could not be found in the input "
        '\'{"Map":{"Item":{"Value":{"Key":"k"}}}}\''
    )


def test_an_undefined_variable_fails_naming_the_variable() -> None:
    cause = runtime_error({"a.$": "$nope"}, {}, variables={"yes": 1})
    assert cause == (
        "The JSONPath '$nope' specified for the field 'a.$' could not be resolved: "
        "the variable '$nope' is not defined (defined: yes)"
    )


def test_a_path_inside_an_intrinsic_that_matches_nothing_names_the_field() -> None:
    cause = runtime_error({"m.$": "States.Format('{}', $.missing)"}, {"a": 1})
    assert cause == "The JSONPath '$.missing' specified for the field 'm.$' could not be found in the input '{\"a\":1}'"


def test_an_intrinsic_failure_keeps_its_own_error_name() -> None:
    with pytest.raises(StatesError) as info:
        resolve({"n.$": "States.MathAdd(2147483647, 1)"}, {})
    assert info.value.name == "States.IntrinsicFailure"
    assert "the sum must be between -2147483648 and 2147483647" in info.value.cause


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (5, "must be a string holding a JSONPath"),
        (None, "not null"),
        ("not a path", "must be a valid JSONPath or a valid intrinsic function call"),
        ("$.a[", "must be a valid JSONPath or a valid intrinsic function call: "),
        ("States.Nope()", "unknown intrinsic function 'States.Nope'"),
        ("States.Array(1", "must be a valid JSONPath or a valid intrinsic function call: "),
    ],
)
def test_invalid_dynamic_values_fail_at_run_time(value: Any, fragment: str) -> None:
    cause = runtime_error({"k.$": value}, {"a": 1})
    assert "'k.$'" in cause
    assert fragment in cause


def test_a_field_given_both_plain_and_dynamic_fails() -> None:
    assert runtime_error({"a": 1, "a.$": "$.x"}, {"x": 2}) == "The field 'a' is given twice, as 'a' and as 'a.$'"


def test_check_template_accepts_a_valid_template() -> None:
    template = {
        "a.$": "$.x",
        "b.$": "$$.Execution.Id",
        "c.$": "$var.items[*]",
        "d.$": "States.Format('{}', States.ArrayLength($.l))",
        "e": [{"f.$": "$.y[?(@.z > 1)]"}],
        "g": "plain $ text",
    }
    assert check_template(template) == []


def test_check_template_reports_every_problem_with_its_location() -> None:
    template = {
        "num.$": 5,
        "bad.$": "$.a[",
        "word.$": "hello",
        "call.$": "States.ArrayRange(1, 2)",
        "unknown.$": "States.Nope()",
        "dup": 1,
        "dup.$": "$.x",
        "nested": {"list": [{"ok.$": "$"}, {"x/y.$": "nope"}]},
    }
    problems = dict(check_template(template))
    assert set(problems) == {
        "/num.$",
        "/bad.$",
        "/word.$",
        "/call.$",
        "/unknown.$",
        "/dup.$",
        "/nested/list/1/x~1y.$",
    }
    assert "must be a string" in problems["/num.$"]
    assert "must be a valid JSONPath or a valid intrinsic function call: " in problems["/bad.$"]
    assert (
        problems["/word.$"]
        == "The value for the field 'word.$' must be a valid JSONPath or a valid intrinsic function call"
    )
    assert "States.ArrayRange expects exactly 3 argument(s) but got 2" in problems["/call.$"]
    assert "unknown intrinsic function 'States.Nope'" in problems["/unknown.$"]
    assert problems["/dup.$"] == "The field 'dup' is given twice, as 'dup' and as 'dup.$'"


def _isolated_pass_cases() -> list[Path]:
    if not CASES.is_dir():
        return []
    found = []
    for file in sorted(CASES.glob("*.json")):
        definition = json.loads(file.read_text())["definition"]
        states = list(definition["States"].values())
        if definition.get("QueryLanguage") == "JSONata" or len(states) != 1:
            continue
        state = states[0]
        if state.get("Type") == "Pass" and "Parameters" in state and "QueryLanguage" not in state:
            found.append(file)
    return found


PASS_CASES = _isolated_pass_cases()


@pytest.mark.skipif(not PASS_CASES, reason="shared conformance cases are not present")
@pytest.mark.parametrize("case_file", PASS_CASES, ids=[p.stem for p in PASS_CASES])
def test_conformance_pass_state_payloads_match_aws(case_file: Path) -> None:
    case = json.loads(case_file.read_text())
    (state,) = case["definition"]["States"].values()
    raw = case["input"]
    context = {"Execution": {"Input": raw}}
    effective = paths.select(state["InputPath"], raw) if "InputPath" in state else raw
    result = resolve(state["Parameters"], effective, context=context)
    output = paths.assign(raw, state.get("ResultPath", "$"), result)
    if "OutputPath" in state:
        output = paths.select(state["OutputPath"], output)
    expected = case["expected"]
    assert expected["status"] == "SUCCEEDED"
    if any(name in json.dumps(state) for name in ("States.MathRandom", "States.UUID")):
        # Random results are masked in the recordings; check only the shape.
        assert set(output) == set(expected["output"])
    else:
        assert output == expected["output"]

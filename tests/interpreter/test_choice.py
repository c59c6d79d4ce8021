"""Choice states: every comparison operator, its ``...Path`` variant, the type tests and And/Or/Not.

AWS semantics (aws-distributed-map.md §6.2; ASL spec "Choice Rules"): a comparison on a value of
the wrong type is false, not an error; timestamps compare as instants; ``StringMatches`` knows
``*`` and the escapes ``\\*`` and ``\\\\``; a ``Variable`` that does not exist is ``States.Runtime``
(except under ``IsPresent``); no match and no Default is ``States.NoChoiceMatched``.
"""

from __future__ import annotations

from typing import Any

import pytest

from .support import Harness, machine

DATA: dict[str, Any] = {
    "s": "banana",
    "s2": "apple",
    "n": 10,
    "f": 2.5,
    "b": True,
    "nul": None,
    "t": "2024-01-01T00:00:00Z",
    "t_plus1": "2024-01-01T01:00:00+01:00",
    "t_later": "2024-06-01T12:30:00.123Z",
    "d": "2024-01-01",
    "star": "a*b",
    "slash": "a\\b",
    "list": [1, 2],
    "obj": {"k": "v"},
    "ten": 10.0,
}


def _choose(sfn: Harness, rule: dict[str, Any], data: Any = None) -> Any:
    """Run a Choice with one rule: 'yes' when it matches, 'no' (the Default) otherwise."""
    definition = machine(
        ("C", {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"}),
        ("Yes", {"Type": "Pass", "Result": "yes", "End": True}),
        ("No", {"Type": "Pass", "Result": "no", "End": True}),
    )
    result = sfn.run(definition, DATA if data is None else data)
    assert result.status == "SUCCEEDED", result
    return result.output == "yes"


CASES: list[tuple[str, dict[str, Any], bool]] = [
    # strings
    ("StringEquals", {"Variable": "$.s", "StringEquals": "banana"}, True),
    ("StringEquals other", {"Variable": "$.s", "StringEquals": "Banana"}, False),
    ("StringEquals on a number", {"Variable": "$.n", "StringEquals": "10"}, False),
    ("StringLessThan", {"Variable": "$.s2", "StringLessThan": "banana"}, True),
    ("StringLessThan equal", {"Variable": "$.s", "StringLessThan": "banana"}, False),
    ("StringGreaterThan", {"Variable": "$.s", "StringGreaterThan": "apple"}, True),
    ("StringLessThanEquals equal", {"Variable": "$.s", "StringLessThanEquals": "banana"}, True),
    ("StringLessThanEquals greater", {"Variable": "$.s", "StringLessThanEquals": "b"}, False),
    ("StringGreaterThanEquals equal", {"Variable": "$.s", "StringGreaterThanEquals": "banana"}, True),
    ("StringGreaterThanEquals less", {"Variable": "$.s2", "StringGreaterThanEquals": "banana"}, False),
    ("StringEqualsPath", {"Variable": "$.s", "StringEqualsPath": "$.s"}, True),
    ("StringEqualsPath other", {"Variable": "$.s", "StringEqualsPath": "$.s2"}, False),
    ("StringLessThanPath", {"Variable": "$.s2", "StringLessThanPath": "$.s"}, True),
    ("StringGreaterThanPath", {"Variable": "$.s2", "StringGreaterThanPath": "$.s"}, False),
    ("StringLessThanEqualsPath", {"Variable": "$.s", "StringLessThanEqualsPath": "$.s"}, True),
    ("StringGreaterThanEqualsPath", {"Variable": "$.s", "StringGreaterThanEqualsPath": "$.s2"}, True),
    ("StringEqualsPath to a number", {"Variable": "$.s", "StringEqualsPath": "$.n"}, False),
    # string matching
    ("StringMatches prefix star", {"Variable": "$.s", "StringMatches": "ban*"}, True),
    ("StringMatches inner star", {"Variable": "$.s", "StringMatches": "b*na"}, True),
    ("StringMatches no star", {"Variable": "$.s", "StringMatches": "banan"}, False),
    ("StringMatches star only", {"Variable": "$.s", "StringMatches": "*"}, True),
    ("StringMatches star matches empty", {"Variable": "$.s", "StringMatches": "banana*"}, True),
    ("StringMatches escaped star", {"Variable": "$.star", "StringMatches": "a\\*b"}, True),
    ("StringMatches escaped star is literal", {"Variable": "$.s", "StringMatches": "b\\*"}, False),
    ("StringMatches escaped backslash", {"Variable": "$.slash", "StringMatches": "a\\\\b"}, True),
    ("StringMatches regex chars are literal", {"Variable": "$.s", "StringMatches": "b.n.n."}, False),
    ("StringMatches on a number", {"Variable": "$.n", "StringMatches": "*"}, False),
    # numbers
    ("NumericEquals", {"Variable": "$.n", "NumericEquals": 10}, True),
    ("NumericEquals int and float", {"Variable": "$.ten", "NumericEquals": 10}, True),
    ("NumericEquals on a string", {"Variable": "$.s", "NumericEquals": 10}, False),
    ("NumericEquals on a boolean", {"Variable": "$.b", "NumericEquals": 1}, False),
    ("NumericLessThan", {"Variable": "$.f", "NumericLessThan": 3}, True),
    ("NumericLessThan equal", {"Variable": "$.n", "NumericLessThan": 10}, False),
    ("NumericGreaterThan", {"Variable": "$.n", "NumericGreaterThan": 9.5}, True),
    ("NumericLessThanEquals", {"Variable": "$.n", "NumericLessThanEquals": 10}, True),
    ("NumericGreaterThanEquals", {"Variable": "$.f", "NumericGreaterThanEquals": 2.5}, True),
    ("NumericGreaterThanEquals less", {"Variable": "$.f", "NumericGreaterThanEquals": 2.51}, False),
    ("NumericEqualsPath", {"Variable": "$.n", "NumericEqualsPath": "$.ten"}, True),
    ("NumericLessThanPath", {"Variable": "$.f", "NumericLessThanPath": "$.n"}, True),
    ("NumericGreaterThanPath", {"Variable": "$.f", "NumericGreaterThanPath": "$.n"}, False),
    ("NumericLessThanEqualsPath", {"Variable": "$.n", "NumericLessThanEqualsPath": "$.ten"}, True),
    ("NumericGreaterThanEqualsPath", {"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.f"}, True),
    ("NumericEqualsPath to a string", {"Variable": "$.n", "NumericEqualsPath": "$.s"}, False),
    # booleans
    ("BooleanEquals", {"Variable": "$.b", "BooleanEquals": True}, True),
    ("BooleanEquals false", {"Variable": "$.b", "BooleanEquals": False}, False),
    ("BooleanEquals on a number", {"Variable": "$.n", "BooleanEquals": True}, False),
    ("BooleanEqualsPath", {"Variable": "$.b", "BooleanEqualsPath": "$.b"}, True),
    # timestamps
    ("TimestampEquals", {"Variable": "$.t", "TimestampEquals": "2024-01-01T00:00:00Z"}, True),
    ("TimestampEquals across offsets", {"Variable": "$.t_plus1", "TimestampEquals": "2024-01-01T00:00:00Z"}, True),
    ("TimestampEquals on a date only", {"Variable": "$.d", "TimestampEquals": "2024-01-01T00:00:00Z"}, False),
    ("TimestampLessThan", {"Variable": "$.t", "TimestampLessThan": "2024-01-01T00:00:01Z"}, True),
    ("TimestampGreaterThan", {"Variable": "$.t_later", "TimestampGreaterThan": "2024-06-01T12:30:00Z"}, True),
    ("TimestampLessThanEquals", {"Variable": "$.t", "TimestampLessThanEquals": "2024-01-01T00:00:00Z"}, True),
    ("TimestampGreaterThanEquals", {"Variable": "$.t", "TimestampGreaterThanEquals": "2024-01-01T00:00:01Z"}, False),
    ("TimestampEqualsPath", {"Variable": "$.t", "TimestampEqualsPath": "$.t_plus1"}, True),
    ("TimestampLessThanPath", {"Variable": "$.t", "TimestampLessThanPath": "$.t_later"}, True),
    ("TimestampGreaterThanPath", {"Variable": "$.t", "TimestampGreaterThanPath": "$.t_later"}, False),
    ("TimestampLessThanEqualsPath", {"Variable": "$.t", "TimestampLessThanEqualsPath": "$.t_plus1"}, True),
    ("TimestampGreaterThanEqualsPath", {"Variable": "$.t_later", "TimestampGreaterThanEqualsPath": "$.t"}, True),
    ("TimestampEquals on a string", {"Variable": "$.s", "TimestampEquals": "2024-01-01T00:00:00Z"}, False),
    # type tests
    ("IsNull on null", {"Variable": "$.nul", "IsNull": True}, True),
    ("IsNull on a string", {"Variable": "$.s", "IsNull": True}, False),
    ("IsNull false on a string", {"Variable": "$.s", "IsNull": False}, True),
    ("IsPresent", {"Variable": "$.s", "IsPresent": True}, True),
    ("IsPresent on null", {"Variable": "$.nul", "IsPresent": True}, True),
    ("IsPresent on a missing field", {"Variable": "$.missing", "IsPresent": True}, False),
    ("IsPresent false on a missing field", {"Variable": "$.missing", "IsPresent": False}, True),
    ("IsPresent on a missing array index", {"Variable": "$.list[5]", "IsPresent": True}, False),
    ("IsNumeric on an int", {"Variable": "$.n", "IsNumeric": True}, True),
    ("IsNumeric on a float", {"Variable": "$.f", "IsNumeric": True}, True),
    ("IsNumeric on a numeric string", {"Variable": "$.n_str", "IsNumeric": True}, False),
    ("IsNumeric on a boolean", {"Variable": "$.b", "IsNumeric": True}, False),
    ("IsString", {"Variable": "$.s", "IsString": True}, True),
    ("IsString on an object", {"Variable": "$.obj", "IsString": True}, False),
    ("IsBoolean", {"Variable": "$.b", "IsBoolean": True}, True),
    ("IsBoolean false on a number", {"Variable": "$.n", "IsBoolean": False}, True),
    ("IsTimestamp", {"Variable": "$.t_later", "IsTimestamp": True}, True),
    ("IsTimestamp on a date only", {"Variable": "$.d", "IsTimestamp": True}, False),
    ("IsTimestamp on a number", {"Variable": "$.n", "IsTimestamp": True}, False),
    # a path into the context object
    ("Variable on the context", {"Variable": "$$.State.Name", "StringEquals": "C"}, True),
    # logic
    (
        "And all true",
        {"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Variable": "$.s", "StringEquals": "banana"}]},
        True,
    ),
    (
        "And one false",
        {"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Variable": "$.s", "StringEquals": "x"}]},
        False,
    ),
    (
        "Or one true",
        {"Or": [{"Variable": "$.n", "NumericLessThan": 1}, {"Variable": "$.s", "StringEquals": "banana"}]},
        True,
    ),
    ("Or all false", {"Or": [{"Variable": "$.n", "NumericLessThan": 1}, {"Variable": "$.b", "IsNull": True}]}, False),
    ("Not", {"Not": {"Variable": "$.s", "StringEquals": "x"}}, True),
    ("Not Not", {"Not": {"Not": {"Variable": "$.s", "StringEquals": "x"}}}, False),
    (
        "nested And Or Not",
        {
            "And": [
                {"Or": [{"Variable": "$.missing", "IsPresent": True}, {"Variable": "$.b", "BooleanEquals": True}]},
                {"Not": {"And": [{"Variable": "$.n", "NumericEquals": 10}, {"Variable": "$.f", "NumericEquals": 2.5}]}},
            ]
        },
        False,
    ),
    (
        "nested Or with Not",
        {"Or": [{"Not": {"Variable": "$.n", "NumericEquals": 10}}, {"And": [{"Variable": "$.nul", "IsNull": True}]}]},
        True,
    ),
]


@pytest.mark.parametrize(("rule", "expected"), [(r, e) for _, r, e in CASES], ids=[name for name, _, _ in CASES])
def test_a_choice_rule_matches_as_aws_evaluates_it(sfn: Harness, rule: dict[str, Any], expected: bool) -> None:
    assert _choose(sfn, rule, {**DATA, "n_str": "10"}) is expected


def test_the_first_matching_rule_wins(sfn: Harness) -> None:
    definition = machine(
        ("C", {"Type": "Choice", "Choices": [
            {"Variable": "$.n", "NumericGreaterThan": 100, "Next": "Big"},
            {"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Medium"},
            {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Small"},
        ], "Default": "Tiny"}),
        ("Big", {"Type": "Pass", "Result": "big", "End": True}),
        ("Medium", {"Type": "Pass", "Result": "medium", "End": True}),
        ("Small", {"Type": "Pass", "Result": "small", "End": True}),
        ("Tiny", {"Type": "Pass", "Result": "tiny", "End": True}),
    )  # fmt: skip
    assert [sfn.run(definition, {"n": n}).output for n in (500, 10, 2, 0)] == ["big", "medium", "small", "tiny"]


def test_a_choice_passes_its_input_on_and_applies_input_and_output_paths(sfn: Harness) -> None:
    definition = machine(
        ("C", {"Type": "Choice", "InputPath": "$.inner", "OutputPath": "$.keep",
               "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Done"}]}),
        ("Done", {"Type": "Succeed"}),
    )  # fmt: skip
    result = sfn.run(definition, {"inner": {"go": True, "keep": {"k": 1}}, "outer": 0})
    assert result.output == {"k": 1}


def test_no_matching_rule_and_no_default_fails_with_no_choice_matched(sfn: Harness) -> None:
    definition = machine(
        ("C", {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "Done"}]}),
        ("Done", {"Type": "Succeed"}),
    )
    result = sfn.run(definition, {"n": 2})
    assert (result.status, result.error) == ("FAILED", "States.NoChoiceMatched")
    assert "C" in (result.cause or "")


def test_a_missing_variable_is_a_runtime_error_not_a_false_rule(sfn: Harness) -> None:
    definition = machine(
        ("C", {"Type": "Choice", "Choices": [{"Variable": "$.nope", "StringEquals": "x", "Next": "Done"}],
               "Default": "Done"}),
        ("Done", {"Type": "Succeed"}),
    )  # fmt: skip
    result = sfn.run(definition, {"n": 2})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "$.nope" in (result.cause or "")
    assert (result.cause or "").startswith("An error occurred while executing the state 'C'")


def test_a_missing_path_operand_is_a_runtime_error(sfn: Harness) -> None:
    definition = machine(
        ("C", {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEqualsPath": "$.other", "Next": "Done"}],
               "Default": "Done"}),
        ("Done", {"Type": "Succeed"}),
    )  # fmt: skip
    result = sfn.run(definition, {"n": 2})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "$.other" in (result.cause or "")


def test_a_missing_variable_after_an_earlier_matching_rule_is_never_evaluated(sfn: Harness) -> None:
    definition = machine(
        ("C", {"Type": "Choice", "Choices": [
            {"Variable": "$.n", "NumericEquals": 2, "Next": "Done"},
            {"Variable": "$.nope", "StringEquals": "x", "Next": "Done"},
        ]}),
        ("Done", {"Type": "Succeed"}),
    )  # fmt: skip
    assert sfn.run(definition, {"n": 2}).status == "SUCCEEDED"

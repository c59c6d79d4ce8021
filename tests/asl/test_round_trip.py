"""A loaded definition dumps back to ASL that loads again into the same machine.

The journal keeps that dump for redrive and DescribeStateMachineForExecution: a dump that no longer
validates makes every such execution unredrivable.
"""

from __future__ import annotations

from typing import Any

from dmap.asl import load

CHOICE: dict[str, Any] = {
    "StartAt": "Pick",
    "States": {
        "Pick": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.ok", "BooleanEquals": True, "Next": "Yes"},
                {
                    "And": [
                        {"Variable": "$.n", "NumericGreaterThan": 3},
                        {"Not": {"Variable": "$.name", "StringMatches": "x*"}},
                    ],
                    "Next": "Yes",
                },
                {"Variable": "$.gone", "IsPresent": False, "Next": "No"},
            ],
            "Default": "No",
        },
        "Yes": {"Type": "Succeed"},
        "No": {"Type": "Fail", "Error": "No"},
    },
}


def dump(definition: dict[str, Any]) -> dict[str, Any]:
    """What the backends keep in the journal (``dmap.backends._definition_json``)."""
    dumped: dict[str, Any] = load(definition).model_dump(by_alias=True, exclude_unset=True, mode="json")
    return dumped


def test_choice_rules_dump_back_to_their_asl_form() -> None:
    assert dump(CHOICE) == CHOICE
    assert load(dump(CHOICE)) == load(CHOICE)

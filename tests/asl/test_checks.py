"""The semantic checks of dmap.asl.checks, against a corpus of invalid definitions and AWS-accepted ones.

Each ``invalid/*.json`` file holds a definition and the exact (code, location) pairs the checks
must report for it. The AWS-recorded conformance definitions (all accepted by AWS) must draw no
ERROR. Malformed input of any shape must never make the checks raise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmap.asl.checks import check_definition
from dmap.asl.diagnostics import Severity

INVALID = Path(__file__).parent / "invalid"
CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "cases"
INVALID_CASES = sorted(INVALID.glob("*.json"))
CONFORMANCE_CASES = sorted(CONFORMANCE.glob("*.json")) if CONFORMANCE.is_dir() else []


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _resolve(definition: Any, location: str) -> bool:
    """True when a JSON pointer names a node of ``definition`` (or, for a missing field, its parent)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in location.split("/")[1:]]
    node = definition
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return i == len(parts) - 1 and isinstance(node, dict)
    return True


def test_the_invalid_corpus_has_at_least_forty_definitions() -> None:
    assert len(INVALID_CASES) >= 40


@pytest.mark.parametrize("path", INVALID_CASES, ids=[p.stem for p in INVALID_CASES])
def test_an_invalid_definition_reports_exactly_its_expected_problems(path: Path) -> None:
    case = _load(path)
    found = check_definition(case["definition"])
    expected = {(e["code"], e["location"]) for e in case["expected"]}
    assert {(d.code, d.location) for d in found} == expected, case["description"]
    assert len(found) == len(expected), "a problem was reported twice"
    for diagnostic in found:
        assert diagnostic.message, diagnostic
        assert _resolve(case["definition"], diagnostic.location), diagnostic


@pytest.mark.skipif(not CONFORMANCE_CASES, reason="../shared/conformance is not available")
@pytest.mark.parametrize("path", CONFORMANCE_CASES, ids=[p.stem for p in CONFORMANCE_CASES])
def test_a_definition_aws_accepted_draws_no_error(path: Path) -> None:
    errors = [d for d in check_definition(_load(path)["definition"]) if d.severity == Severity.ERROR]
    assert errors == []


def _processor(start: str, states: dict[str, Any], mode: str = "DISTRIBUTED") -> dict[str, Any]:
    config = {"Mode": mode, "ExecutionType": "STANDARD"} if mode == "DISTRIBUTED" else {"Mode": mode}
    return {"ProcessorConfig": config, "StartAt": start, "States": states}


FULL_DISTRIBUTED = {
    "Comment": "every Distributed Map option, used correctly",
    "StartAt": "Setup",
    "States": {
        "Setup": {"Type": "Pass", "Result": {"bucket": "b"}, "ResultPath": "$.config", "Next": "Process"},
        "Process": {
            "Type": "Map",
            "Label": "Process-Run_1",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "Parameters": {"Bucket.$": "$.config.bucket", "Key": "data.csv"},
                "ReaderConfig": {
                    "InputType": "CSV",
                    "CSVHeaderLocation": "GIVEN",
                    "CSVHeaders": ["id", "name"],
                    "CSVDelimiter": "SEMICOLON",
                    "MaxItemsPath": "$.limit",
                },
            },
            "ItemSelector": {"row.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
            "ItemBatcher": {"MaxItemsPerBatch": 10, "MaxInputBytesPerBatch": 262144, "BatchInput": {"run.$": "$.run"}},
            "MaxConcurrencyPath": "$.concurrency",
            "ToleratedFailurePercentage": 5,
            "ToleratedFailureCountPath": "$.failures",
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "out", "Prefix": "runs"},
                "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"},
            },
            "ItemProcessor": _processor(
                "Work",
                {
                    "Work": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "work", "Payload.$": "$"},
                        "TimeoutSeconds": 30,
                        "HeartbeatSeconds": 10,
                        "Retry": [
                            {"ErrorEquals": ["Throttled"], "BackoffRate": 1.5, "JitterStrategy": "FULL"},
                            {"ErrorEquals": ["States.ALL"], "MaxAttempts": 0},
                        ],
                        "End": True,
                    }
                },
            ),
            "Retry": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "MaxAttempts": 1}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
            "Next": "Check",
        },
        "Check": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.ok", "BooleanEquals": True},
                        {"Not": {"Variable": "$.when", "TimestampLessThan": "2024-01-01T00:00:00.000+02:00"}},
                    ],
                    "Assign": {"seen": True},
                    "Next": "Summarise",
                },
                {"Variable": "$.count", "NumericGreaterThanEqualsPath": "$.minimum", "Next": "Summarise"},
            ],
            "Default": "Failed",
        },
        "Summarise": {
            "Type": "Pass",
            "QueryLanguage": "JSONata",
            "Output": {"total": "{% $count($states.input.items) %}"},
            "Assign": {"finished": "{% $now() %}"},
            "Next": "Wait",
        },
        "Wait": {"Type": "Wait", "Timestamp": "2030-01-01T00:00:00Z", "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "States.Format('failed: {}', $.id)"},
    },
}

JSONATA_MACHINE = {
    "QueryLanguage": "JSONata",
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "ItemSelector": "{% $states.context.Map.Item.Value %}",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:listObjectsV2",
                "Arguments": {"Bucket": "{% $states.input.bucket %}", "Prefix": "in/"},
                "ReaderConfig": {"Transformation": "LOAD_AND_FLATTEN", "InputType": "JSONL", "MaxItems": 100},
            },
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Arguments": "{% $states.input.out %}"},
            "ItemProcessor": _processor("Go", {"Go": {"Type": "Pass", "End": True}}),
            "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}", "Next": "Route"}],
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [{"Condition": "{% $states.input.ok %}", "Output": {"x": 1}, "Next": "End"}],
            "Default": "End",
        },
        "End": {"Type": "Succeed"},
    },
}


@pytest.mark.parametrize("definition", [FULL_DISTRIBUTED, JSONATA_MACHINE], ids=["jsonpath", "jsonata"])
def test_a_correct_definition_using_every_feature_draws_no_diagnostic(definition: dict[str, Any]) -> None:
    assert check_definition(definition) == []


def test_a_missing_target_lists_the_states_and_suggests_a_close_name() -> None:
    definition = {
        "StartAt": "Start",
        "States": {"Start": {"Type": "Pass", "Next": "Prcess"}, "Process": {"Type": "Succeed"}},
    }
    (diagnostic,) = [d for d in check_definition(definition) if d.code == "MISSING_TRANSITION_TARGET"]
    assert "'Prcess'" in diagnostic.message
    assert "'Start', 'Process'" in diagnostic.message
    assert "did you mean 'Process'?" in diagnostic.message


def test_a_transition_out_of_a_branch_says_where_the_target_lives() -> None:
    branch = {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "Next": "Outer"}}}
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [branch], "Next": "Outer"}, "Outer": {"Type": "Succeed"}},
    }
    (diagnostic,) = [d for d in check_definition(definition) if d.code == "MISSING_TRANSITION_TARGET"]
    assert diagnostic.location == "/States/P/Branches/0/States/Inner/Next"
    assert "defined at /States" in diagnostic.message and "another scope" in diagnostic.message


def test_only_things_aws_accepts_are_warnings() -> None:
    severities = {}
    for path in INVALID_CASES:
        for diagnostic in check_definition(_load(path)["definition"]):
            severities.setdefault(diagnostic.code, set()).add(diagnostic.severity)
    assert severities.pop("ITEMS_PATH_IGNORED") == {Severity.WARNING}
    assert all(found == {Severity.ERROR} for found in severities.values()), severities


def test_a_label_with_a_slash_or_non_ascii_letters_is_accepted() -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "Label": "a/b-é",
                "ItemProcessor": _processor("W", {"W": {"Type": "Pass", "End": True}}),
                "End": True,
            }
        },
    }
    assert check_definition(definition) == []


MALFORMED: list[Any] = [
    {},
    {"StartAt": 5, "States": []},
    {"StartAt": "A", "States": {"A": None}},
    {"StartAt": "A", "States": {"A": {"Type": "Map", "ItemProcessor": [], "ItemReader": "x", "End": "yes"}}},
    {"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [None, 3, {"And": {"x": 1}}], "Default": 7}}},
    {"StartAt": "A", "States": {"A": {"Type": "Parallel", "Branches": [None, {"States": "x"}], "End": True}}},
    {"StartAt": "A", "States": {"A": {"Type": "Task", "Retry": [None, {"ErrorEquals": "x"}], "Catch": "y"}}},
    {"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": [1], "Output": {1: 2}}}},
    {"StartAt": "A", "States": {"A": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": "D"}, "Label": 3}}},
]


@pytest.mark.parametrize("definition", MALFORMED)
def test_malformed_definitions_never_make_the_checks_raise(definition: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="dmap.asl.checks"):
        result = check_definition(definition)
    assert isinstance(result, list)
    assert not caplog.records, "a check raised and was caught by the safety net"


_KEYS = st.sampled_from(
    [
        "StartAt",
        "States",
        "Type",
        "Next",
        "End",
        "Choices",
        "Default",
        "Variable",
        "And",
        "Not",
        "StringEquals",
        "IsNull",
        "Branches",
        "ItemProcessor",
        "Iterator",
        "ProcessorConfig",
        "Mode",
        "ExecutionType",
        "ItemReader",
        "ReaderConfig",
        "Resource",
        "Parameters",
        "Arguments",
        "ItemBatcher",
        "ResultWriter",
        "Label",
        "Retry",
        "Catch",
        "ErrorEquals",
        "ResultPath",
        "InputPath",
        "Assign",
        "QueryLanguage",
        "Condition",
        "Seconds",
        "Timestamp",
        "ErrorPath",
        "CSVHeaders",
        "InputType",
        "Transformation",
        "a.$",
        "A",
        "B",
    ]  # fmt: skip
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300000),
    st.sampled_from(
        [
            "A",
            "B",
            "$.a",
            "$$.x",
            "$.a[*]",
            "DISTRIBUTED",
            "EXPRESS",
            "JSONata",
            "JSONPath",
            "{% 1",
            "{% 1 %}",
            "Map",
            "Choice",
            "Pass",
            "Task",
            "States.ALL",
            "States.Format(",
            "GIVEN",
            "CSV",
        ]
    ),  # fmt: skip
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=st.dictionaries(_KEYS, _JSON, max_size=4))
def test_any_json_shape_is_checked_without_raising(definition: dict[str, Any]) -> None:
    logger = logging.getLogger("dmap.asl.checks")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        result = check_definition(definition)
    finally:
        logger.removeHandler(handler)
    assert all(d.severity in (Severity.ERROR, Severity.WARNING) for d in result)
    assert not records, records[0].getMessage() if records else ""

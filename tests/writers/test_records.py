"""Record shapes and WriterConfig transformations, checked against AWS's documented record."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dmap.errors import ConfigurationError
from dmap.writers import (
    RecordContext,
    WriterSpec,
    apply_writer_config,
    child_execution_name,
    encode_json,
    none_record,
    transform_output,
)

from .support import (
    AWS_SUCCEEDED_RECORD,
    EXECUTION_ARN_PREFIX,
    MAP_RUN_ID,
    STATE_MACHINE_ARN,
    pending,
    succeeded,
    unsuccessful,
)

CONTEXT = RecordContext(MAP_RUN_ID, STATE_MACHINE_ARN, EXECUTION_ARN_PREFIX, redrive_count=0)


def test_child_names_are_stable_version_3_uuids_distinct_per_child_and_per_run() -> None:
    name = child_execution_name(MAP_RUN_ID, 7)
    assert name == child_execution_name(MAP_RUN_ID, 7)
    assert uuid.UUID(name).version == 3
    assert name != child_execution_name(MAP_RUN_ID, 8)
    assert name != child_execution_name("another-run", 7)


def test_a_succeeded_none_record_has_aws_fields_in_aws_order_with_aws_value_types() -> None:
    record = none_record(succeeded(3, [{"customer_id": "145538"}], item={"a": 1}), CONTEXT)

    assert list(record) == list(AWS_SUCCEEDED_RECORD)
    for field, aws_value in AWS_SUCCEEDED_RECORD.items():
        assert type(record[field]) is type(aws_value), field
    name = child_execution_name(MAP_RUN_ID, 3)
    assert record["Name"] == name
    assert record["ExecutionArn"] == EXECUTION_ARN_PREFIX + name
    assert record["StateMachineArn"] == STATE_MACHINE_ARN
    assert record["Input"] == '{"a":1}'
    assert json.loads(record["Output"]) == [{"customer_id": "145538"}]
    for field in ("InputDetails", "OutputDetails", "RedriveStatus", "RedriveStatusReason", "StartDate", "StopDate"):
        assert record[field] == AWS_SUCCEEDED_RECORD[field], field


def test_the_redrive_count_of_the_map_run_is_carried_by_every_record() -> None:
    context = RecordContext(MAP_RUN_ID, STATE_MACHINE_ARN, EXECUTION_ARN_PREFIX, redrive_count=2)
    assert none_record(succeeded(0, 1), context)["RedriveCount"] == 2
    assert none_record(unsuccessful(1), context)["RedriveCount"] == 2


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_unsuccessful_records_carry_error_and_cause_instead_of_output(status: str) -> None:
    record = none_record(unsuccessful(4, status, "States.Timeout", "took too long"), CONTEXT)

    assert record["Status"] == status
    assert record["Error"] == "States.Timeout"
    assert record["Cause"] == "took too long"
    assert "Output" not in record and "OutputDetails" not in record
    assert record["RedriveStatus"] == "REDRIVABLE_BY_MAP_RUN"
    assert "RedriveStatusReason" not in record
    assert list(record) == sorted(record)  # AWS's records list fields alphabetically
    assert record["Name"] == child_execution_name(MAP_RUN_ID, 4)


def test_an_aborted_record_without_error_or_dates_leaves_those_fields_out() -> None:
    record = none_record({"Child": 0, "Index": 0, "Items": 1, "Status": "ABORTED", "Input": "{}"}, CONTEXT)

    assert "Error" not in record and "Cause" not in record
    assert "StartDate" not in record and "StopDate" not in record
    assert record["Status"] == "ABORTED"


def test_pending_records_carry_only_input_input_details_and_status() -> None:
    assert none_record(pending(5), CONTEXT) == {
        "Input": '{"n": 5}',
        "InputDetails": {"Included": True},
        "Status": "PENDING",
    }


def test_compact_gives_parsed_outputs_and_keeps_nested_arrays() -> None:
    assert transform_output(succeeded(0, [1, [2, 3]]), "COMPACT", context=CONTEXT) == [[1, [2, 3]]]
    assert transform_output(succeeded(1, {"a": None}), "COMPACT", context=CONTEXT) == [{"a": None}]


def test_flatten_concatenates_array_outputs_one_level_and_keeps_other_values() -> None:
    assert transform_output(succeeded(0, [1, [2, 3]]), "FLATTEN", context=CONTEXT) == [1, [2, 3]]
    assert transform_output(succeeded(1, []), "FLATTEN", context=CONTEXT) == []
    assert transform_output(succeeded(2, "text"), "FLATTEN", context=CONTEXT) == ["text"]


@pytest.mark.parametrize("transformation", ["COMPACT", "FLATTEN"])
def test_unsuccessful_and_pending_children_stay_none_records_under_any_transformation(transformation: str) -> None:
    failed = unsuccessful(0, "FAILED")
    assert transform_output(failed, transformation, context=CONTEXT) == [none_record(failed, CONTEXT)]
    assert transform_output(pending(1), transformation, context=CONTEXT) == [
        {"Input": '{"n": 1}', "InputDetails": {"Included": True}, "Status": "PENDING"}
    ]


def test_none_keeps_the_child_output_as_a_json_string() -> None:
    [record] = transform_output(succeeded(0, [1, 2]), "NONE", context=CONTEXT)
    assert record["Output"] == "[1,2]"


def test_apply_writer_config_yields_the_inline_array_lazily_one_child_at_a_time() -> None:
    consumed: list[int] = []

    def records() -> Iterator[dict[str, Any]]:
        for child, output in enumerate([[1, 2], 3, [4]]):
            consumed.append(child)
            yield succeeded(child, output)

    values = apply_writer_config(records(), WriterSpec(transformation="FLATTEN"), context=CONTEXT)
    assert next(values) == 1
    assert consumed == [0]
    assert list(values) == [2, 3, 4]
    assert consumed == [0, 1, 2]


def test_apply_writer_config_with_none_gives_full_records() -> None:
    values = list(apply_writer_config([succeeded(0, 1), unsuccessful(1)], WriterSpec(), context=CONTEXT))
    assert [v["Status"] for v in values] == ["SUCCEEDED", "FAILED"]
    assert values[0]["Output"] == "1"


def test_writer_spec_defaults_to_json_and_none_and_rejects_unknown_values() -> None:
    spec = WriterSpec(bucket="b")
    assert (spec.output_type, spec.transformation, spec.prefix) == ("JSON", "NONE", None)
    with pytest.raises(ConfigurationError, match="OutputType"):
        WriterSpec(output_type="CSV")
    with pytest.raises(ConfigurationError, match="Transformation"):
        WriterSpec(transformation="LOAD_AND_FLATTEN")


def test_a_status_no_result_file_holds_is_rejected() -> None:
    with pytest.raises(ValueError, match="RUNNING"):
        none_record({"Child": 0, "Status": "RUNNING", "Input": "{}"}, CONTEXT)


def test_encode_json_is_compact_utf8_and_survives_a_lone_surrogate() -> None:
    assert encode_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert len(encode_json("é")) == 4  # two quotes + two UTF-8 bytes
    encoded = encode_json(json.loads('"\\ud800"'))
    assert json.loads(encoded) == "\ud800"

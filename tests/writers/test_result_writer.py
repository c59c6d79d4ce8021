"""ResultWriter on an in-memory storage: files, formats, rollover, manifest and failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dmap.errors import ConfigurationError, ErrorName, InvalidStateError, StatesError
from dmap.writers import ResultWriter, WriterSpec, child_execution_name, result_base

from .support import (
    MAP_RUN_ARN,
    MAP_RUN_ID,
    STATE_MACHINE_ARN,
    WRITER_ARGS,
    MemoryStorage,
    pending,
    succeeded,
    unsuccessful,
)

BASE = f"jobs/{MAP_RUN_ID}/"


def mixed_records() -> list[dict[str, Any]]:
    """Every status, in child order, with outputs that exercise FLATTEN and UTF-8."""
    return [
        succeeded(0, [1, [2, 3]]),
        unsuccessful(1, "FAILED", "ValueError", "bad item"),
        succeeded(2, {"k": "é\n"}),
        unsuccessful(3, "TIMED_OUT", "States.Timeout", ""),
        unsuccessful(4, "ABORTED", "States.Aborted", "run failed"),
        succeeded(5, []),
        pending(6),
        pending(7),
    ]


def parse(data: bytes, output_type: str) -> list[Any]:
    """The values of one result file, checking it is valid JSON / JSON Lines."""
    if output_type == "JSON":
        values = json.loads(data.decode("utf-8"))
        assert isinstance(values, list)
        return values
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").split("\n")[:-1]
    assert all(lines), "JSON Lines must not contain empty lines"
    return [json.loads(line) for line in lines]


def write_all(storage: MemoryStorage, spec: WriterSpec, records: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    writer = ResultWriter(storage, spec, **WRITER_ARGS, **kwargs)
    for record in records:
        writer.write(record)
    return writer.close()


def read_group(storage: MemoryStorage, group: str, output_type: str) -> list[Any]:
    """The concatenated values of every file of a group, listed in the manifest's order."""
    manifest = storage.json(BASE + "manifest.json")
    values: list[Any] = []
    for entry in manifest["ResultFiles"][group]:
        values.extend(parse(storage.objects[("results", entry["Key"])], output_type))
    return values


EXPECTED_SUCCEEDED = {
    "COMPACT": [[1, [2, 3]], {"k": "é\n"}, []],
    "FLATTEN": [1, [2, 3], {"k": "é\n"}],
}


@pytest.mark.parametrize("transformation", ["NONE", "COMPACT", "FLATTEN"])
@pytest.mark.parametrize("output_type", ["JSON", "JSONL"])
def test_every_output_type_and_transformation_writes_aws_files(
    memory_storage: MemoryStorage, output_type: str, transformation: str
) -> None:
    spec = WriterSpec(bucket="results", prefix="jobs", output_type=output_type, transformation=transformation)
    output = write_all(memory_storage, spec, mixed_records())

    assert output == {
        "MapRunArn": MAP_RUN_ARN,
        "ResultWriterDetails": {"Bucket": "results", "Key": BASE + "manifest.json"},
    }
    assert memory_storage.keys() == sorted(
        [BASE + "manifest.json", BASE + "SUCCEEDED_0.json", BASE + "FAILED_0.json", BASE + "PENDING_0.json"]
    )
    successes = read_group(memory_storage, "SUCCEEDED", output_type)
    if transformation == "NONE":
        assert [r["Name"] for r in successes] == [child_execution_name(MAP_RUN_ID, c) for c in (0, 2, 5)]
        assert [json.loads(r["Output"]) for r in successes] == [[1, [2, 3]], {"k": "é\n"}, []]
        assert {r["StateMachineArn"] for r in successes} == {STATE_MACHINE_ARN}
    else:
        assert successes == EXPECTED_SUCCEEDED[transformation]
    failures = read_group(memory_storage, "FAILED", output_type)
    assert [(r["Status"], r["Error"], r["Cause"]) for r in failures] == [
        ("FAILED", "ValueError", "bad item"),
        ("TIMED_OUT", "States.Timeout", ""),
        ("ABORTED", "States.Aborted", "run failed"),
    ]
    assert [r["Name"] for r in failures] == [child_execution_name(MAP_RUN_ID, c) for c in (1, 3, 4)]
    assert read_group(memory_storage, "PENDING", output_type) == [
        {"Input": '{"n": 6}', "InputDetails": {"Included": True}, "Status": "PENDING"},
        {"Input": '{"n": 7}', "InputDetails": {"Included": True}, "Status": "PENDING"},
    ]


def test_the_manifest_has_aws_shape_and_sizes_equal_to_the_objects(memory_storage: MemoryStorage) -> None:
    write_all(memory_storage, WriterSpec(bucket="results", prefix="jobs"), mixed_records())

    manifest = memory_storage.json(BASE + "manifest.json")
    assert list(manifest) == ["DestinationBucket", "MapRunArn", "ResultFiles"]
    assert manifest["DestinationBucket"] == "results"
    assert manifest["MapRunArn"] == MAP_RUN_ARN
    assert list(manifest["ResultFiles"]) == ["FAILED", "PENDING", "SUCCEEDED"]
    for entries in manifest["ResultFiles"].values():
        [entry] = entries
        assert list(entry) == ["Key", "Size"]
        assert entry["Size"] == len(memory_storage.objects[("results", entry["Key"])])


def test_a_run_with_only_successes_still_lists_empty_failed_and_pending(memory_storage: MemoryStorage) -> None:
    write_all(memory_storage, WriterSpec(bucket="results", prefix="jobs"), [succeeded(0, 1)])

    files = memory_storage.json(BASE + "manifest.json")["ResultFiles"]
    assert files["FAILED"] == [] and files["PENDING"] == []
    assert [e["Key"] for e in files["SUCCEEDED"]] == [BASE + "SUCCEEDED_0.json"]


def test_a_run_without_records_writes_only_a_manifest_with_three_empty_lists(memory_storage: MemoryStorage) -> None:
    write_all(memory_storage, WriterSpec(bucket="results", prefix="jobs"), [])

    assert memory_storage.keys() == [BASE + "manifest.json"]
    assert memory_storage.json(BASE + "manifest.json")["ResultFiles"] == {"FAILED": [], "PENDING": [], "SUCCEEDED": []}


@pytest.mark.parametrize("output_type", ["JSON", "JSONL"])
def test_files_roll_over_before_passing_the_size_limit_and_keep_item_order(
    memory_storage: MemoryStorage, output_type: str
) -> None:
    records = [succeeded(i, {"value": "x" * (i % 7), "i": i}) for i in range(60)]
    spec = WriterSpec(bucket="results", prefix="jobs", output_type=output_type, transformation="COMPACT")
    write_all(memory_storage, spec, records, max_file_bytes=120)

    entries = memory_storage.json(BASE + "manifest.json")["ResultFiles"]["SUCCEEDED"]
    assert len(entries) > 10
    assert [e["Key"] for e in entries] == [f"{BASE}SUCCEEDED_{n}.json" for n in range(len(entries))]
    for entry in entries:
        data = memory_storage.objects[("results", entry["Key"])]
        assert entry["Size"] == len(data) <= 120
        assert parse(data, output_type)  # every file is valid and non-empty
    assert [v["i"] for v in read_group(memory_storage, "SUCCEEDED", output_type)] == list(range(60))


@pytest.mark.parametrize(
    ("output_type", "sizes"),
    [("JSON", [len(b"[12345,12345]"), len(b"[12345]")]), ("JSONL", [len(b"12345\n12345\n"), len(b"12345\n")])],
)
def test_a_file_may_reach_exactly_the_limit_but_not_pass_it(
    memory_storage: MemoryStorage, output_type: str, sizes: list[int]
) -> None:
    spec = WriterSpec(bucket="results", prefix="jobs", output_type=output_type, transformation="COMPACT")
    write_all(memory_storage, spec, [succeeded(i, 12345) for i in range(3)], max_file_bytes=sizes[0])

    entries = memory_storage.json(BASE + "manifest.json")["ResultFiles"]["SUCCEEDED"]
    assert [e["Size"] for e in entries] == sizes


def test_a_record_larger_than_the_limit_gets_a_file_of_its_own(memory_storage: MemoryStorage) -> None:
    records = [succeeded(0, 1), succeeded(1, "y" * 500), succeeded(2, 2)]
    write_all(
        memory_storage,
        WriterSpec(bucket="results", prefix="jobs", transformation="COMPACT"),
        records,
        max_file_bytes=50,
    )

    assert [parse(memory_storage.objects[("results", f"{BASE}SUCCEEDED_{n}.json")], "JSON") for n in range(3)] == [
        [1],
        ["y" * 500],
        [2],
    ]


def test_flatten_rolls_over_inside_one_childs_array(memory_storage: MemoryStorage) -> None:
    spec = WriterSpec(bucket="results", prefix="jobs", output_type="JSONL", transformation="FLATTEN")
    write_all(memory_storage, spec, [succeeded(0, list(range(100, 130)))], max_file_bytes=40)

    assert read_group(memory_storage, "SUCCEEDED", "JSONL") == list(range(100, 130))
    assert len(memory_storage.json(BASE + "manifest.json")["ResultFiles"]["SUCCEEDED"]) > 1


def test_sizes_count_utf8_bytes_not_characters(memory_storage: MemoryStorage) -> None:
    spec = WriterSpec(bucket="results", prefix="jobs", output_type="JSONL", transformation="COMPACT")
    write_all(memory_storage, spec, [succeeded(0, "日本")])

    [entry] = memory_storage.json(BASE + "manifest.json")["ResultFiles"]["SUCCEEDED"]
    assert entry["Size"] == len('"日本"\n'.encode()) == 9


def test_records_are_streamed_to_storage_as_they_are_written(memory_storage: MemoryStorage) -> None:
    writer = ResultWriter(memory_storage, WriterSpec(bucket="results", transformation="COMPACT"), **WRITER_ARGS)
    writer.write(succeeded(0, "first"))
    [stream] = memory_storage.open_streams
    after_first = len(stream.getvalue())
    writer.write(succeeded(1, "second"))

    assert stream.getvalue()[:after_first] == b'["first"'
    assert stream.getvalue()[after_first:] == b',"second"'
    writer.close()


@pytest.mark.parametrize(
    ("prefix", "base"),
    [("jobs", "jobs/ID/"), ("jobs/", "jobs/ID/"), ("a/b", "a/b/ID/"), ("", "ID/"), (None, "ID/")],
)
def test_result_keys_sit_under_prefix_and_map_run_id(prefix: str | None, base: str) -> None:
    assert result_base(prefix, "ID") == base


def test_unknown_statuses_are_rejected_before_anything_is_written(memory_storage: MemoryStorage) -> None:
    writer = ResultWriter(memory_storage, WriterSpec(bucket="results"), **WRITER_ARGS)
    with pytest.raises(ValueError, match="RUNNING"):
        writer.write({"Child": 0, "Status": "RUNNING", "Input": "{}"})
    assert not memory_storage.open_streams


def test_a_writer_without_a_bucket_is_a_configuration_error(memory_storage: MemoryStorage) -> None:
    with pytest.raises(ConfigurationError, match="Bucket"):
        ResultWriter(memory_storage, WriterSpec(bucket=None), **WRITER_ARGS)


def test_check_fails_with_result_writer_failed_naming_a_missing_bucket() -> None:
    writer = ResultWriter(MemoryStorage(), WriterSpec(bucket="nope"), **WRITER_ARGS)
    with pytest.raises(StatesError) as info:
        writer.check()
    assert info.value.name == ErrorName.RESULT_WRITER_FAILED.value
    assert "nope" in info.value.cause and "NoSuchBucket" in info.value.cause


def test_check_passes_for_a_writable_bucket(memory_storage: MemoryStorage) -> None:
    ResultWriter(memory_storage, WriterSpec(bucket="results"), **WRITER_ARGS).check()
    assert memory_storage.keys() == []


@pytest.mark.parametrize("fail", ["open", "write", "close"])
def test_a_storage_failure_anywhere_raises_result_writer_failed_and_publishes_nothing(fail: str) -> None:
    storage = MemoryStorage(fail=fail, code="AccessDenied")
    writer = ResultWriter(storage, WriterSpec(bucket="results", prefix="jobs"), **WRITER_ARGS)

    with pytest.raises(StatesError) as info:
        writer.write(succeeded(0, 1))
        writer.close()

    assert info.value.name == "States.ResultWriterFailed"
    assert "s3://results/" + BASE + "SUCCEEDED_0.json" in info.value.cause
    assert "AccessDenied" in info.value.cause
    assert storage.keys() == []
    assert not storage.open_streams
    with pytest.raises(InvalidStateError, match="failed"):
        writer.write(succeeded(1, 1))


def test_writing_to_a_missing_bucket_raises_result_writer_failed_with_no_such_bucket() -> None:
    writer = ResultWriter(MemoryStorage(), WriterSpec(bucket="gone", prefix="jobs"), **WRITER_ARGS)
    with pytest.raises(StatesError, match="NoSuchBucket") as info:
        writer.write(unsuccessful(0))
    assert "s3://gone/" + BASE + "FAILED_0.json" in info.value.cause


def test_abort_drops_open_uploads_and_writes_no_manifest(memory_storage: MemoryStorage) -> None:
    writer = ResultWriter(memory_storage, WriterSpec(bucket="results", prefix="jobs"), **WRITER_ARGS)
    writer.write(succeeded(0, 1))
    writer.write(pending(1))
    writer.abort()
    writer.abort()

    assert memory_storage.keys() == []
    assert not memory_storage.open_streams
    with pytest.raises(InvalidStateError, match="closed"):
        writer.close()


def test_as_a_context_manager_it_closes_on_success_and_aborts_on_error(memory_storage: MemoryStorage) -> None:
    with ResultWriter(memory_storage, WriterSpec(bucket="results", prefix="jobs"), **WRITER_ARGS) as writer:
        writer.write(succeeded(0, 1))
    assert BASE + "manifest.json" in memory_storage.keys()
    assert writer.records_written == 1

    other = MemoryStorage()
    with pytest.raises(RuntimeError):
        with ResultWriter(other, WriterSpec(bucket="results", prefix="jobs"), **WRITER_ARGS) as writer:
            writer.write(succeeded(0, 1))
            raise RuntimeError("coordinator crashed")
    assert other.keys() == []
    assert not other.open_streams


def test_closing_twice_is_refused(memory_storage: MemoryStorage) -> None:
    writer = ResultWriter(memory_storage, WriterSpec(bucket="results"), **WRITER_ARGS)
    writer.close()
    with pytest.raises(InvalidStateError):
        writer.close()

"""Items and results over the payload limit fail only their own child, with ``States.DataLimitExceeded``.

The limit is ``DMAP_PAYLOAD_LIMIT`` (AWS's 256 KiB by default); here it is set small through
Settings given to a private backend. A 10 MB single-line JSONL item runs at the default limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import dmap
from dmap import control
from dmap.backends.local import LocalBackend
from dmap.config import DEFAULT_PAYLOAD_LIMIT

from .conftest import BUCKET
from .flows import distributed_map, object_reader, result_writer

pytestmark = pytest.mark.timeout(60)


def compact_size(value: object) -> int:
    """UTF-8 bytes of the compact JSON of ``value`` (how dmap measures a payload)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def write_jsonl(path: Path, items: list[object]) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), "utf-8")


def test_a_10_mb_single_line_item_fails_its_child_naming_the_item_and_its_size(
    s3root: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    big = {"id": 1, "blob": "x" * (10 * 1024 * 1024)}
    write_jsonl(s3root / BUCKET / "big.jsonl", [{"id": 0}, big, {"id": 2}])
    definition = distributed_map(reader=object_reader(BUCKET, "big.jsonl", "JSONL"), ToleratedFailureCount=1)

    execution = dmap.run(definition, backend=local_backend())

    assert execution.status == "SUCCEEDED", execution.cause
    first, failed, last = execution.output
    assert (first["event"], last["event"]) == ({"id": 0}, {"id": 2})
    assert failed["Status"] == "FAILED"
    assert failed["Error"] == "States.DataLimitExceeded"
    assert "item 1 " in failed["Cause"]
    assert f"{compact_size(big)} bytes" in failed["Cause"]
    assert str(DEFAULT_PAYLOAD_LIMIT) in failed["Cause"]
    assert len(json.dumps(failed)) < 4096, "the failure record must not carry the 10 MB input"


def test_without_a_tolerance_the_oversize_item_fails_the_map_run_and_dmap_failures_names_it(
    s3root: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    big = {"id": 1, "blob": "x" * (10 * 1024 * 1024)}
    write_jsonl(s3root / BUCKET / "big.jsonl", [{"id": 0}, big])
    backend = local_backend()

    execution = dmap.run(distributed_map(reader=object_reader(BUCKET, "big.jsonl", "JSONL")), backend=backend)

    assert execution.status == "FAILED"
    assert execution.error == "States.ExceedToleratedFailureThreshold"
    found = control.list_failures(execution.map_runs[0].map_run_arn, backend=backend)
    failures = [f for f in found if f.status == "FAILED"]  # item 0 may be ABORTED by the threshold
    assert [(f.index, f.error) for f in failures] == [(1, "States.DataLimitExceeded")]
    assert f"{compact_size(big)} bytes" in failures[0].cause


def test_a_small_payload_limit_fails_an_oversize_input_and_an_oversize_result_each_in_its_own_child(
    s3root: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    result_over = {"id": 1, "pad": "x" * 990}  # fits as input; the handler's result adds a few bytes
    input_over = {"id": 2, "pad": "x" * 2000}
    write_jsonl(s3root / BUCKET / "items.jsonl", [{"id": 0}, result_over, input_over, {"id": 3}])
    backend = local_backend(payload_limit=1024)
    definition = distributed_map(
        reader=object_reader(BUCKET, "items.jsonl", "JSONL"),
        writer=result_writer(BUCKET, "out"),
        ToleratedFailureCount=2,
    )

    execution = dmap.run(definition, backend=backend)

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.map_runs[0].item_counts["succeeded"] == 2
    failures = {f.index: f for f in control.list_failures(execution.map_runs[0].map_run_arn, backend=backend)}
    assert sorted(failures) == [1, 2]
    assert {f.error for f in failures.values()} == {"States.DataLimitExceeded"}
    assert "'Work'" in failures[1].cause and "> 1024" in failures[1].cause
    assert "item 2 " in failures[2].cause
    assert f"{compact_size(input_over)} bytes" in failures[2].cause and "1024" in failures[2].cause


def test_an_inline_map_output_over_the_limit_fails_the_map_with_data_limit_exceeded(
    local_backend: Callable[..., LocalBackend],
) -> None:
    definition = distributed_map(ItemsPath="$.items")
    items = [{"id": i, "pad": "x" * 100} for i in range(8)]  # each fits; together they do not

    execution = dmap.run(definition, input={"items": items}, backend=local_backend(payload_limit=1024))

    assert execution.status == "FAILED"
    assert execution.error == "States.DataLimitExceeded"
    assert execution.cause


def test_a_backend_built_with_an_s3_root_reads_items_from_that_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_backend: Callable[..., LocalBackend]
) -> None:
    monkeypatch.delenv("DMAP_S3_ROOT", raising=False)
    # Without the folder, boto3 would go to S3: make that fail at once, offline.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "none")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "none")
    (tmp_path / BUCKET).mkdir()
    write_jsonl(tmp_path / BUCKET / "items.jsonl", [{"id": 0}])
    backend = local_backend(s3_root=str(tmp_path))

    execution = dmap.run(distributed_map(reader=object_reader(BUCKET, "items.jsonl", "JSONL")), backend=backend)

    assert execution.status == "SUCCEEDED", execution.cause

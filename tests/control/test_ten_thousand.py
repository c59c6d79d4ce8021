"""10,000 items, 37 of them broken: ``dmap failures`` names them, a redrive after the fix runs only them.

The Map tolerates 36 failures. The last broken item waits for the test's release, so the 37th
failure — the one that fails the Map Run — lands when every other item has finished: the run
FAILS with nothing left pending, and the redrive has exactly the 37 broken items to run again.
Results go through the ResultWriter into a ``DMAP_S3_ROOT`` folder, and the test counts every
item there after the redrive.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from dmap import control

from .conftest import Ctl, work_input, work_items, work_map

COUNT = 10_000
LAST_BROKEN = COUNT - 1
"""The gated broken item is the last one: children sent in one Celery message run one after another,
so a gated child in the middle of a pack would hold up the rest of its pack."""
BROKEN = frozenset(random.Random(37).sample(range(COUNT - 1), 36)) | {LAST_BROKEN}
READER = {
    "Resource": "arn:aws:states:::s3:getObject",
    "ReaderConfig": {"InputType": "JSON"},
    "Parameters": {"Bucket": "ctl-in", "Key": "items.json"},
}
WRITER = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "ctl-out", "Prefix": "results"}}


def _result_records(root: Path, manifest_key: str, group: str) -> list[dict[str, Any]]:
    manifest = json.loads((root / "ctl-out" / manifest_key).read_text("utf-8"))
    records: list[dict[str, Any]] = []
    for entry in manifest["ResultFiles"][group]:
        records.extend(json.loads((root / "ctl-out" / entry["Key"]).read_text("utf-8")))
    return records


@pytest.mark.slow
def test_failures_lists_exactly_the_37_broken_items_and_a_redrive_after_the_fix_runs_only_them(ctl: Ctl) -> None:
    ctl.start_workers(3, concurrency=2)
    (ctl.s3_root / "ctl-in").mkdir()
    (ctl.s3_root / "ctl-out").mkdir()
    (ctl.s3_root / "ctl-in" / "items.json").write_text(
        json.dumps(work_items(COUNT, failing=BROKEN, gated={LAST_BROKEN})), "utf-8"
    )
    definition = ctl.write_json("ten.json", work_map(reader=READER, writer=WRITER, tolerated_count=36))
    data = ctl.write_json("input.json", work_input(ctl.ns))
    name = ctl.name("ten")
    arn = f"arn:aws:states:local:000000000000:execution:ten:{name}"
    backend = ctl.backend()

    proc = ctl.popen("run", str(definition), "--input", f"@{data}", "--name", name, "--output", "json")
    try:

        def everything_else_done() -> bool:
            execution = backend.journal.execution(arn)
            if execution is None or not execution.map_runs:
                return False
            counts = backend.store.counts(execution.map_runs[0].run_id).items
            return counts.succeeded == COUNT - 37 and counts.failed == 36

        ctl.wait_for(everything_else_done, "every item but the gated one to finish", timeout=240)
        ctl.release()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 1, stderr
    failed = json.loads(stdout)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.ExceedToleratedFailureThreshold"
    (map_run_arn,) = failed["mapRunArns"]
    described = ctl.json("describe-map-run", map_run_arn)
    assert described["status"] == "FAILED"
    assert described["itemCounts"] | {"resultsWritten": 0} == {
        "pending": 0,
        "running": 0,
        "succeeded": COUNT - 37,
        "failed": 37,
        "timedOut": 0,
        "aborted": 0,
        "total": COUNT,
        "resultsWritten": 0,
    }

    failures = ctl.json("failures", map_run_arn, "--output", "json")
    assert sorted(f["index"] for f in failures) == sorted(BROKEN)
    for failure in failures:
        assert failure["status"] == "FAILED"
        assert failure["error"] == "ItemBroken"
        assert f"item {failure['index']} is broken" in json.loads(failure["cause"])["errorMessage"]
        assert failure["input"] == {
            "i": failure["index"],
            "fail": True,
            "gate": failure["index"] == LAST_BROKEN,
            "ns": ctl.ns,
            "sleep_ms": 0,
            "hold": 0,
        }
    assert ctl.json("failures", map_run_arn, "--output", "json", "--error", "ItemBroken") == failures

    ctl.fix()
    redrive = ctl.cli("redrive-execution", arn, "--output", "json", timeout=180)

    assert redrive.returncode == 0, redrive.stderr
    finished = json.loads(redrive.stdout)
    assert finished["status"] == "SUCCEEDED"
    assert ctl.counts("calls") == {i: 2 if i in BROKEN else 1 for i in range(COUNT)}
    assert ctl.counts("ok") == {i: 1 for i in range(COUNT)}
    details = finished["output"]["ResultWriterDetails"]
    assert details["Bucket"] == "ctl-out"
    succeeded = _result_records(ctl.s3_root, details["Key"], "SUCCEEDED")
    outputs = sorted(json.loads(r["Output"])["i"] for r in succeeded)
    assert outputs == list(range(COUNT))
    assert _result_records(ctl.s3_root, details["Key"], "FAILED") == []
    after = control.describe_map_run(map_run_arn, backend=backend)
    assert after.status == "SUCCEEDED"
    assert after.redrive_count == 1
    assert after.item_counts["succeeded"] == after.item_counts["total"] == COUNT

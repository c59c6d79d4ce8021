"""The counted total of a RUNNING Map Run, seen from other processes: ``dmap describe-map-run`` on celery.

A detached execution reads a 3,000-line JSONL manifest (``DMAP_S3_ROOT``) with a percentage
tolerance, so its coordinator counts the manifest while the first two children hold both child
slots. ``describe-map-run`` — a separate process reading Redis — shows the real total while the
run is RUNNING: in AWS's JSON shape (no dmap key added), and with dmap's rate and ETA as a table.
The execution is then stopped (its total stays the counted one).
"""

from __future__ import annotations

import json

from .conftest import Ctl, work_input, work_map

COUNT = 3_000


def test_describe_map_run_shows_the_counted_total_of_a_running_celery_map_run(ctl: Ctl) -> None:
    ctl.start_workers(1, concurrency=3)  # one slot for the coordinator, two for children
    manifest = ctl.s3_root / "data" / "items.jsonl"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("".join(json.dumps({"i": i, "fail": False, "gate": False}) + "\n" for i in range(COUNT)))
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSONL"},
        "Parameters": {"Bucket": "data", "Key": "items.jsonl"},
    }
    definition = ctl.write_json("fan.json", work_map(max_concurrency=2, reader=reader, tolerated_percentage=10))
    data = ctl.write_json("input.json", work_input(ctl.ns, hold=2))
    submitted = ctl.json(
        "run", str(definition), "--input", f"@{data}", "--name", ctl.name("count"), "--detach", "--output", "json"
    )
    arn = submitted["executionArn"]
    ctl.wait_for(lambda: len(ctl.held()) == 2, "two children to hold both slots")
    (map_run_arn,) = ctl.json("describe-execution", arn)["mapRunArns"]

    def total() -> int:
        return int(ctl.json("describe-map-run", map_run_arn)["itemCounts"]["total"])

    ctl.wait_for(lambda: total() == COUNT, "the counted total")  # only 2 items were granted so far
    live = ctl.json("describe-map-run", map_run_arn)
    assert live["status"] == "RUNNING"
    assert live["itemCounts"]["running"] == 2
    assert live["itemCounts"]["pending"] == COUNT - 2
    assert live["executionCounts"]["total"] == COUNT
    assert "eta" not in json.dumps(live).lower()  # AWS's DescribeMapRun shape only
    table = ctl.cli("describe-map-run", map_run_arn, "--output", "table")
    assert table.returncode == 0, table.stderr
    assert "RUNNING" in table.stdout and "3,000" in table.stdout and "ETA" in table.stdout
    print(table.stdout)

    stopped = ctl.cli("stop-execution", arn)  # running the other 2,998 items would only take time
    assert stopped.returncode == 0, stopped.stderr
    ctl.release()
    backend = ctl.backend()
    ctl.wait_for(lambda: backend.journal.execution(arn).status != "RUNNING", "the execution to stop")
    done = ctl.json("describe-map-run", map_run_arn)
    assert (done["status"], done["itemCounts"]["total"]) == ("ABORTED", COUNT)

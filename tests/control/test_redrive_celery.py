"""Honest counts and complete redrive on the celery backend, with real ``dmap worker`` processes.

A Map Run with ``ToleratedFailureCount: 0`` fails on its first failed item, long before its
source is read; its counts still cover every item (the unread ones pending). A redrive then runs
every unfinished item, the never-read ones included: from a Python list kept by the process that
ran it, or from a manifest file found by its absolute path from another folder; a file that is
gone makes ``redrive-execution`` refuse (exit 1, one line) until ``--manifest`` gives it again.
"""

from __future__ import annotations

import json
from typing import Any

import dmap
from dmap import control

from .conftest import Ctl, work_input, work_items, work_map

COUNT = 60
UNREAD_COUNT = 1_000  # more than the read-ahead window (256) and the staged children (128): some stay unread
FAILING = {3}


def assert_honest(counts: dict[str, int], total: int) -> None:
    """Every item of the source counted once, none negative, none left running."""
    assert counts["total"] == total, counts
    assert min(counts.values()) >= 0 and counts["running"] == 0, counts
    done = counts["succeeded"] + counts["failed"] + counts["timedOut"] + counts["aborted"]
    assert done + counts["pending"] == total, counts


def map_run(ctl: Ctl, arn: str) -> dmap.MapRun:
    (run,) = control.describe_execution(arn, backend=ctl.backend()).map_runs
    return run


def said(text: str) -> str:
    return " ".join(text.split())


def test_a_failed_celery_run_counts_its_unread_items_and_a_redrive_runs_them_from_a_moved_file(ctl: Ctl) -> None:
    ctl.start_workers(1, concurrency=2)
    ctl.write_json("fan.json", work_map(max_concurrency=2, tolerated_count=0))
    ctl.write_json("input.json", work_input(ctl.ns))
    source = ctl.tmp / "data" / "items.jsonl"
    source.parent.mkdir()
    source.write_text("".join(json.dumps(i) + "\n" for i in work_items(UNREAD_COUNT, failing=FAILING)), "utf-8")

    run = ctl.cli(
        "run", "fan.json", "--manifest", "data/items.jsonl", "--input", "@input.json", "--name", ctl.name("file")
    )
    assert run.returncode == 1, run.stderr
    arn = f"arn:aws:states:local:000000000000:execution:fan:{ctl.name('file')}"
    failed = control.describe_execution(arn, backend=ctl.backend())
    assert (failed.status, failed.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    assert failed.manifest == str(source)  # absolute: this process runs in another folder
    first = map_run(ctl, arn)
    for counts in (first.item_counts, first.execution_counts):
        assert_honest(counts, UNREAD_COUNT)
        assert counts["failed"] == 1 and counts["pending"] > 0

    moved = source.rename(ctl.tmp / "moved.jsonl")
    ctl.fix()
    refused = ctl.cli("redrive-execution", arn)
    assert refused.returncode == 1 and "cannot be redriven" in said(refused.stderr), refused.stderr
    assert "Traceback" not in refused.stderr and str(source) in said(refused.stderr)

    redrive = ctl.cli("redrive-execution", arn, "--manifest", str(moved), "--output", "json")
    assert redrive.returncode == 0, redrive.stderr
    assert json.loads(redrive.stdout)["status"] == "SUCCEEDED"
    again = map_run(ctl, arn)
    assert (again.status, again.redrive_count) == ("SUCCEEDED", 1)
    for counts in (again.item_counts, again.execution_counts):
        assert_honest(counts, UNREAD_COUNT)
        assert counts["succeeded"] == UNREAD_COUNT
    assert sorted(ctl.counts("ok")) == list(range(UNREAD_COUNT))  # every item ran to success, the unread ones too


def test_a_celery_run_over_a_python_list_is_redriven_to_every_item_in_the_same_process(ctl: Ctl) -> None:
    ctl.start_workers(1, concurrency=2)
    items: list[Any] = work_items(COUNT, failing=FAILING)
    definition = work_map(max_concurrency=2, tolerated_percentage=0)
    backend = ctl.backend()

    failed = dmap.run(definition, items, input=work_input(ctl.ns), backend=backend, name=ctl.name("list"))
    assert failed.status == "FAILED"
    first = map_run(ctl, failed.execution_arn)
    assert_honest(first.item_counts, COUNT)
    assert first.item_counts["pending"] > 0

    ctl.fix()
    redriven = control.redrive_execution(failed.execution_arn, backend=backend)
    assert redriven.status == "SUCCEEDED"
    again = map_run(ctl, failed.execution_arn)
    assert_honest(again.item_counts, COUNT)
    assert again.item_counts["succeeded"] == COUNT
    assert sorted(ctl.counts("ok")) == list(range(COUNT))

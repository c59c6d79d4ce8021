"""A detached execution outlives the worker that runs its coordinator, and never gets two coordinators.

``dmap run --detach`` sends one ``dmap.run_execution`` task; the worker that logs it as received
runs the coordinator. SIGKILL to that worker's whole process group takes the coordinator (and any
children it ran) down; the reaper of the surviving worker must resume the execution once its lease
expires, and the run must end SUCCEEDED with every item's output exactly once.
"""

from __future__ import annotations

import json
import re

import pytest

from dmap import control

from .conftest import Ctl, Worker, work_input, work_map

COUNT = 40
RECEIVED = re.compile(r"Task dmap\.run_execution\[[0-9a-f-]+\] received")
ENDED = re.compile(r"Task dmap\.run_execution\[[0-9a-f-]+\] succeeded in [0-9.]+s: '(\w+)'")
WRITER = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "out", "Prefix": "runs"}}


def _coordinator(workers: list[Worker]) -> Worker | None:
    found = [w for w in workers if RECEIVED.search(w.text())]
    return found[0] if len(found) == 1 else None


@pytest.mark.slow
def test_a_detached_execution_survives_sigkill_of_the_worker_running_its_coordinator(ctl: Ctl) -> None:
    ctl.extra_env.update(DMAP_LEASE_SECONDS="3", DMAP_DISPATCH_LEASE_SECONDS="10")
    workers = ctl.start_workers(2, concurrency=2, loglevel="INFO")
    definition = ctl.write_json("fan.json", work_map(max_concurrency=3))
    data = ctl.write_json("input.json", work_input(ctl.ns, COUNT, sleep_ms=150))
    name = ctl.name("detached")
    backend = ctl.backend()

    submitted = ctl.cli("run", str(definition), "--input", f"@{data}", "--name", name, "--detach", "--output", "json")

    assert submitted.returncode == 0, submitted.stderr
    record = json.loads(submitted.stdout)
    assert record["status"] == "RUNNING"
    arn = record["executionArn"]
    ctl.wait_for(lambda: _coordinator(workers) is not None, "a worker to receive the execution task")
    victim = _coordinator(workers)
    assert victim is not None
    (survivor,) = [w for w in workers if w is not victim]
    ctl.wait_for(lambda: len(ctl.counts("ok")) >= 6, "the Map Run to be under way")
    victim.kill()

    def ended() -> bool:
        execution = backend.journal.execution(arn)
        return execution is not None and execution.status != "RUNNING"

    ctl.wait_for(ended, "the execution to end after the reaper resumed it", timeout=120)
    described = ctl.json("describe-execution", arn)
    assert described["status"] == "SUCCEEDED", described
    assert described["output"] == [{"i": i, "double": 2 * i} for i in range(COUNT)]
    assert set(ctl.counts("ok")) == set(range(COUNT))
    assert f"resuming detached execution {arn}" in survivor.text()
    assert RECEIVED.search(survivor.text())
    (map_run_arn,) = described["mapRunArns"]
    map_run = control.describe_map_run(map_run_arn, backend=backend)
    assert map_run.status == "SUCCEEDED"
    assert map_run.item_counts["succeeded"] == map_run.item_counts["total"] == COUNT


@pytest.mark.slow
def test_a_detached_execution_that_waited_in_the_queue_is_run_by_one_coordinator_only(ctl: Ctl) -> None:
    # A short queue wait makes the reaper send a second copy of the task while the first still waits.
    ctl.extra_env["DMAP_DISPATCH_LEASE_SECONDS"] = "5"
    (busy,) = ctl.start_workers(1, concurrency=2, loglevel="INFO")
    blocker = ctl.write_json("blocker.json", work_map(max_concurrency=1))
    blocker_input = ctl.write_json("blocker-input.json", work_input(f"{ctl.ns}b", 1, hold=1))
    assert (
        ctl.cli("run", str(blocker), "--input", f"@{blocker_input}", "--name", ctl.name("b"), "--detach").returncode
        == 0
    )
    ctl.wait_for(lambda: ctl.conn.scard(f"ctl:{ctl.ns}b:held"), "the blocker to take both slots of the worker")
    (ctl.s3_root / "out").mkdir()
    definition = ctl.write_json("late.json", work_map(max_concurrency=4, writer=WRITER))
    data = ctl.write_json("input.json", work_input(ctl.ns, 200, sleep_ms=20))
    submitted = ctl.json(
        "run", str(definition), "--input", f"@{data}", "--name", ctl.name("late"), "--detach", "--output", "json"
    )
    arn = submitted["executionArn"]
    ctl.wait_for(lambda: f"resuming detached execution {arn}" in busy.text(), "the reaper to re-send the task", 60)
    (fresh,) = ctl.start_workers(1, concurrency=4, loglevel="INFO")  # takes the waiting copies at once
    ctl.conn.set(f"ctl:{ctl.ns}b:release", "1")
    backend = ctl.backend()
    ctl.wait_for(lambda: backend.journal.execution(arn).status != "RUNNING", "the execution to end", 120)

    def logs() -> str:
        return busy.text() + fresh.text()

    # The reaper may have sent more than one copy (one per queue wait) before the fresh worker came up.
    ctl.wait_for(lambda: len(ENDED.findall(logs())) == len(RECEIVED.findall(logs())), "every copy of the task to end")
    ended = ENDED.findall(logs())
    assert len(ended) >= 3  # the blocker's task, the execution's and at least one copy of it
    assert ended.count("SUCCEEDED") == 2  # one coordinator for the blocker, one for this execution
    assert set(ended) <= {"SUCCEEDED", "busy", "gone"}  # every other copy found it owned, or done
    output = ctl.json("describe-execution", arn)["output"]
    manifest = json.loads((ctl.s3_root / "out" / output["ResultWriterDetails"]["Key"]).read_text("utf-8"))
    records = [
        record
        for entry in manifest["ResultFiles"]["SUCCEEDED"]
        for record in json.loads((ctl.s3_root / "out" / entry["Key"]).read_text("utf-8"))
    ]
    assert sorted(json.loads(r["Output"])["i"] for r in records) == list(range(200))


@pytest.mark.slow
def test_the_reaper_resends_a_detached_execution_to_the_queue_it_was_submitted_to(ctl: Ctl) -> None:
    ctl.extra_env["DMAP_DISPATCH_LEASE_SECONDS"] = "5"  # the queue wait after which a reaper sends it again
    other = f"{ctl.queue}-other"
    (stranger,) = ctl.start_workers(1, concurrency=1, loglevel="INFO", queue=other)
    definition = ctl.write_json("fan.json", work_map())
    data = ctl.write_json("input.json", work_input(ctl.ns, 3))
    # Nobody listens on this test's own queue: the execution's task waits there and its lease runs out.
    arn = ctl.json(
        "run", str(definition), "--input", f"@{data}", "--name", ctl.name("q"), "--detach", "--output", "json"
    )["executionArn"]
    ctl.wait_for(lambda: f"resuming detached execution {arn}" in stranger.text(), "a reaper to re-send it", 60)
    ctl.wait_for(lambda: ctl.conn.llen(ctl.queue) == 2 or RECEIVED.search(stranger.text()), "the re-sent task")

    assert not RECEIVED.search(stranger.text())
    assert ctl.conn.llen(ctl.queue) == 2

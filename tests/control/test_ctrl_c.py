"""Ctrl-C on ``dmap run`` (celery backend) stops the execution ABORTED; ``dmap redrive-execution`` finishes it.

The first four handler calls hold the four worker slots until released, so at the moment of the
Ctrl-C the run is in a known state: four children running, four more dispatched and queued behind
them (MaxConcurrency 8), the rest never started. Every item's successful handler call is then
counted in Redis across the stop and the redrive.
"""

from __future__ import annotations

import json
import signal

from dmap import control

from .conftest import Ctl, work_input, work_map

COUNT = 40


def _run_id(map_run_arn: str) -> str:
    return map_run_arn.rsplit(":", 1)[-1]


def test_ctrl_c_aborts_a_celery_run_and_a_redrive_runs_every_item_successfully_exactly_once(ctl: Ctl) -> None:
    ctl.start_workers(2, concurrency=2)
    definition = ctl.write_json("fan.json", work_map(max_concurrency=8))
    data = ctl.write_json("input.json", work_input(ctl.ns, COUNT, sleep_ms=20, hold=4))
    name = ctl.name("ctrl-c")
    arn = f"arn:aws:states:local:000000000000:execution:fan:{name}"
    backend = ctl.backend()

    proc = ctl.popen("run", str(definition), "--input", f"@{data}", "--name", name, "--output", "json")
    try:
        ctl.wait_for(
            lambda: backend.journal.execution(arn) is not None and backend.journal.execution(arn).map_runs,
            "the Map Run to start",
        )
        map_run_arn = control.list_map_runs(arn, backend=backend)[0].map_run_arn
        run_id = _run_id(map_run_arn)

        def saturated() -> bool:
            counts = backend.store.counts(run_id)
            return counts.items.running == 4 and counts.leases == 8 and len(ctl.held()) == 4

        ctl.wait_for(saturated, "the held items to fill every worker slot with four more children queued")
        proc.send_signal(signal.SIGINT)
        ctl.wait_for(lambda: backend.journal.stop_requested(arn), "the Ctrl-C to request the stop")
        ctl.release()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "stopping (Ctrl-C)" in stderr
    stopped = json.loads(stdout)
    assert stopped["status"] == "ABORTED"
    assert stopped["error"] == "States.Aborted"

    # The four queued children are recorded ABORTED as soon as workers pick them up.
    ctl.wait_for(lambda: backend.store.counts(run_id).leases == 0, "the queued children to be aborted")
    succeeded = set(ctl.counts("ok"))
    assert ctl.held() <= succeeded and len(succeeded) < COUNT

    described = ctl.json("describe-map-run", map_run_arn)
    assert described["status"] == "ABORTED"
    assert described["itemCounts"]["succeeded"] == len(succeeded)
    assert described["itemCounts"]["running"] == 0
    assert described["itemCounts"]["aborted"] + described["itemCounts"]["pending"] >= 4

    failures = ctl.json("failures", map_run_arn, "--output", "json")
    assert len(failures) == backend.store.counts(run_id).items.aborted >= 4
    for failure in failures:
        assert failure["status"] == "ABORTED"
        assert "aborted (stopped)" in failure["cause"]
        assert failure["input"]["i"] == failure["index"]
        assert failure["index"] not in succeeded
    table = ctl.cli("failures", map_run_arn)
    assert table.returncode == 0
    assert f"{len(failures)} failed item(s)" in table.stdout

    redrive = ctl.cli("redrive-execution", arn, "--output", "json")

    assert redrive.returncode == 0, redrive.stderr
    finished = json.loads(redrive.stdout)
    assert finished["status"] == "SUCCEEDED"
    assert finished["redriveCount"] == 1
    assert finished["output"] == [{"i": i, "double": 2 * i} for i in range(COUNT)]
    assert ctl.counts("ok") == {i: 1 for i in range(COUNT)}
    assert ctl.counts("calls") == {i: 1 for i in range(COUNT)}
    after = ctl.json("describe-map-run", map_run_arn)
    assert after["status"] == "SUCCEEDED"
    assert after["redriveCount"] == 1
    assert after["itemCounts"]["succeeded"] == after["itemCounts"]["total"] == COUNT
    assert ctl.json("failures", map_run_arn, "--output", "json") == []

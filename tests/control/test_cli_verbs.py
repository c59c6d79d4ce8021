"""Every control verb of the ``dmap`` CLI as real processes on the celery backend, on a detached execution.

The execution's first two handler calls hold both child slots of the one worker, so it is RUNNING
for as long as the test needs; then ``stop-execution`` ends it ABORTED and ``redrive-execution``
finishes it. Bad input is refused with exit code 1 or 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import json

from .conftest import Ctl, flat, work_input, work_map

COUNT = 10
UNKNOWN_EXECUTION = "arn:aws:states:local:000000000000:execution:fan:no-such-execution"
UNKNOWN_MAP_RUN = "arn:aws:states:local:000000000000:mapRun:fan/label:no-such-map-run"


def said(text: str) -> str:
    """``text`` with every run of whitespace as one space."""
    return " ".join(text.split())


def test_the_control_verbs_describe_update_stop_and_redrive_a_detached_celery_execution(ctl: Ctl) -> None:
    ctl.start_workers(1, concurrency=3)  # one slot for the coordinator, two for children
    definition = ctl.write_json("fan.json", work_map(max_concurrency=2))
    data = ctl.write_json("input.json", work_input(ctl.ns, COUNT, hold=2))
    name = ctl.name("verbs")
    backend = ctl.backend()

    submitted = ctl.json("run", str(definition), "--input", f"@{data}", "--name", name, "--detach", "--output", "json")
    arn = submitted["executionArn"]
    assert submitted["status"] == "RUNNING"
    assert arn == f"arn:aws:states:local:000000000000:execution:fan:{name}"
    ctl.wait_for(lambda: len(ctl.held()) == 2, "two children to hold both slots")

    described = ctl.json("describe-execution", arn)
    assert described["status"] == "RUNNING"
    assert described["input"]["ns"] == ctl.ns
    (map_run_arn,) = described["mapRunArns"]
    listed = ctl.json("list-executions", "--output", "json")
    assert next(e for e in listed if e["executionArn"] == arn)["status"] == "RUNNING"
    table = ctl.cli("list-executions")
    assert table.returncode == 0 and name in table.stdout
    (run,) = ctl.json("list-map-runs", arn)["mapRuns"]
    assert run["mapRunArn"] == map_run_arn and "stopDate" not in run
    live = ctl.json("describe-map-run", map_run_arn)
    assert live["status"] == "RUNNING"
    assert live["maxConcurrency"] == 2
    assert live["itemCounts"]["running"] == 2
    assert live["itemCounts"]["total"] == COUNT

    updated = ctl.json("update-map-run", map_run_arn, "--max-concurrency", "1", "--tolerated-failure-count", "3")
    assert (updated["maxConcurrency"], updated["toleratedFailureCount"]) == (1, 3)
    assert backend.store.config(map_run_arn.rsplit(":", 1)[-1]).max_concurrency == 1
    stopped = ctl.cli("stop-execution", arn)
    assert stopped.returncode == 0, stopped.stderr
    assert "stop requested" in stopped.stdout
    ctl.release()
    ctl.wait_for(lambda: backend.journal.execution(arn).status != "RUNNING", "the execution to stop")

    aborted = ctl.json("describe-execution", arn)
    assert (aborted["status"], aborted["error"]) == ("ABORTED", "States.Aborted")
    summary = ctl.cli("describe-execution", arn, "--output", "table")
    assert summary.returncode == 0 and "ABORTED" in summary.stdout
    late = ctl.cli("update-map-run", map_run_arn, "--max-concurrency", "4")
    assert late.returncode == 1 and "not RUNNING" in said(late.stderr)
    again = ctl.cli("stop-execution", arn)
    assert again.returncode == 1 and "only a RUNNING execution can be stopped" in said(again.stderr)

    redrive = ctl.cli("redrive-execution", arn, "--output", "json")
    assert redrive.returncode == 0, redrive.stderr
    finished = json.loads(redrive.stdout)
    assert finished["status"] == "SUCCEEDED"
    assert finished["output"] == [{"i": i, "double": 2 * i} for i in range(COUNT)]
    assert ctl.counts("ok") == {i: 1 for i in range(COUNT)}
    done = ctl.cli("redrive-execution", arn)
    assert done.returncode == 1 and "SUCCEEDED and cannot be redriven" in said(done.stderr)
    for result in (late, again, done):
        assert "Traceback" not in result.stderr


def test_bad_input_to_the_celery_cli_is_one_clear_line_with_exit_1_or_2(ctl: Ctl) -> None:
    # One of each kind through the Redis journal; every verb is covered on the local backend in tests/test_cli.py.
    cases = [
        (["describe-execution", UNKNOWN_EXECUTION], 1, "execution does not exist"),
        (["failures", UNKNOWN_MAP_RUN], 1, "map run does not exist"),
        (["update-map-run", UNKNOWN_MAP_RUN, "--max-concurrency", "-1"], 2, "--max-concurrency"),
        (["update-map-run", UNKNOWN_MAP_RUN, "--tolerated-failure-percentage", "101"], 2, "less than or equal to 100"),
    ]
    for args, code, message in cases:
        done = ctl.cli(*args)

        assert done.returncode == code, (args, done.stderr)
        assert message in said(done.stderr), (args, done.stderr)
        assert flat(args[1]) in flat(done.stderr) or code == 2
        assert "Traceback" not in done.stderr
        assert done.stdout == ""

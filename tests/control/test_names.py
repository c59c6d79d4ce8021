"""Execution names on the celery backend, with real ``dmap worker`` processes and real Redis (DESIGN §10).

A detached execution holds the only coordinator of its name. Submitting the same name with the same
input again — detached, or as a waiting ``dmap run`` — attaches to it: no second ``run_execution``
task, no second coordinator, every item runs once and the counts are not doubled. The same name with
another input, or after the execution ended, is refused with exit code 1 and a message naming the
existing execution; its record stays as it was.
"""

from __future__ import annotations

import json
import re
import threading

import pytest

import dmap
from dmap import control

from .conftest import Ctl, work_input, work_map

COUNT = 6
RECEIVED = re.compile(r"Task dmap\.run_execution\[[0-9a-f-]+\] received")


def said(text: str) -> str:
    """``text`` with every run of whitespace as one space (rich wraps long lines)."""
    return " ".join(text.split())


def test_a_running_detached_execution_submitted_again_under_its_name_is_attached_to_and_runs_once(ctl: Ctl) -> None:
    (worker,) = ctl.start_workers(1, concurrency=3, loglevel="INFO")  # the coordinator and two children
    definition = ctl.write_json("fan.json", work_map(max_concurrency=2))
    data = ctl.write_json("input.json", work_input(ctl.ns, COUNT, hold=2))
    name = ctl.name("attach")
    backend = ctl.backend()
    args = ["run", str(definition), "--input", f"@{data}", "--name", name, "--output", "json"]

    first = ctl.json(*args, "--detach")
    arn = first["executionArn"]
    ctl.wait_for(lambda: len(ctl.held()) == 2, "two children to hold both slots")
    before = backend.journal.execution(arn)
    assert before is not None

    again = ctl.cli(*args, "--detach")
    waiting = ctl.popen(*args)  # a waiting `dmap run` of the same name: it follows, it does not coordinate
    said_so: list[str] = []
    reader = threading.Thread(target=lambda: said_so.extend(waiting.stderr or []), daemon=True)
    reader.start()
    ctl.wait_for(lambda: any("attached to it" in line for line in said_so), "the second `dmap run` to attach")
    by_api = dmap.run(definition, input=json.loads(data.read_text("utf-8")), backend=backend, name=name, wait=False)

    assert again.returncode == 0, again.stderr
    notice = f"execution {arn} is already RUNNING (started {first['startDate']}) with this input and item source"
    assert said(again.stderr) == f"{notice}: attached to it"
    attached = json.loads(again.stdout)
    assert attached["executionArn"] == by_api.execution_arn == arn
    assert attached["status"] == by_api.status == "RUNNING"
    assert attached["startDate"] == by_api.start_date == first["startDate"]
    assert waiting.poll() is None
    ctl.release()
    waiting.wait(timeout=120)
    stdout = waiting.stdout.read() if waiting.stdout else ""
    reader.join(10)
    assert waiting.returncode == 0, "".join(said_so)
    followed = json.loads(stdout)
    assert (followed["executionArn"], followed["status"]) == (arn, "SUCCEEDED")
    assert followed["output"] == [{"i": i, "double": 2 * i} for i in range(COUNT)]
    assert ctl.counts("calls") == dict.fromkeys(range(COUNT), 1)
    assert len(RECEIVED.findall(worker.text())) == 1  # one run_execution task: one coordinator
    done = control.describe_execution(arn, backend=backend)
    assert (done.start_date, done.redrive_count, done.input) == (before.start_date, 0, before.input)
    (map_run,) = done.map_runs
    assert map_run.item_counts["total"] == map_run.item_counts["succeeded"] == COUNT
    assert map_run.execution_counts["total"] == map_run.execution_counts["succeeded"] == COUNT


def test_the_name_of_a_running_execution_with_another_input_is_refused_with_exit_1(ctl: Ctl) -> None:
    ctl.start_workers(1, concurrency=3)
    definition = ctl.write_json("fan.json", work_map(max_concurrency=2))
    data = ctl.write_json("input.json", work_input(ctl.ns, COUNT, hold=2))
    other = ctl.write_json("other.json", work_input(ctl.ns, COUNT + 1, hold=2))
    name = ctl.name("other")
    backend = ctl.backend()
    arn = ctl.json("run", str(definition), "--input", f"@{data}", "--name", name, "--detach", "--output", "json")[
        "executionArn"
    ]
    ctl.wait_for(lambda: len(ctl.held()) == 2, "two children to hold both slots")
    before = backend.journal.execution(arn)

    refused = ctl.cli("run", str(definition), "--input", f"@{other}", "--name", name, "--detach")
    waited = ctl.cli("run", str(definition), "--input", f"@{other}", "--name", name)
    with pytest.raises(dmap.ExecutionAlreadyExists) as caught:
        dmap.run(definition, input=json.loads(other.read_text("utf-8")), backend=backend, name=name)

    for done in (refused, waited):
        assert done.returncode == 1, (done.stdout, done.stderr)
        message = said(done.stderr)
        assert message.startswith(f"error: execution {arn} is RUNNING with a different input"), message
        assert f"dmap stop-execution {arn}" in message and "--name" in message
        assert "Traceback" not in done.stderr and done.stdout == ""
    assert (caught.value.execution_arn, caught.value.status, caught.value.reason) == (arn, "RUNNING", "input")
    after = backend.journal.execution(arn)
    assert after is not None and before is not None
    assert (after.input, after.start_date) == (before.input, before.start_date)
    ctl.release()
    ctl.wait_for(lambda: backend.journal.execution(arn).status != "RUNNING", "the execution to end")
    assert backend.journal.execution(arn).output == [{"i": i, "double": 2 * i} for i in range(COUNT)]
    assert ctl.counts("calls") == dict.fromkeys(range(COUNT), 1)


def test_the_name_of_a_succeeded_execution_is_refused_with_exit_1_and_the_record_is_kept(ctl: Ctl) -> None:
    ctl.start_workers(1, concurrency=2)
    definition = ctl.write_json("fan.json", work_map(max_concurrency=2))
    data = ctl.write_json("input.json", work_input(ctl.ns, 3))
    name = ctl.name("done")
    backend = ctl.backend()
    args = ["run", str(definition), "--input", f"@{data}", "--name", name]

    first = ctl.cli(*args, "--output", "json")
    assert first.returncode == 0, first.stderr
    arn = json.loads(first.stdout)["executionArn"]
    before = control.describe_execution(arn, backend=backend).describe()
    detached = ctl.cli(*args, "--detach")
    waited = ctl.cli(*args)

    for done in (detached, waited):
        assert done.returncode == 1, (done.stdout, done.stderr)
        message = said(done.stderr)
        assert message.startswith(f"error: execution {arn} already exists and is SUCCEEDED"), message
        assert "--name" in message and "Traceback" not in done.stderr
    assert control.describe_execution(arn, backend=backend).describe() == before
    assert ctl.counts("calls") == dict.fromkeys(range(3), 1)

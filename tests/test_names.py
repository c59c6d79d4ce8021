"""Execution names follow AWS's StartExecution rule, on the embedded backend (DESIGN §10).

Within one state machine: a free name starts an execution; the name of a RUNNING execution with the
same input and item source attaches to it (no second execution, no second coordinator, every item
runs once); the name of a closed execution — or of a RUNNING one with another input or source —
raises ``dmap.ExecutionAlreadyExists`` and leaves the stored execution exactly as it was. The celery
side (real workers, detached runs) is in ``tests/control/test_names.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dmap
from dmap import control
from dmap.api import start
from dmap.backends.local import LocalBackend
from dmap.cli import app
from dmap.config import Settings
from dmap.interpreter import registry
from tests.definitions import distributed_map

PASS_MAP = distributed_map()


class _Gate:
    """What ``NamesWork`` does: count each item's calls, and wait at the gate until it opens."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.calls: dict[int, int] = {}
        self.lock = threading.Lock()


GATE = _Gate()


@dmap.task("NamesWork")
def _work(event: Any, context: dmap.TaskContext) -> Any:
    with GATE.lock:
        GATE.calls[int(event)] = GATE.calls.get(int(event), 0) + 1
    GATE.open.wait(30)
    return event


WORK_MAP = {
    "StartAt": "M",
    "States": {
        "M": {
            "Type": "Map",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "W",
                "States": {"W": {"Type": "Task", "Resource": "NamesWork", "End": True}},
            },
            "End": True,
        }
    },
}
FAIL = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "on purpose"}}}


@pytest.fixture(autouse=True)
def gate() -> Iterator[_Gate]:
    global GATE
    GATE = _Gate()
    yield GATE
    GATE.open.set()


@pytest.fixture
def backend(gate: _Gate) -> Iterator[LocalBackend]:
    """A private embedded backend (its own journal, run store and threads)."""
    engine = LocalBackend(Settings())
    yield engine
    gate.open.set()
    for thread in threading.enumerate():
        if thread.name in ("dmap-execution", "dmap-attached"):
            thread.join(timeout=10)
    engine.close()


def unique() -> str:
    return f"names-{uuid.uuid4().hex[:10]}"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


def stored(backend: LocalBackend, arn: str) -> dict[str, Any]:
    described = control.describe_execution(arn, backend=backend).describe()
    return described


def running(backend: LocalBackend, manifest: Any, name: str, **kwargs: Any) -> dmap.Execution:
    """Start ``WORK_MAP`` in the background and wait until every item's handler waits at the gate."""
    execution = start(WORK_MAP, manifest, backend=backend, name=name, **kwargs)
    wait_for(lambda: sum(GATE.calls.values()) == len(manifest), "every item to reach the gate")
    return execution


# -- closed executions ---------------------------------------------------------------------------


def test_a_second_run_with_the_name_of_a_succeeded_execution_raises_and_changes_nothing(
    backend: LocalBackend,
) -> None:
    name = unique()
    first = dmap.run(PASS_MAP, [1, 2, 3], backend=backend, name=name)
    assert (first.status, first.output) == ("SUCCEEDED", [1, 2, 3])
    before = stored(backend, first.execution_arn)

    with pytest.raises(dmap.ExecutionAlreadyExists) as caught:
        dmap.run(PASS_MAP, [100, 101, 102, 103, 104], backend=backend, name=name)

    error = caught.value
    assert isinstance(error, dmap.DmapError)
    assert (error.execution_arn, error.status) == (first.execution_arn, "SUCCEEDED")
    assert first.execution_arn in str(error) and "SUCCEEDED" in str(error) and "--name" in str(error)
    after = stored(backend, first.execution_arn)
    assert after == before
    assert (after["output"], after["input"], after["redriveCount"]) == ([1, 2, 3], {}, 0)


def test_the_same_input_does_not_reuse_the_name_of_a_closed_execution(backend: LocalBackend) -> None:
    name = unique()
    first = dmap.run(PASS_MAP, [1, 2, 3], backend=backend, name=name)

    with pytest.raises(dmap.ExecutionAlreadyExists):
        dmap.run(PASS_MAP, [1, 2, 3], backend=backend, name=name)
    with pytest.raises(dmap.ExecutionAlreadyExists):
        start(PASS_MAP, [1, 2, 3], backend=backend, name=name, wait=False)

    assert control.describe_execution(first.execution_arn, backend=backend).start_date == first.start_date


def test_the_name_of_a_failed_execution_raises_and_says_how_to_redrive_it(backend: LocalBackend) -> None:
    name = unique()
    failed = dmap.run(FAIL, backend=backend, name=name)
    assert failed.status == "FAILED"

    with pytest.raises(dmap.ExecutionAlreadyExists) as caught:
        dmap.run(FAIL, backend=backend, name=name)

    assert caught.value.status == "FAILED"
    assert f"dmap redrive-execution {failed.execution_arn}" in str(caught.value)


def test_the_same_name_under_another_state_machine_is_a_different_execution(
    backend: LocalBackend, tmp_path: Path
) -> None:
    name = unique()
    path = tmp_path / "other.asl.json"
    path.write_text(json.dumps(PASS_MAP), "utf-8")
    first = dmap.run(PASS_MAP, [1], backend=backend, name=name)

    second = dmap.run(path, [2], backend=backend, name=name)

    assert second.status == "SUCCEEDED" and second.execution_arn != first.execution_arn
    assert second.execution_arn.endswith(f":other:{name}")


# -- running executions --------------------------------------------------------------------------


def test_the_same_name_input_and_items_attach_to_the_running_execution_and_run_each_item_once(
    backend: LocalBackend, gate: _Gate
) -> None:
    name = unique()
    first = running(backend, [0, 1, 2], name, input={"k": 1})
    attached: dict[str, dmap.Execution] = {}

    def again() -> None:  # a tuple of the same items is the same source
        attached["e"] = dmap.run(WORK_MAP, (0, 1, 2), input={"k": 1}, backend=backend, name=name)

    waiter = threading.Thread(target=again)
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive()  # it waits for the running execution instead of starting another

    gate.open.set()
    waiter.join(20)

    assert attached["e"].status == "SUCCEEDED" and attached["e"].output == [0, 1, 2]
    assert attached["e"].execution_arn == first.execution_arn
    assert attached["e"].start_date == first.start_date
    assert gate.calls == {0: 1, 1: 1, 2: 1}
    (map_run,) = control.describe_execution(first.execution_arn, backend=backend).map_runs
    assert map_run.item_counts["total"] == map_run.item_counts["succeeded"] == 3


def test_attaching_without_waiting_returns_the_running_execution_and_follows_it(
    backend: LocalBackend, gate: _Gate
) -> None:
    name = unique()
    first = running(backend, [0, 1], name)

    again = start(WORK_MAP, [0, 1], backend=backend, name=name, wait=False)

    assert again.status == "RUNNING" and again.execution_arn == first.execution_arn
    gate.open.set()
    wait_for(lambda: again.status != "RUNNING", "the attached execution to end")
    assert (again.status, again.output) == ("SUCCEEDED", [0, 1])
    assert gate.calls == {0: 1, 1: 1}


@pytest.mark.parametrize(
    ("manifest", "data", "reason"),
    [([0, 1, 9], {}, "source"), ([0, 1], {"other": True}, "input"), (iter([0, 1]), {}, "source")],
    ids=["other-items", "other-input", "a-generator"],
)
def test_a_running_execution_with_another_input_or_source_raises_and_keeps_running(
    backend: LocalBackend, gate: _Gate, manifest: Any, data: Any, reason: str
) -> None:
    name = unique()
    first = running(backend, [0, 1], name)
    before = stored(backend, first.execution_arn)

    with pytest.raises(dmap.ExecutionAlreadyExists) as caught:
        dmap.run(WORK_MAP, manifest, input=data, backend=backend, name=name)

    assert (caught.value.status, caught.value.reason) == ("RUNNING", reason)
    assert f"dmap stop-execution {first.execution_arn}" in str(caught.value)
    assert stored(backend, first.execution_arn) == before
    gate.open.set()
    wait_for(lambda: first.status != "RUNNING", "the first execution to end")
    assert (first.status, first.output) == ("SUCCEEDED", [0, 1])
    assert gate.calls == {0: 1, 1: 1}


def test_a_local_manifest_path_compares_resolved(
    backend: LocalBackend, gate: _Gate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "items.json").write_text(json.dumps([0, 1]), "utf-8")
    monkeypatch.chdir(tmp_path)
    name = unique()
    first = start(WORK_MAP, "items.json", backend=backend, name=name)
    wait_for(lambda: sum(GATE.calls.values()) == 2, "both items to reach the gate")

    again = start(WORK_MAP, str(tmp_path / "items.json"), backend=backend, name=name)
    with pytest.raises(dmap.ExecutionAlreadyExists):
        start(WORK_MAP, str(tmp_path / "other.json"), backend=backend, name=name)

    assert again.execution_arn == first.execution_arn
    gate.open.set()
    wait_for(lambda: again.status != "RUNNING", "the attached execution to end")
    assert again.status == "SUCCEEDED" and gate.calls == {0: 1, 1: 1}


class _Crash(BaseException):
    """The caller dies mid-run (nothing in dmap catches a BaseException that is not an Exception)."""


def test_a_running_execution_nobody_runs_any_more_is_resumed_under_its_name(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    name, calls = unique(), {"n": 0}

    def crash_once(event: Any, context: dmap.TaskContext) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise _Crash()  # a top-level Task runs in the caller: this unwinds it like a kill
        return event

    definition = {
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "NamesCrash", "ResultPath": None, "Next": "M"},
            "M": PASS_MAP["States"]["M"],
        },
    }
    registry.register("NamesCrash", crash_once)
    try:
        with pytest.raises(_Crash):
            dmap.run(definition, [7], input={"k": 2}, backend=backend, name=name)
        (left,) = control.list_executions(backend=backend)
        assert (left.name, left.status) == (name, "RUNNING")

        with caplog.at_level("WARNING", logger="dmap.identity"):
            resumed = dmap.run(definition, [7], input={"k": 2}, backend=backend, name=name)
    finally:
        registry.unregister("NamesCrash")
    said = [r.getMessage() for r in caplog.records if r.name == "dmap.identity"]
    assert said == [f"execution {left.execution_arn} is RUNNING but no live process runs it any more: resuming it here"]

    assert (resumed.status, resumed.output) == ("SUCCEEDED", [7])
    assert resumed.execution_arn == left.execution_arn and resumed.start_date == left.start_date
    assert len(control.list_executions(backend=backend)) == 1


# -- the command line ----------------------------------------------------------------------------


def test_the_cli_exits_1_naming_the_existing_execution_when_the_name_is_taken(tmp_path: Path) -> None:
    definition = tmp_path / "names.asl.json"
    definition.write_text(json.dumps(PASS_MAP), "utf-8")
    items = tmp_path / "items.json"
    items.write_text("[1, 2, 3]", "utf-8")
    other = tmp_path / "other.json"
    other.write_text("[100, 101]", "utf-8")
    name, runner = unique(), CliRunner()
    args = ["run", str(definition), "--backend", "local", "--name", name, "--output", "json"]

    first = runner.invoke(app, [*args, "--manifest", str(items)])
    second = runner.invoke(app, [*args, "--manifest", str(other)])

    assert first.exit_code == 0, first.output
    arn = json.loads(first.stdout)["executionArn"]
    assert second.exit_code == 1
    assert second.stdout == ""
    message = " ".join(second.stderr.split())
    assert message.startswith("error: execution ") and arn in message and "SUCCEEDED" in message
    assert "--name" in message and "Traceback" not in second.output
    described = runner.invoke(app, ["describe-execution", arn, "--backend", "local"])
    assert json.loads(described.stdout)["output"] == [1, 2, 3]


# -- the claim: who runs an execution right now (celery: Redis) ----------------------------------


def test_a_claim_blocks_other_callers_until_its_process_is_gone_or_it_is_released(any_redis: Any) -> None:
    from dmap.identity import _RedisClaims
    from dmap.journal import RedisJournal

    claims, other = _RedisClaims(RedisJournal(any_redis)), _RedisClaims(RedisJournal(any_redis))
    arn = "arn:aws:states:local:000000000000:execution:sm:n"
    key = f"dmap:j:claim:{arn}"
    gone = subprocess.Popen(["true"])
    gone.wait()

    any_redis.set(key, "a-host-elsewhere:1:token", px=60_000)  # alive as far as anyone here can tell
    assert not claims.claim(arn) and claims.alive(arn)
    any_redis.set(key, f"{socket.gethostname()}:{gone.pid}:token", px=60_000)  # a SIGKILLed caller on this host
    assert claims.claim(arn)
    assert not other.claim(arn)  # this process is alive
    other.release(arn)  # not its claim: a no-op
    assert claims.alive(arn)
    claims.release(arn)
    assert not claims.alive(arn)
    any_redis.zadd("dmap:j:detached", {arn: 1})  # a detached execution waiting in the queue is taken
    assert not claims.claim(arn) and claims.alive(arn)

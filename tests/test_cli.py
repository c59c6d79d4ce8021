"""The ``dmap`` command line: every verb, its exit codes and its JSON output, on the embedded backend.

In-process through typer's ``CliRunner`` (the local backend's journal lives in this process, so one
verb sees what another ran), plus a few real ``python -m dmap`` subprocesses for what only a real
process shows. The celery side — Ctrl-C, detached runs, 10,000 items — is in ``tests/control/``.

Exit codes (DESIGN §4): 0 SUCCEEDED, 1 FAILED/ABORTED/TIMED_OUT, an invalid definition or an
unknown ARN, 2 a usage error. An error is one clear message on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dmap
from dmap.api import start
from dmap.cli import app

ROOT = Path(__file__).resolve().parents[1]
UNKNOWN_EXECUTION = "arn:aws:states:local:000000000000:execution:fan:no-such-execution"
UNKNOWN_MAP_RUN = "arn:aws:states:local:000000000000:mapRun:fan/label:no-such-map-run"


class _Handlers:
    """What the handlers of this module do: fail ``fail`` items until fixed, wait at a gate when asked."""

    def __init__(self) -> None:
        self.fixed = False
        self.gate = threading.Event()
        self.calls: dict[int, int] = {}
        self.lock = threading.Lock()


STATE = _Handlers()


@dmap.task("CliDouble")
def _double(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    index = int(event["i"])
    with STATE.lock:
        STATE.calls[index] = STATE.calls.get(index, 0) + 1
    if event.get("wait"):
        STATE.gate.wait(30)
    if event.get("fail") and not STATE.fixed:
        raise ValueError(f"item {index} is broken")
    return {"i": index, "double": 2 * index}


@pytest.fixture(autouse=True)
def _fresh_handlers() -> Iterator[None]:
    global STATE
    STATE = _Handlers()
    yield
    STATE.gate.set()  # never leave a child waiting


def fan(
    *, max_concurrency: int = 0, tolerated_count: int | None = None, items_path: str | None = "$.items"
) -> dict[str, Any]:
    """A DISTRIBUTED Map running ``CliDouble`` on each item of ``$.items``."""
    state: dict[str, Any] = {
        "Type": "Map",
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Double",
            "States": {"Double": {"Type": "Task", "Resource": "CliDouble", "End": True}},
        },
        "End": True,
    }
    if items_path is not None:
        state["ItemsPath"] = items_path
    if tolerated_count is not None:
        state["ToleratedFailureCount"] = tolerated_count
    return {"StartAt": "Fan", "States": {"Fan": state}}


def items(count: int, *, failing: set[int] | None = None, waiting: set[int] | None = None) -> dict[str, Any]:
    """An execution input of ``count`` items."""
    failing, waiting = failing or set(), waiting or set()
    return {"items": [{"i": i, "fail": i in failing, "wait": i in waiting} for i in range(count)]}


@pytest.fixture
def runner() -> CliRunner:
    """A CliRunner that keeps stdout and stderr apart."""
    return CliRunner()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, Any], str]:
    """Write a JSON file under tmp_path and return its path."""

    def _write(name: str, value: Any) -> str:
        path = tmp_path / name
        path.write_text(json.dumps(value), "utf-8")
        return str(path)

    return _write


def invoke(runner: CliRunner, *args: str) -> Any:
    """Run ``dmap ARGS`` in this process on a wide console (exceptions propagate instead of being swallowed)."""
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def flat(text: str) -> str:
    """``text`` without whitespace: rich wraps long lines and folds ARNs at the console width."""
    return "".join(text.split())


def said(text: str) -> str:
    """``text`` with every run of whitespace (rich's line wrapping) as one space."""
    return " ".join(text.split())


def unique() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


def run_json(runner: CliRunner, definition: str, data: dict[str, Any] | None = None, *extra: str) -> Any:
    """``dmap run --backend local --output json``; returns (exit code, parsed stdout)."""
    args = ["run", definition, "--backend", "local", "--output", "json", "--name", unique(), *extra]
    if data is not None:
        args += ["--input", json.dumps(data)]
    result = invoke(runner, *args)
    return result.exit_code, json.loads(result.stdout)


# -- validate ------------------------------------------------------------------------------------


def test_validate_says_valid_and_exits_0_for_a_correct_definition(runner: CliRunner, write: Any) -> None:
    result = invoke(runner, "validate", write("fan.json", fan()))

    assert result.exit_code == 0
    assert "valid" in result.stdout


def test_validate_lists_each_error_with_its_location_and_exits_1(runner: CliRunner, write: Any) -> None:
    broken = fan()
    broken["States"]["Fan"]["MaxConcurrency"] = -1
    broken["States"]["Fan"]["Next"] = "Nowhere"

    result = invoke(runner, "validate", write("broken.json", broken))

    assert result.exit_code == 1
    assert "/States/Fan/MaxConcurrency" in result.stdout
    assert "Nowhere" in result.stdout
    assert "Traceback" not in result.output


def test_validate_of_a_missing_file_exits_1_with_a_clear_message(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "validate", str(tmp_path / "missing.json"))

    assert result.exit_code == 1
    assert "missing.json" in flat(result.output)
    assert "Traceback" not in result.output


# -- run -----------------------------------------------------------------------------------------


def test_run_with_output_json_prints_only_the_execution_as_json_and_exits_0(runner: CliRunner, write: Any) -> None:
    code, execution = run_json(runner, write("fan.json", fan()), items(5))

    assert code == 0
    assert execution["status"] == "SUCCEEDED"
    assert execution["output"] == [{"i": i, "double": 2 * i} for i in range(5)]
    assert execution["executionArn"].startswith("arn:aws:states:local:000000000000:execution:fan:cli-")
    assert len(execution["mapRunArns"]) == 1


def test_run_returns_only_once_the_journal_holds_the_outcome_it_prints(
    runner: CliRunner, write: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The execution object turns SUCCEEDED a moment before its thread saves the record; a process that
    # printed and exited in between left the execution RUNNING in the journal (its redrive refused).
    # A slow final save widens that moment to 0.5 s.
    from dmap.journal import MemoryJournal

    save = MemoryJournal.save_execution

    def slow_final_save(self: MemoryJournal, execution: Any, **kwargs: Any) -> None:
        if execution.status != "RUNNING":
            time.sleep(0.5)
        save(self, execution, **kwargs)

    monkeypatch.setattr(MemoryJournal, "save_execution", slow_final_save)
    code, execution = run_json(runner, write("fan.json", fan()), items(3))

    assert code == 0
    assert execution["status"] == "SUCCEEDED"
    assert dmap.describe_execution(execution["executionArn"], backend="local").status == "SUCCEEDED"


def test_run_prints_a_summary_with_the_map_run_counts_and_the_output(runner: CliRunner, write: Any) -> None:
    result = invoke(runner, "run", write("fan.json", fan()), "--backend", "local", "--input", json.dumps(items(3)))

    assert result.exit_code == 0
    assert "SUCCEEDED" in result.stdout
    assert "Map Run" in result.stdout
    assert '"double": 4' in result.stdout
    assert result.stderr == ""


def test_run_exits_1_and_names_the_error_when_the_execution_fails(runner: CliRunner, write: Any) -> None:
    code, execution = run_json(runner, write("fan.json", fan(max_concurrency=1)), items(4, failing={2}))

    assert code == 1
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.ExceedToleratedFailureThreshold"

    table = invoke(
        runner,
        "run",
        write("fan.json", fan(max_concurrency=1)),
        "--backend",
        "local",
        "--input",
        json.dumps(items(4, failing={2})),
    )
    assert table.exit_code == 1
    assert "FAILED" in table.stdout
    assert "States.ExceedToleratedFailureThreshold" in table.stdout


def test_run_exits_1_when_the_execution_times_out(runner: CliRunner, write: Any) -> None:
    slow = {"TimeoutSeconds": 1, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}}

    code, execution = run_json(runner, write("slow.json", slow))

    assert code == 1
    assert execution["status"] == "TIMED_OUT"
    assert execution["error"] == "States.Timeout"


def test_run_of_an_invalid_definition_exits_1_with_diagnostics_on_stderr_only(runner: CliRunner, write: Any) -> None:
    broken = fan()
    broken["States"]["Fan"]["ItemProcessor"]["States"]["Double"]["Resource"] = "NoSuchHandler"

    result = invoke(runner, "run", write("broken.json", broken), "--backend", "local", "--output", "json")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "NoSuchHandler" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{not json"], "--input is not valid JSON"),
        (["--input", "@/no/such/input.json"], "--input"),
        (["--import", "no_such_module_for_dmap_tests"], "cannot import handler module"),
        (["--max-concurrency", "-1"], "--max-concurrency"),
        (["--output", "yaml"], "--output"),
    ],
)
def test_run_with_a_bad_option_is_a_usage_error_exiting_2(
    runner: CliRunner, write: Any, args: list[str], message: str
) -> None:
    result = invoke(runner, "run", write("fan.json", fan()), "--backend", "local", *args)

    assert result.exit_code == 2
    assert message in said(result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["no-such-verb"],
        ["run"],
        ["describe-execution"],
        ["describe-execution", UNKNOWN_EXECUTION, "--output", "yaml"],
        ["list-executions", "--limit", "0"],
        ["failures", UNKNOWN_MAP_RUN, "--limit", "0"],
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert "Traceback" not in result.output


# -- inspecting a finished run ---------------------------------------------------------------------


def test_describe_list_and_failures_verbs_show_a_failed_run(runner: CliRunner, write: Any) -> None:
    definition = write("fan.json", fan(max_concurrency=2, tolerated_count=0))
    code, failed = run_json(runner, definition, items(6, failing={1, 4}))
    assert code == 1
    arn = failed["executionArn"]

    described = json.loads(invoke(runner, "describe-execution", arn, "--backend", "local").stdout)
    assert described == failed
    table = invoke(runner, "describe-execution", arn, "--backend", "local", "--output", "table")
    assert table.exit_code == 0
    assert "FAILED" in table.stdout and flat(arn) in flat(table.stdout)

    listed = json.loads(invoke(runner, "list-executions", "--backend", "local", "--output", "json").stdout)
    assert [e["executionArn"] for e in listed].count(arn) == 1
    assert next(e for e in listed if e["executionArn"] == arn)["status"] == "FAILED"
    assert failed["name"] in invoke(runner, "list-executions", "--backend", "local").stdout

    runs = json.loads(invoke(runner, "list-map-runs", arn, "--backend", "local").stdout)["mapRuns"]
    assert [r["mapRunArn"] for r in runs] == failed["mapRunArns"]
    assert runs[0]["executionArn"] == arn
    assert runs[0]["stateMachineArn"].startswith("arn:aws:states:local:000000000000:stateMachine:fan/")
    map_run_arn = runs[0]["mapRunArn"]

    map_run = json.loads(invoke(runner, "describe-map-run", map_run_arn, "--backend", "local").stdout)
    assert map_run["status"] == "FAILED"
    assert map_run["maxConcurrency"] == 2
    counts = map_run["itemCounts"]
    assert counts["failed"] >= 1
    assert counts["succeeded"] + counts["failed"] + counts["aborted"] + counts["pending"] == counts["total"] == 6

    found = json.loads(invoke(runner, "failures", map_run_arn, "--backend", "local", "--output", "json").stdout)
    broken = [f for f in found if f["status"] == "FAILED"]
    assert {f["index"] for f in broken} <= {1, 4} and broken
    for failure in broken:
        assert failure["error"] == "ValueError"
        assert failure["input"] == {"i": failure["index"], "fail": True, "wait": False}
        assert f"item {failure['index']} is broken" in failure["cause"]
        assert failure["attempts"] == 1
    only = invoke(runner, "failures", map_run_arn, "--backend", "local", "--output", "json", "--error", "ValueError")
    assert json.loads(only.stdout) == broken
    assert (
        len(
            json.loads(
                invoke(runner, "failures", map_run_arn, "--backend", "local", "--output", "json", "--limit", "1").stdout
            )
        )
        == 1
    )
    shown = invoke(runner, "failures", map_run_arn, "--backend", "local")
    assert shown.exit_code == 0
    assert f"{len(found)} failed item(s)" in shown.stdout
    assert "is broken" in shown.stdout  # the errorMessage of the Lambda-style cause, not its JSON


def test_redrive_after_the_fix_reruns_only_the_failed_items_and_exits_0(runner: CliRunner, write: Any) -> None:
    definition = write("fan.json", fan(max_concurrency=1, tolerated_count=1))
    code, failed = run_json(runner, definition, items(5, failing={1, 4}))
    assert code == 1 and failed["status"] == "FAILED"
    assert STATE.calls == {i: 1 for i in range(5)}  # one at a time: the second failure is the last item
    STATE.fixed = True

    redrive = invoke(runner, "redrive-execution", failed["executionArn"], "--backend", "local", "--output", "json")

    assert redrive.exit_code == 0, redrive.stderr
    finished = json.loads(redrive.stdout)
    assert finished["status"] == "SUCCEEDED"
    assert finished["redriveCount"] == 1
    assert finished["output"] == [{"i": i, "double": 2 * i} for i in range(5)]
    assert STATE.calls == {0: 1, 1: 2, 2: 1, 3: 1, 4: 2}
    map_run = json.loads(invoke(runner, "describe-map-run", finished["mapRunArns"][0], "--backend", "local").stdout)
    assert map_run["status"] == "SUCCEEDED"
    assert map_run["redriveCount"] == 1

    again = invoke(runner, "redrive-execution", failed["executionArn"], "--backend", "local")
    assert again.exit_code == 1
    assert "SUCCEEDED and cannot be redriven" in said(again.stderr)
    assert "Traceback" not in again.stderr


# -- a running execution: update-map-run and stop-execution ----------------------------------------


def test_update_map_run_and_stop_execution_act_on_a_running_execution(runner: CliRunner, write: Any) -> None:
    definition = write("fan.json", fan(max_concurrency=1))
    execution = start(definition, input=items(8, waiting=set(range(8))), backend="local", name=unique())
    wait_for(lambda: execution.map_runs and STATE.calls, "the first child to run")
    map_run_arn = execution.map_runs[0].map_run_arn

    updated = invoke(runner, "update-map-run", map_run_arn, "--max-concurrency", "3", "--backend", "local")
    assert updated.exit_code == 0, updated.stderr
    assert json.loads(updated.stdout)["maxConcurrency"] == 3
    wait_for(lambda: len(STATE.calls) == 3, "the raised concurrency to start two more children")
    live = json.loads(invoke(runner, "describe-map-run", map_run_arn, "--backend", "local").stdout)
    assert live["status"] == "RUNNING"
    assert live["itemCounts"]["running"] == 3
    assert "stopDate" not in live

    stopped = invoke(runner, "stop-execution", execution.execution_arn, "--backend", "local")
    assert stopped.exit_code == 0
    assert flat(execution.execution_arn) in flat(stopped.stdout)
    STATE.gate.set()
    wait_for(lambda: execution.status != "RUNNING", "the execution to stop")

    described = json.loads(invoke(runner, "describe-execution", execution.execution_arn, "--backend", "local").stdout)
    assert described["status"] == "ABORTED"
    map_run = json.loads(invoke(runner, "describe-map-run", map_run_arn, "--backend", "local").stdout)
    assert map_run["status"] == "ABORTED"
    counts = map_run["itemCounts"]
    assert counts["succeeded"] == 3  # running children finish their state
    assert counts["pending"] + counts["aborted"] == 5  # the rest never started: redrivable
    late = invoke(runner, "update-map-run", map_run_arn, "--max-concurrency", "5", "--backend", "local")
    assert late.exit_code == 1
    assert "not RUNNING" in said(late.stderr)
    again = invoke(runner, "stop-execution", execution.execution_arn, "--backend", "local")
    assert again.exit_code == 1
    assert "only a RUNNING execution can be stopped" in said(again.stderr)
    for result in (late, again):
        assert "Traceback" not in result.stderr


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["describe-execution", UNKNOWN_EXECUTION], "execution"),
        (["stop-execution", UNKNOWN_EXECUTION], "execution"),
        (["list-map-runs", UNKNOWN_EXECUTION], "execution"),
        (["redrive-execution", UNKNOWN_EXECUTION], "execution"),
        (["describe-map-run", UNKNOWN_MAP_RUN], "map run"),
        (["describe-map-run", UNKNOWN_EXECUTION], "map run"),
        (["failures", UNKNOWN_MAP_RUN], "map run"),
        (["update-map-run", UNKNOWN_MAP_RUN, "--max-concurrency", "2"], "map run"),
        (["describe-execution", "not-an-arn"], "execution"),
    ],
)
def test_an_unknown_arn_exits_1_with_one_clear_line_and_no_traceback(
    runner: CliRunner, args: list[str], kind: str
) -> None:
    result = invoke(runner, *args, "--backend", "local")

    assert result.exit_code == 1
    assert result.stdout == ""
    message = said(result.stderr)
    assert message.startswith(f"error: {kind}")
    assert "does not exist" in message
    assert flat(args[1]) in flat(message)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-concurrency", "-1"], "--max-concurrency"),
        (["--tolerated-failure-count", "-3"], "--tolerated-failure-count"),
        (["--tolerated-failure-percentage", "100.5"], "--tolerated-failure-percentage"),
        (["--tolerated-failure-percentage", "-1"], "--tolerated-failure-percentage"),
        ([], "nothing to update: give --max-concurrency"),  # the command's flags, not the Python API's names
    ],
)
def test_update_map_run_with_an_out_of_range_or_missing_value_is_a_usage_error(
    runner: CliRunner, options: list[str], message: str
) -> None:
    result = invoke(runner, "update-map-run", UNKNOWN_MAP_RUN, *options, "--backend", "local")

    assert result.exit_code == 2
    assert message in said(result.stderr)
    assert "Traceback" not in result.stderr


def test_run_detach_with_the_local_backend_is_refused_with_a_clear_message(
    runner: CliRunner, write: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmap.config import get_settings

    monkeypatch.setenv("DMAP_REDIS_URL", "redis://127.0.0.1:1/0")  # with the bug, nothing is written anywhere
    get_settings.cache_clear()
    try:
        result = invoke(runner, "run", write("fan.json", fan()), "--backend", "local", "--detach")
    finally:
        get_settings.cache_clear()

    assert result.exit_code in (1, 2)
    assert "--detach needs the celery backend" in said(result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["describe-execution", UNKNOWN_EXECUTION],
        ["list-executions"],
        ["list-map-runs", UNKNOWN_EXECUTION],
        ["failures", UNKNOWN_MAP_RUN],
        ["redrive-execution", UNKNOWN_EXECUTION],
        ["describe-map-run", UNKNOWN_MAP_RUN],
        ["update-map-run", UNKNOWN_MAP_RUN, "--max-concurrency", "2"],
        ["stop-execution", UNKNOWN_EXECUTION],
    ],
    ids=lambda args: args[0],
)
def test_every_control_verb_accepts_output_json(runner: CliRunner, args: list[str]) -> None:
    result = invoke(runner, *args, "--backend", "local", "--output", "json")

    assert result.exit_code in (0, 1), result.stderr  # a result or an unknown ARN, never a usage error
    if result.exit_code == 0:
        json.loads(result.stdout)


# -- real processes --------------------------------------------------------------------------------

SLOW_HANDLERS = """
import time

import dmap


@dmap.task("CliSlow")
def slow(event, context):
    time.sleep(event["ms"] / 1000)
    return event["i"]
"""


def _on_a_terminal(args: list[str], cwd: Path, interrupt_after_ok: int) -> tuple[int, str]:
    """Run ``python -m dmap ARGS`` on a pseudo-terminal; press Ctrl-C once ``interrupt_after_ok`` items succeeded.

    Returns the exit code and everything the terminal showed, without colour codes.
    """
    import fcntl
    import pty
    import re
    import select
    import termios

    def controlling_terminal() -> None:  # so that ^C on the terminal is a SIGINT to dmap, as in a shell
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMAP_")}
    env.update(PYTHONPATH=os.pathsep.join([str(cwd), str(ROOT)]), COLUMNS="200", TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dmap", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    screen, pressed, deadline = b"", False, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            done = [int(n) for n in re.findall(rb"(\d+) ok", screen)]
            if not pressed and done and max(done) >= interrupt_after_ok:
                os.write(master, b"\x03")
                pressed = True
            if not ready and proc.poll() is not None:
                break
        text = screen.decode("utf-8", errors="replace")
        return proc.wait(timeout=30), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # without colours
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_on_a_terminal_run_shows_live_progress_and_ctrl_c_stops_the_execution_aborted(tmp_path: Path) -> None:
    (tmp_path / "cli_slow_handlers.py").write_text(SLOW_HANDLERS, "utf-8")
    definition = fan(max_concurrency=2)
    definition["States"]["Fan"]["ItemProcessor"]["States"]["Double"]["Resource"] = "CliSlow"
    (tmp_path / "slow.json").write_text(json.dumps(definition), "utf-8")
    data = {"items": [{"i": i, "ms": 50} for i in range(200)]}

    code, screen = _on_a_terminal(
        ["run", "slow.json", "--input", json.dumps(data), "--import", "cli_slow_handlers"], tmp_path, 6
    )

    assert code == 1
    assert "items/s" in screen and "/200" in screen  # the progress bar: rate, done/total
    assert "stopping (Ctrl-C)" in screen
    assert "ABORTED" in screen and "States.Aborted" in screen
    assert "Traceback" not in screen


def _dmap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMAP_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "dmap", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_real_dmap_process_prints_json_only_and_exits_with_the_execution_status(tmp_path: Path) -> None:
    definition = tmp_path / "pass.json"
    definition.write_text(json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}), "utf-8")
    failing = tmp_path / "fail.json"
    failing.write_text(json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom"}}}), "utf-8")

    ok = _dmap("run", str(definition), "--input", '{"x": 1}', "--output", "json", cwd=tmp_path)
    bad = _dmap("run", str(failing), "--output", "json", cwd=tmp_path)

    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["output"] == {"x": 1}
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["error"] == "Boom"


def test_a_real_dmap_process_exits_2_on_usage_errors_and_1_on_unknown_arns_without_tracebacks(
    tmp_path: Path,
) -> None:
    usage = _dmap(cwd=tmp_path)
    unknown = _dmap("describe-execution", UNKNOWN_EXECUTION, "--backend", "local", cwd=tmp_path)

    assert usage.returncode == 2
    assert unknown.returncode == 1
    assert "does not exist" in unknown.stderr
    for done in (usage, unknown):
        assert "Traceback" not in done.stderr

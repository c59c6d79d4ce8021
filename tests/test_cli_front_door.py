"""What a newcomer hits first in the ``dmap`` CLI: one clear line and the right exit code, never a traceback.

Exit codes: 1 a FAILED run, an invalid definition, an unknown ARN; 2 a usage error (bad option, a
handler module that cannot be imported, a missing ``--input`` file); 3 an infrastructure fault
(Redis, the broker or object storage unreachable), from every verb.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import dmap
from dmap.cli import app
from dmap.config import get_settings

EXECUTION = "arn:aws:states:local:000000000000:execution:fan:no-such-execution"
MAP_RUN = "arn:aws:states:local:000000000000:mapRun:fan/label:no-such-map-run"
DEAD_REDIS = "redis://someone:hunter2@127.0.0.1:1/0"
"""Nothing listens on port 1; the password must never be printed."""


def said(text: str) -> str:
    """``text`` with every run of whitespace (rich's line wrapping) as one space."""
    return " ".join(text.split())


def invoke(*args: str | Path) -> Result:
    """``dmap ARGS`` in this process; a traceback or an escaped exception fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def dmap_process(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A real ``python -m dmap ARGS`` process (its own handler registry, its own settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMAP_") and k != "COLUMNS"}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), str(cwd)]))
    done = subprocess.run(
        [sys.executable, "-m", "dmap", *map(str, args)],
        cwd=cwd,
        env={**base, "COLUMNS": "250", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


@pytest.fixture
def dead_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The celery backend pointed at a Redis that does not answer."""
    monkeypatch.setenv("DMAP_BACKEND", "celery")
    monkeypatch.setenv("DMAP_REDIS_URL", DEAD_REDIS)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- 1. every verb exits 3 when Redis is unreachable -----------------------------------------------

VERBS = [
    ["describe-execution", EXECUTION],
    ["list-executions"],
    ["stop-execution", EXECUTION],
    ["list-map-runs", EXECUTION],
    ["describe-map-run", MAP_RUN],
    ["update-map-run", MAP_RUN, "--max-concurrency", "2"],
    ["redrive-execution", EXECUTION],
    ["failures", MAP_RUN],
]


@pytest.mark.parametrize("args", VERBS, ids=[a[0] for a in VERBS])
def test_every_verb_exits_3_with_one_redacted_line_when_redis_is_unreachable(dead_redis: None, args: list[str]) -> None:
    result = invoke(*args)

    assert result.exit_code == 3, result.output
    message = said(result.stderr)
    assert message.startswith("error: cannot reach Redis at redis://someone:***@127.0.0.1:1/0 (DMAP_REDIS_URL)")
    assert "hunter2" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_redis_error_in_the_middle_of_a_verb_is_an_infrastructure_fault_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    from dmap import control

    def lost(**_: object) -> None:
        raise redis.ConnectionError(f"Connection closed by server ({DEAD_REDIS})")

    monkeypatch.setattr(control, "list_executions", lost)
    result = invoke("list-executions")

    assert result.exit_code == 3, result.output
    assert "Redis at" in result.stderr and "ConnectionError" in result.stderr
    assert "hunter2" not in result.output


def test_a_real_dmap_process_exits_3_when_redis_is_unreachable(tmp_path: Path) -> None:
    done = dmap_process("list-executions", cwd=tmp_path, env={"DMAP_BACKEND": "celery", "DMAP_REDIS_URL": DEAD_REDIS})

    assert done.returncode == 3, done.stderr
    assert "cannot reach Redis at redis://someone:***@127.0.0.1:1/0" in said(done.stderr)


# -- 2. handler modules that fail to import ----------------------------------------------------------

PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
GOOD = 'import dmap\n\n\n@dmap.task("FrontDoorEcho")\ndef echo(event, context):\n    return event\n'
ECHO = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "FrontDoorEcho", "End": True}}}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with handler modules, good and broken, and two definitions."""
    (tmp_path / "pass.json").write_text(json.dumps(PASS), "utf-8")
    (tmp_path / "echo.json").write_text(json.dumps(ECHO), "utf-8")
    (tmp_path / "syntax_error.py").write_text("import dmap\n\n\ndef oops(:\n    pass\n", "utf-8")
    (tmp_path / "raises.py").write_text('import dmap\n\nSETTINGS = {}["region"]\n', "utf-8")
    (tmp_path / "needs_lib.py").write_text("import dmap\nimport no_such_library_anywhere\n", "utf-8")
    (tmp_path / "handlers.py").write_text(GOOD, "utf-8")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "echo_handlers.py").write_text(GOOD, "utf-8")
    return tmp_path


BROKEN = [
    ("syntax_error", "SyntaxError at {dir}/syntax_error.py:4: invalid syntax"),
    ("raises", "KeyError at {dir}/raises.py:3: 'region'"),
    ("needs_lib", "ModuleNotFoundError at {dir}/needs_lib.py:2: No module named 'no_such_library_anywhere'"),
    ("no_such_module", "no module named 'no_such_module'"),
    ("missing.py", "no file {dir}/missing.py and no module 'missing'"),
]


@pytest.mark.parametrize(("spec", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_run_with_a_handler_module_that_cannot_be_imported_says_where_and_exits_2(
    project: Path, spec: str, message: str
) -> None:
    done = dmap_process("run", "pass.json", "--import", spec, cwd=project)

    assert done.returncode == 2, done.stderr
    assert said(done.stderr).startswith(f"error: cannot import handler module '{spec}': "), done.stderr
    assert message.format(dir=project) in said(done.stderr)


@pytest.mark.parametrize("spec", ["handlers.py", "lib/echo_handlers.py", "handlers"])
def test_run_accepts_a_handler_file_path_or_a_module_name_given_with_py(project: Path, spec: str) -> None:
    args = ["run", "echo.json", "--input", '{"hello": 1}', "--import", spec, "--output", "json"]
    done = dmap_process(*args, cwd=project)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"hello": 1}


def test_a_worker_with_a_broken_handler_module_exits_2_before_starting(project: Path) -> None:
    done = dmap_process("worker", "--import", "syntax_error", cwd=project, env={"DMAP_REDIS_URL": DEAD_REDIS})

    assert done.returncode == 2, done.stderr
    assert f"SyntaxError at {project}/syntax_error.py:4" in said(done.stderr)


def test_dmap_imports_with_a_broken_module_is_reported_like_import(project: Path) -> None:
    done = dmap_process("run", "pass.json", cwd=project, env={"DMAP_IMPORTS": "raises"})

    assert done.returncode == 2, done.stderr
    assert f"KeyError at {project}/raises.py:3" in said(done.stderr)


# -- 3. a task name taken twice ------------------------------------------------------------------------


def test_a_different_function_taking_a_registered_task_name_is_warned_naming_both_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib

    from dmap.interpreter.tasks import registry

    for module in ("front_door_first", "front_door_second"):
        (tmp_path / f"{module}.py").write_text(GOOD, "utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        first = importlib.import_module("front_door_first")
        with caplog.at_level("WARNING", logger="dmap.interpreter.tasks"):
            importlib.reload(first)  # the same function again: no warning
            assert caplog.records == []
            importlib.import_module("front_door_second")
        (record,) = caplog.records
        assert record.getMessage() == (
            "task name 'FrontDoorEcho' registered twice: front_door_second.echo replaces front_door_first.echo; "
            "give one of them another name"
        )
    finally:
        registry.unregister("FrontDoorEcho")
        for module in ("front_door_first", "front_door_second"):
            sys.modules.pop(module, None)


def test_run_prints_the_warning_for_a_task_name_registered_twice(project: Path) -> None:
    done = dmap_process("run", "pass.json", "--import", "handlers", "--import", "lib/echo_handlers.py", cwd=project)

    assert done.returncode == 0, done.stderr
    assert "task name 'FrontDoorEcho' registered twice: echo_handlers.echo replaces handlers.echo" in said(done.stderr)


# -- 4. missing AWS credentials, a missing DMAP_S3_ROOT bucket folder --------------------------------

LISTING = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "demo"}},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Keep",
                "States": {"Keep": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}
NO_CREDENTIALS = "no AWS credentials for s3://demo: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or DMAP_S3_ROOT to use a local folder"  # noqa: E501


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """boto3 with nowhere to find credentials (no variables, no files, no instance metadata)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    env = {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DMAP_S3_ROOT", raising=False)
    import boto3

    # boto3's default session caches the credentials an earlier test resolved: start from a new one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return env


def test_s3_without_credentials_says_which_variables_to_set(no_aws_credentials: dict[str, str]) -> None:
    from dmap.errors import StorageError
    from dmap.storage.s3 import S3Storage

    with pytest.raises(StorageError) as raised:
        next(S3Storage().list_objects("demo"))
    assert str(raised.value) == NO_CREDENTIALS
    with pytest.raises(StorageError) as raised:
        S3Storage().open_read("demo", "items.json").read()
    assert str(raised.value).startswith("no AWS credentials for s3://demo/items.json: set AWS_ACCESS_KEY_ID")


def test_a_run_reading_s3_without_credentials_fails_with_the_fix_in_its_cause(
    tmp_path: Path, no_aws_credentials: dict[str, str]
) -> None:
    (tmp_path / "listing.json").write_text(json.dumps(LISTING), "utf-8")
    done = dmap_process("run", "listing.json", "--output", "json", cwd=tmp_path, env=no_aws_credentials)

    assert done.returncode == 1, done.stderr
    described = json.loads(done.stdout)
    assert described["error"] == "States.ItemReaderFailed"
    assert described["cause"] == f"NoCredentialsError: {NO_CREDENTIALS}"


def test_a_dmap_s3_root_without_the_bucket_folder_names_the_folder_to_create(tmp_path: Path) -> None:
    root = tmp_path / "s3root"
    root.mkdir()
    (tmp_path / "listing.json").write_text(json.dumps(LISTING), "utf-8")
    done = dmap_process("run", "listing.json", cwd=tmp_path, env={"DMAP_S3_ROOT": str(root)})

    assert done.returncode == 1, done.stderr
    assert (
        f"States.ItemReaderFailed: NoSuchBucket: The specified bucket does not exist: DMAP_S3_ROOT={root} has no "
        f"folder 'demo' for bucket 'demo'; create {root}/demo or point DMAP_S3_ROOT at the folder that holds it"
    ) in said(done.stdout)


# -- 5. --input @file that is missing -----------------------------------------------------------------


def test_run_with_input_from_a_missing_file_says_the_file_is_missing_and_exits_2(tmp_path: Path) -> None:
    definition = tmp_path / "pass.json"
    definition.write_text(json.dumps(PASS), "utf-8")
    missing = tmp_path / "missing.json"
    result = invoke("run", definition, "--input", f"@{missing}")

    assert result.exit_code == 2, result.output
    assert said(result.stderr) == f"error: --input @{missing}: no such file: {missing}"


def test_run_with_input_from_a_file_that_is_not_json_names_the_file_and_exits_2(tmp_path: Path) -> None:
    definition = tmp_path / "pass.json"
    definition.write_text(json.dumps(PASS), "utf-8")
    (tmp_path / "input.json").write_text("{not json", "utf-8")
    result = invoke("run", definition, "--input", f"@{tmp_path / 'input.json'}")

    assert result.exit_code == 2, result.output
    assert said(result.stderr).startswith(f"error: --input @{tmp_path / 'input.json'} is not valid JSON: ")


# -- 6. failures and describe-map-run by execution ARN or name; --limit says how many there are ---------


GATE = threading.Event()
"""Children given ``"hold": true`` wait for it (a RUNNING execution for as long as a test needs)."""


@dmap.task("FrontDoorFlaky")
def _flaky(event: dict[str, Any], context: dmap.TaskContext) -> Any:
    if event.get("hold"):
        GATE.wait(30)
    if event.get("fail"):
        raise ValueError(f"item {event['i']} is broken")
    return event


def distributed(label: str) -> dict[str, Any]:
    """A DISTRIBUTED Map over ``$.items`` running ``FrontDoorFlaky`` (in a state named after ``label``)."""
    return {
        "Type": "Map",
        "Label": label,
        "ItemsPath": "$.items",
        "ToleratedFailurePercentage": 100,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": f"Flaky-{label}",
            "States": {f"Flaky-{label}": {"Type": "Task", "Resource": "FrontDoorFlaky", "End": True}},
        },
    }


def one_map() -> dict[str, Any]:
    return {"StartAt": "Fan", "States": {"Fan": {**distributed("fan"), "End": True}}}


def two_maps() -> dict[str, Any]:
    first = {**distributed("first"), "ResultPath": None, "Next": "Second"}
    return {"StartAt": "First", "States": {"First": first, "Second": {**distributed("second"), "End": True}}}


def run_local(tmp_path: Path, file: str, definition: dict[str, Any], name: str, failing: int, count: int) -> str:
    """``dmap run`` on the local backend (this process); returns the execution ARN."""
    path = tmp_path / file
    path.write_text(json.dumps(definition), "utf-8")
    data = {"items": [{"i": i, "fail": i < failing} for i in range(count)]}
    result = invoke("run", path, "--backend", "local", "--name", name, "--input", json.dumps(data), "--output", "json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["executionArn"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_failures_accepts_an_execution_name_and_its_limit_says_how_many_there_are(tmp_path: Path) -> None:
    name = unique("named")
    arn = run_local(tmp_path, "fan.json", one_map(), name, failing=23, count=30)

    table = invoke("failures", name, "--limit", "4", "--backend", "local")
    by_arn = invoke("failures", arn, "--limit", "4", "--backend", "local", "--output", "json")
    everything = invoke("failures", name, "--backend", "local")

    assert table.exit_code == 0, table.output
    assert "showing 4 of 23 failed item(s)" in said(table.stdout)
    assert by_arn.exit_code == 0, by_arn.output
    assert [f["index"] for f in json.loads(by_arn.stdout)] == [0, 1, 2, 3]
    assert said(by_arn.stderr) == "showing 4 of 23 failed item(s)"
    assert "23 failed item(s)" in said(everything.stdout) and "showing" not in everything.stdout


def test_describe_map_run_accepts_an_execution_name_or_arn_with_one_map_run(tmp_path: Path) -> None:
    name = unique("described")
    arn = run_local(tmp_path, "fan.json", one_map(), name, failing=1, count=3)

    by_name = invoke("describe-map-run", name, "--backend", "local")
    by_arn = invoke("describe-map-run", arn, "--backend", "local")
    execution = invoke("describe-execution", name, "--backend", "local")

    assert by_name.exit_code == by_arn.exit_code == execution.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout) == json.loads(by_arn.stdout)
    assert json.loads(by_name.stdout)["itemCounts"]["failed"] == 1
    assert json.loads(execution.stdout)["executionArn"] == arn


def test_an_execution_with_several_map_runs_lists_them_and_exits_2(tmp_path: Path) -> None:
    name = unique("two-maps")
    arn = run_local(tmp_path, "two.json", two_maps(), name, failing=1, count=2)
    runs = [r["mapRunArn"] for r in json.loads(invoke("list-map-runs", name, "--backend", "local").stdout)["mapRuns"]]

    result = invoke("failures", name, "--backend", "local")

    assert len(runs) == 2
    assert result.exit_code == 2, result.output
    assert said(result.stderr).startswith(f"error: execution {arn} has 2 Map Runs; give the ARN of one:")
    assert all(run in result.stderr for run in runs)


def test_a_name_several_state_machines_used_is_listed_and_exits_2(tmp_path: Path) -> None:
    name = unique("shared")
    first = run_local(tmp_path, "alpha.json", one_map(), name, failing=0, count=1)
    second = run_local(tmp_path, "beta.json", one_map(), name, failing=0, count=1)

    result = invoke("describe-execution", name, "--backend", "local")

    assert result.exit_code == 2, result.output
    assert said(result.stderr).startswith(f"error: 2 executions are named '{name}'; give the ARN of one:")
    assert first in result.stderr and second in result.stderr


def test_an_unknown_execution_name_exits_1_like_an_unknown_arn() -> None:
    result = invoke("failures", "no-such-execution-name", "--backend", "local")

    assert result.exit_code == 1, result.output
    assert said(result.stderr) == "error: map run (or execution) does not exist: no-such-execution-name"


# -- 7. every verb honours --output table|json ------------------------------------------------------


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("verb", ["describe-execution", "list-map-runs", "describe-map-run", "failures"])
def test_the_read_verbs_print_a_table_or_json_as_asked(tmp_path: Path, verb: str) -> None:
    name = unique("output")
    arn = run_local(tmp_path, "fan.json", one_map(), name, failing=2, count=3)

    table = invoke(verb, name, "--backend", "local", "--output", "table")
    as_json = invoke(verb, name, "--backend", "local", "--output", "json")

    assert table.exit_code == as_json.exit_code == 0, table.output + as_json.output
    assert not is_json(table.stdout), table.stdout
    assert is_json(as_json.stdout), as_json.stdout
    shown = "".join(table.stdout.split())
    assert name in shown or "failed" in shown, table.stdout
    if verb != "failures":
        assert arn in as_json.stdout


def test_list_executions_prints_a_table_or_json_as_asked(tmp_path: Path) -> None:
    name = unique("listed")
    run_local(tmp_path, "fan.json", one_map(), name, failing=0, count=1)

    table = invoke("list-executions", "--backend", "local", "--output", "table")
    as_json = invoke("list-executions", "--backend", "local", "--output", "json")

    assert name in table.stdout and not is_json(table.stdout)
    assert name in [e["name"] for e in json.loads(as_json.stdout)]


def test_update_stop_and_redrive_print_a_table_or_json_as_asked(tmp_path: Path) -> None:
    from dmap.api import start

    path = tmp_path / "fan.json"
    path.write_text(json.dumps(one_map()), "utf-8")
    data = {"items": [{"i": i, "hold": True} for i in range(4)]}
    GATE.clear()
    try:
        name = unique("held")
        execution = start(path, input=data, backend="local", name=name, max_concurrency=1)
        deadline = time.monotonic() + 20
        while not (execution.map_runs and execution.map_runs[0].item_counts.get("running")):
            assert time.monotonic() < deadline, "the first child never started"
            time.sleep(0.02)
            execution = dmap.describe_execution(execution.execution_arn, backend="local")
        map_run = execution.map_runs[0].map_run_arn
        table = invoke("update-map-run", name, "--max-concurrency", "2", "--backend", "local", "--output", "table")
        as_json = invoke("update-map-run", map_run, "--max-concurrency", "1", "--backend", "local", "--output", "json")
        stopped = invoke("stop-execution", execution.execution_arn, "--backend", "local", "--output", "json")
    finally:
        GATE.set()
    assert table.exit_code == 0 and not is_json(table.stdout) and "maxConcurrency" in table.stdout, table.output
    assert json.loads(as_json.stdout)["maxConcurrency"] == 1
    assert json.loads(stopped.stdout)["executionArn"] == execution.execution_arn
    deadline = time.monotonic() + 20
    while dmap.describe_execution(execution.execution_arn, backend="local").status == "RUNNING":
        assert time.monotonic() < deadline, "the execution never stopped"
        time.sleep(0.02)
    redriven = invoke("redrive-execution", execution.execution_arn, "--backend", "local", "--output", "json")
    assert redriven.exit_code == 0, redriven.output
    assert json.loads(redriven.stdout)["status"] == "SUCCEEDED"


def test_validate_as_json_prints_the_diagnostics_and_keeps_its_exit_codes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Nxt": "B", "End": True}}}))
    valid = tmp_path / "pass.json"
    valid.write_text(json.dumps(PASS), "utf-8")

    bad = invoke("validate", broken, "--output", "json")
    good = invoke("validate", valid, "--output", "json")

    assert bad.exit_code == 1
    (diagnostic,) = json.loads(bad.stdout)
    assert diagnostic == {
        "severity": "ERROR",
        "code": "SCHEMA_VALIDATION_FAILED",
        "message": "'Nxt' is not a valid field here; did you mean 'Next'?",
        "location": "/States/A/Nxt",
    }
    assert (good.exit_code, json.loads(good.stdout)) == (0, [])


# -- 8. worker logs: the handlers at start, each handler failure ---------------------------------------


def test_a_handler_exception_is_logged_with_the_item_index_and_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    from dmap.errors import StatesError
    from dmap.interpreter.tasks import TaskContext, call_handler

    def broken(event: Any, context: TaskContext) -> Any:
        raise ConnectionError(f"cannot reach {DEAD_REDIS}")

    context = TaskContext("Broken", "Work", "arn:aws:states:local:000000000000:execution:fan:x", "r", item_index=41)
    for limits in ({"timeout": None, "heartbeat": None}, {"timeout": 5.0, "heartbeat": None}):
        caplog.clear()
        with caplog.at_level("WARNING", logger="dmap.handlers"), pytest.raises(StatesError):
            call_handler(broken, {"secret": "input"}, context, **limits)
        (record,) = caplog.records
        assert record.levelname == "WARNING"
        assert record.getMessage() == (
            "handler Broken raised on item 41 of arn:aws:states:local:000000000000:execution:fan:x: "
            "ConnectionError: cannot reach redis://someone:***@127.0.0.1:1/0"
        )


def test_a_dmap_worker_names_its_handlers_when_it_starts(project: Path, redis_url: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMAP_")}
    env = {**base, "DMAP_REDIS_URL": redis_url, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = [sys.executable, "-m", "dmap", "worker", "--import", "handlers.py", "--pool", "solo"]
    worker = subprocess.Popen(args, cwd=project, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen: list[str] = []
    try:
        assert worker.stderr is not None
        deadline = time.monotonic() + 60
        for line in worker.stderr:
            seen.append(line)
            if "dmap worker ready" in line or time.monotonic() > deadline:
                break
    finally:
        worker.terminate()
        worker.wait(30)
    assert any("dmap worker ready: 1 task handler(s) registered: FrontDoorEcho" in line for line in seen), seen
    assert not any("Traceback" in line for line in seen), seen


# -- 9. scripts/demo_local.py says what it needs --------------------------------------------------------

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo_local.py"


def test_the_local_demo_without_redis_server_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing on PATH: no redis-server
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(DEMO), "--summary", str(summary)], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "redis-server is not installed: apt-get install redis-server" in done.stderr
    assert json.loads(summary.read_text("utf-8"))["status"] == "DEMO_FAILED"


def test_the_local_demo_lists_every_missing_python_package_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util
    import runpy

    script = runpy.run_path(str(DEMO), run_name="demo_local_under_test")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("celery", "moto.server") else real(name, *a)
    )
    monkeypatch.setattr(script["shutil"], "which", lambda name: f"/usr/bin/{name}")

    assert script["missing_requirements"]() == [
        "Celery (dmap's celery backend) is not importable (module 'celery'): pip install -e \".[dev]\"",
        "moto's S3 server (stands in for MinIO) is not importable (module 'moto.server'): "
        'pip install -e ".[dev]" (or "moto[server,s3]")',
    ]


# -- the last resort ------------------------------------------------------------------------------------


def test_an_unexpected_error_is_one_line_and_dmap_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmap import control

    def bug(**_: object) -> None:
        raise ValueError(f"unexpected state near {DEAD_REDIS}")

    monkeypatch.setattr(control, "list_executions", bug)
    result = invoke("list-executions", "--backend", "local")

    assert result.exit_code == 1
    assert said(result.stderr) == (
        "error: internal error: ValueError: unexpected state near redis://someone:***@127.0.0.1:1/0 "
        "(run with DMAP_DEBUG=1 to see the traceback)"
    )
    monkeypatch.setenv("DMAP_DEBUG", "1")
    debug = CliRunner().invoke(app, ["list-executions", "--backend", "local"])
    assert isinstance(debug.exception, ValueError)

"""``dmap validate`` and ``dmap run``: exit codes, what they print, and never a traceback (DESIGN §4).

Exit codes: 0 SUCCEEDED / valid, 1 FAILED (or an invalid definition), 2 a usage error. Most tests
use typer's CliRunner in this process; a few run ``python -m dmap`` as a real subprocess, which
is also how a handler module reaches the CLI (``--import``) without touching this process's
registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from dmap.cli import app

GREET = {
    "StartAt": "Greet",
    "States": {
        "Greet": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.who)"}, "End": True}
    },
}
FAILING = {"StartAt": "Stop", "States": {"Stop": {"Type": "Fail", "Error": "Order.Rejected", "Cause": "no stock"}}}
INVALID = {
    "StartAt": "A",
    "States": {"A": {"Type": "Pass", "Nxt": "B", "End": True}, "B": {"Type": "Pass", "Next": "Nowhere"}},
}
HANDLERS = """
import dmap


@dmap.task("CliGreeter")
def greet(event, context):
    return {"greeting": "hi " + event["who"], "state": context.state_name}
"""


def _write(folder: Path, name: str, content: Any) -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _subprocess(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMAP_") and k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "dmap", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


def test_validate_accepts_a_valid_definition(tmp_path: Path) -> None:
    path = _write(tmp_path, "greet.asl.json", GREET)
    result = _invoke("validate", path)
    assert result.exit_code == 0
    assert "valid" in result.stdout


def test_validate_prints_every_problem_with_its_location_and_exits_one(tmp_path: Path) -> None:
    result = _invoke("validate", _write(tmp_path, "bad.json", INVALID))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    for location, code in [
        ("/States/A/Nxt", "SCHEMA_VALIDATION_FAILED"),
        ("/States/B/Next", "MISSING_TRANSITION_TARGET"),
        ("/States/B", "UNREACHABLE_STATE"),
    ]:
        assert any(line.startswith(f"ERROR {location}: ") for line in lines), (location, result.stdout)
        assert f"({code})" in result.stdout
    assert "did you mean 'Next'?" in result.stdout


def test_validate_of_text_that_is_not_json_exits_one_with_a_message(tmp_path: Path) -> None:
    result = _invoke("validate", _write(tmp_path, "broken.json", '{"StartAt": '))
    assert result.exit_code == 1
    assert "not valid JSON" in result.stdout


def test_validate_of_a_missing_file_exits_one_naming_the_file(tmp_path: Path) -> None:
    result = _invoke("validate", tmp_path / "absent.asl.json")
    assert result.exit_code == 1
    assert "absent.asl.json" in result.stdout


def test_run_with_inline_input_prints_the_output_and_exits_zero(tmp_path: Path) -> None:
    result = _invoke("run", _write(tmp_path, "greet.json", GREET), "--input", '{"who": "ada"}')
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED" in result.stdout
    assert '"greeting": "hello ada"' in result.stdout


def test_run_reads_the_input_from_a_file_with_an_at_sign(tmp_path: Path) -> None:
    input_file = _write(tmp_path, "input.json", {"who": "grace"})
    result = _invoke("run", _write(tmp_path, "greet.json", GREET), "--input", f"@{input_file}", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == {"greeting": "hello grace"}


def test_run_output_json_prints_only_the_described_execution(tmp_path: Path) -> None:
    definition = _write(tmp_path, "greet.json", GREET)
    name = f"cli-json-{uuid.uuid4().hex[:12]}"
    result = _invoke("run", definition, "--input", '{"who": "ada"}', "--output", "json", "--name", name)
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["status"] == "SUCCEEDED"
    assert described["name"] == name
    assert described["executionArn"].endswith(f":execution:greet:{name}")
    assert described["input"] == {"who": "ada"}
    assert described["output"] == {"greeting": "hello ada"}


def test_run_of_a_failing_execution_exits_one_and_shows_error_and_cause(tmp_path: Path) -> None:
    definition = _write(tmp_path, "failing.json", FAILING)
    table = _invoke("run", definition)
    as_json = _invoke("run", definition, "--output", "json")
    assert table.exit_code == as_json.exit_code == 1
    assert "FAILED" in table.stdout and "Order.Rejected" in table.stdout and "no stock" in table.stdout
    described = json.loads(as_json.stdout)
    assert (described["status"], described["error"], described["cause"]) == ("FAILED", "Order.Rejected", "no stock")


def test_run_of_an_invalid_definition_exits_one_with_the_diagnostics_on_stderr(tmp_path: Path) -> None:
    result = _invoke("run", _write(tmp_path, "bad.json", INVALID))
    assert result.exit_code == 1
    assert "/States/A/Nxt" in result.stderr and "/States/B/Next" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"who": ', "--input is not valid JSON"),
        ("not json at all", "--input is not valid JSON"),
        ("@/definitely/not/here.json", "--input @/definitely/not/here.json: no such file"),  # missing, not "invalid"
    ],
    ids=["truncated", "words", "missing file"],
)
def test_run_with_bad_input_json_is_a_usage_error(tmp_path: Path, value: str, message: str) -> None:
    result = _invoke("run", _write(tmp_path, "greet.json", GREET), "--input", value)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [("run",), ("run", "{definition}", "--output", "xml"), ("run", "{definition}", "--max-concurrency", "-1")],
    ids=["no definition", "unknown output format", "negative concurrency"],
)
def test_run_with_bad_arguments_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    definition = _write(tmp_path, "greet.json", GREET)
    result = _invoke(*(str(definition) if a == "{definition}" else a for a in args))
    assert result.exit_code == 2


def test_a_real_process_validates_and_runs_a_definition_with_imported_handlers(tmp_path: Path) -> None:
    _write(tmp_path, "cli_handlers_mod.py", HANDLERS)
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:CliGreeter:live",
                     "End": True}
        },
    }  # fmt: skip
    path = _write(tmp_path, "call.asl.json", definition)
    valid = _subprocess(tmp_path, "validate", path)
    ran = _subprocess(
        tmp_path, "run", path, "--import", "cli_handlers_mod", "--input", '{"who": "bob"}', "--output", "json"
    )
    assert valid.returncode == 0, valid.stdout
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == {"greeting": "hi bob", "state": "Call"}


def test_a_real_process_rejects_an_unregistered_resource_before_running(tmp_path: Path) -> None:
    definition = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": "NobodyRegisteredMe", "End": True}},
    }
    ran = _subprocess(tmp_path, "run", _write(tmp_path, "call.json", definition))
    assert ran.returncode == 1
    assert "UNRESOLVED_RESOURCE" in ran.stderr and "/States/Call/Resource" in ran.stderr
    assert "NobodyRegisteredMe" in ran.stderr


def test_a_real_process_reports_failure_and_usage_errors_with_their_exit_codes(tmp_path: Path) -> None:
    failing = _subprocess(tmp_path, "run", _write(tmp_path, "failing.json", FAILING))
    usage = _subprocess(tmp_path, "run", _write(tmp_path, "greet.json", GREET), "--input", "{nope")
    missing_module = _subprocess(tmp_path, "run", tmp_path / "greet.json", "--import", "no_such_module_here")
    assert (failing.returncode, usage.returncode, missing_module.returncode) == (1, 2, 2)
    assert "Order.Rejected" in failing.stdout
    assert "--input is not valid JSON" in usage.stderr
    assert "no_such_module_here" in missing_module.stderr


def test_validate_prints_each_diagnostic_on_one_line_when_piped(tmp_path: Path) -> None:
    target = "a-rather-long-state-name-that-does-not-exist-anywhere-in-this-definition"
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": target}}}
    done = _subprocess(tmp_path, "validate", _write(tmp_path, "long.json", definition))
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("ERROR /States/A/Next: ")]
    assert target in line and line.endswith("(MISSING_TRANSITION_TARGET)")


def test_run_prints_the_whole_execution_arn_on_one_line_when_piped(tmp_path: Path) -> None:
    name = "a-descriptive-execution-name-of-some-length"
    done = _subprocess(tmp_path, "run", _write(tmp_path, "greet.json", GREET), "--name", name, "--input", '{"who":1}')
    assert done.returncode == 0, done.stderr
    assert f"arn:aws:states:local:000000000000:execution:greet:{name}" in done.stdout.splitlines()[0]

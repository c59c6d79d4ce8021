"""The CLI prints what items, handlers and definitions say literally: bad text never crashes ``dmap run``.

A handler's exception message, an object key or a state name is user data; a console that reads
``[/oops]`` as markup turns it into a traceback (or silently eats ``[bold]``).
"""

from __future__ import annotations

import json

import pytest

from .conftest import HUNG, Cli, run_many

pytestmark = pytest.mark.timeout(60)

MESSAGE = "bad item [/oops] and [bold]more"
"""What ``HardeningBoom`` raises."""


@pytest.fixture(scope="module")
def boom_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cli]:
    """``dmap run`` of a Task that raises ``MESSAGE``, as a table and as JSON."""
    definition = tmp_path_factory.mktemp("boom") / "boom.asl.json"
    task = {"Type": "Task", "Resource": "HardeningBoom", "End": True}
    definition.write_text(json.dumps({"StartAt": "Boom", "States": {"Boom": task}}), "utf-8")
    base = ["run", str(definition), "--import", "tests.hardening.handlers"]
    table, as_json = run_many([base, [*base, "--output", "json"]])
    return {"table": table, "json": as_json}


def assert_failed_cleanly(run: Cli) -> None:
    assert run.code != HUNG, run.text
    assert "Traceback" not in run.text, run.text[-3000:]
    assert run.code == 1, run.text[-3000:]


def test_dmap_run_as_json_reports_a_handler_message_that_looks_like_markup_literally(
    boom_runs: dict[str, Cli],
) -> None:
    run = boom_runs["json"]

    assert_failed_cleanly(run)
    described = json.loads(run.stdout)
    assert described["error"] == "ValueError"
    assert json.loads(described["cause"])["errorMessage"] == MESSAGE


def test_dmap_run_prints_a_failed_execution_whose_cause_looks_like_markup_without_a_traceback(
    boom_runs: dict[str, Cli],
) -> None:
    run = boom_runs["table"]

    assert_failed_cleanly(run)
    assert MESSAGE in run.stdout

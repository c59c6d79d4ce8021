"""``dmap plan``: streamed counts and an AWS price that matches a hand computation (Standard and Express)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dmap
from dmap.cli import app
from dmap.flow.plan import longest_path, plan
from tests.definitions import distributed_map


def _definition(execution_type: str) -> dict[str, Any]:
    # Four states on the longest path (Check -> Work -> Tidy -> Done); the short path is Check -> Skip.
    states = {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Items[0].n", "NumericLessThan": 0, "Next": "Skip"}],
            "Default": "Work",
        },
        "Skip": {"Type": "Succeed"},
        "Work": {"Type": "Pass", "Next": "Tidy"},
        "Tidy": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    }
    return distributed_map(
        states, name="Fan", execution_type=execution_type, ItemBatcher={"MaxItemsPerBatch": 10}, MaxConcurrency=50
    )


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(1005)))
    return path


def test_a_standard_plan_prices_the_longest_path_of_every_batch(manifest: Path) -> None:
    result = plan(_definition("STANDARD"), str(manifest))
    assert (result.items, result.children) == (1005, 101)  # 100 batches of 10 and one of 5
    assert longest_path(dmap.load(_definition("STANDARD")).states["Fan"].processor) == 4  # type: ignore[union-attr]
    # By hand: 101 children x 4 transitions x $0.000025 = $0.0101.
    assert result.standard.transitions == 404
    assert result.standard.dollars == pytest.approx(0.0101)
    assert "longest path" in result.transitions_source


def test_a_sampled_plan_counts_the_transitions_the_children_took_and_projects_the_duration(manifest: Path) -> None:
    result = plan(_definition("STANDARD"), str(manifest), sample=8, seed=1)
    assert result.sample is not None and result.sample.children == 8 and result.sample.failed == 0
    # Every item has n >= 0, so each child ran Check, Work, Tidy, Done: 4 transitions, as by hand.
    assert result.sample.transitions == [4] * 8
    assert result.standard.dollars == pytest.approx(101 * 4 * 0.000025)
    assert result.projected_seconds is not None and result.transitions_source == "the sample's paths"


def test_an_express_plan_prices_requests_and_gb_seconds_with_its_assumptions(manifest: Path) -> None:
    result = plan(_definition("EXPRESS"), str(manifest), express_seconds=0.25)
    # By hand: 101 requests x $1/M = $0.000101; 0.25 s bills as 0.3 s; 64 MB = 0.0625 GB;
    # 101 x 0.3 x 0.0625 = 1.89375 GB-s x $0.06 / 3600 = $0.0000315625.
    e = result.express
    assert (e.memory_mb, e.billed_seconds_per_child) == (64, pytest.approx(0.3))
    assert e.gb_seconds == pytest.approx(1.89375)
    assert e.request_dollars == pytest.approx(0.000101)
    assert e.duration_dollars == pytest.approx(1.89375 * 0.06 / 3600)
    assert e.dollars == pytest.approx(0.000101 + 1.89375 * 0.06 / 3600)
    assert "64 MB" in result.express_assumption and "0.250 s" in result.express_assumption


def test_dmap_plan_prints_json_and_runs_nothing_but_the_sample(manifest: Path, tmp_path: Path) -> None:
    definition = tmp_path / "fan.asl.json"
    definition.write_text(json.dumps(_definition("STANDARD")))
    result = CliRunner().invoke(app, ["plan", str(definition), "--manifest", str(manifest), "--output", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["items"], data["children"], data["sample"]) == (1005, 101, None)
    assert data["standard"]["dollars"] == pytest.approx(0.0101)
    # One spelling for every key, as describe-map-run's JSON (camelCase): no snake_case beside longestPathStates.
    keys = {*data, *data["standard"], *data["express"]}
    assert not [k for k in keys if "_" in k], keys
    assert {"transitionsPerChild", "longestPathStates"} <= keys
    assert {"memoryMB", "secondsPerChild", "billedSecondsPerChild", "gbSeconds", "requestDollars"} <= keys


def test_the_plan_report_names_the_errors_its_sampled_children_failed_with(manifest: Path) -> None:
    """The text report gave only the failure rate; which error failed the sample was in the JSON only."""
    definition = _definition("STANDARD")
    work = definition["States"]["Fan"]["ItemProcessor"]["States"]
    work["Done"] = {"Type": "Fail", "Error": "Partner.Broken", "Cause": "the partner API said no"}
    result = plan(definition, str(manifest), sample=4, seed=1)
    assert result.sample is not None and result.sample.errors == {"Partner.Broken": 4}
    assert "  sample errors: Partner.Broken x4" in result.lines()

"""The compose demo's whole flow on this machine: scripts/demo_local.py (redis, moto S3, 2 workers, the run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from examples.demo.verify import expected_orders

from .conftest import ROOT, missing


@pytest.mark.slow
@pytest.mark.integration
def test_the_local_demo_runs_the_compose_flow_and_finds_its_results_in_s3(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        missing("redis-server", "apt-get install redis-server")
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo_local.py"), "--workers", "2", "--summary", str(summary)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    result: dict[str, Any] = (
        json.loads(summary.read_text("utf-8")) if summary.exists() else {"reason": done.stderr[-4000:]}
    )
    assert done.returncode == 0, result.get("reason")
    valid, invalid = expected_orders()
    assert result["status"] == "SUCCEEDED"
    assert result["succeeded"] == len(valid) and result["failed"] == len(invalid) == 3
    assert result["pending"] == 0
    assert result["manifest"].startswith("s3://dmap-results/demo/") and result["manifest"].endswith("/manifest.json")
    assert result["workerProcesses"] >= 2


def test_the_demo_data_holds_valid_and_invalid_orders() -> None:
    valid, invalid = expected_orders()
    assert len(valid) == 197 and invalid == {"o-0017", "o-0088", "o-0151"}

"""The quick start deployed by an unmodified-for-AWS boto3 script (examples/quickstart/deploy_boto3.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.control.conftest import ROOT, Ctl

from .conftest import REGION


def test_the_quickstart_deploys_and_runs_from_a_boto3_script_written_for_aws(serve: Any, ctl: Ctl) -> None:
    server = serve("local", DMAP_IMPORTS="examples.quickstart.handlers")
    env = {**server.env, "SFN_ENDPOINT": server.url, "AWS_DEFAULT_REGION": REGION}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    for attempt in range(2):  # the second run finds the state machine and updates it, as the script intends
        done = subprocess.run(
            [sys.executable, "-m", "examples.quickstart.deploy_boto3"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (attempt, done.stderr)
        output = json.loads(done.stdout)
        orders = json.loads((ROOT / "examples" / "quickstart" / "input.json").read_text())["orders"]
        assert output["orders"] == len(orders) == len(output["scores"])
        assert "items succeeded" in done.stderr

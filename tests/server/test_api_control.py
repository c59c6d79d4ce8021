"""The API, the CLI and the Python API on one celery execution: ARNs as boto3 returns them, a stop's reason, a redrive.

An ARN the API returns (the caller's region, ``DMAP_ACCOUNT_ID``) is pasted into ``dmap
describe-execution``, ``dmap stop-execution`` and ``dmap.describe_execution`` as it is; the stop's
``--error``/``--cause`` come back from DescribeExecution; a RedriveExecution through the API runs
on the workers, so the redrive finishes after the server was killed while it ran.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from dmap import control
from tests.control.conftest import Ctl, work_map
from tests.control.handlers import key

from .conftest import ACCOUNT, REGION
from .flows import ROLE, wait_status

JOURNAL = "arn:aws:states:local:000000000000:"


def gated_map() -> dict[str, Any]:
    """``CtlWork`` one child at a time; each item names its own handler namespace (``$$.Map.Item.Value.ns``).

    A gated item's first call blocks until its namespace is released, so the first run and the
    redrive each hold a child of their own, released one after the other.
    """
    definition = work_map(max_concurrency=1)
    definition["States"]["Fan"]["ItemSelector"]["ns.$"] = "$$.Map.Item.Value.ns"
    return definition


def test_boto3_arns_work_in_the_cli_and_python_a_stop_keeps_its_reason_and_a_redrive_outlives_the_server(
    serve: Any, ctl: Ctl
) -> None:
    ctl.start_workers(1, concurrency=3)  # a slot for the execution's coordinator, one child at a time
    server = serve("celery")
    sfn = server.client()
    machine = sfn.create_state_machine(name=f"{ctl.ns}-gated", definition=json.dumps(gated_map()), roleArn=ROLE)
    first, redriven = f"{ctl.ns}first", f"{ctl.ns}redrive"  # the test's prefix: cleaned up with its keys
    items = [{"i": 0, "fail": False, "gate": True, "ns": first}]
    items += [{"i": i, "fail": False, "gate": True, "ns": redriven} for i in (1, 2, 3)]
    value = json.dumps({"ns": ctl.ns, "sleep_ms": 0, "hold": 0, "items": items})
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=ctl.name("gated"), input=value)[
        "executionArn"
    ]
    assert arn.startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:execution:")
    ctl.wait_for(lambda: ctl.conn.smembers(key(first, "held")), "item 0 to hold the only child slot")

    # The API's ARNs, pasted as they are into the CLI (another process) and the Python API.
    internal = arn.replace(f"{REGION}:{ACCOUNT}:", "local:000000000000:")
    described = ctl.json("describe-execution", arn)
    assert (described["executionArn"], described["status"]) == (internal, "RUNNING")
    run = sfn.list_map_runs(executionArn=arn)["mapRuns"][0]["mapRunArn"]
    assert run.startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:")
    assert ctl.json("describe-map-run", run)["mapRunArn"].startswith(JOURNAL)
    assert control.describe_map_run(run, backend=ctl.backend()).status == "RUNNING"

    stopped = ctl.cli("stop-execution", arn, "--error", "Ops.Cancelled", "--cause", "maintenance window")
    assert stopped.returncode == 0, stopped.stderr
    ctl.conn.set(key(first, "release"), "1")
    aborted = wait_status(ctl, sfn, arn)
    assert (aborted["status"], aborted.get("error"), aborted.get("cause")) == (
        "ABORTED",
        "Ops.Cancelled",
        "maintenance window",
    ), aborted
    assert control.describe_execution(arn, backend=ctl.backend()).cause == "maintenance window"

    # Redriven through the API: items 1-3 never ran; item 1's first call holds the redrive RUNNING.
    assert sfn.redrive_execution(executionArn=arn)["redriveDate"]
    ctl.wait_for(lambda: ctl.conn.smembers(key(redriven, "held")), "the redrive's first child to hold")
    os.killpg(server.proc.pid, signal.SIGKILL)  # the server dies mid-redrive: the workers' coordinator goes on
    server.proc.wait(timeout=10)
    ctl.conn.set(key(redriven, "release"), "1")

    ctl.wait_for(
        lambda: control.describe_execution(arn, backend=ctl.backend()).status != "RUNNING", "the redrive to end"
    )
    done = serve("celery").client().describe_execution(executionArn=arn)  # a new server sees the same journal
    assert (done["status"], done["redriveCount"]) == ("SUCCEEDED", 1), done
    assert sorted(r["i"] for r in json.loads(done["output"])) == [0, 1, 2, 3]
    assert "error" not in done and "cause" not in done
    # Every item ran to success exactly once: the redrive ran only what never ran.
    ok = {ns: {int(i): int(n) for i, n in ctl.conn.hgetall(key(ns, "ok")).items()} for ns in (first, redriven)}
    assert ok == {first: {0: 1}, redriven: {1: 1, 2: 1, 3: 1}}

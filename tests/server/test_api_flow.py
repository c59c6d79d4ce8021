"""A Distributed Map over a CSV in (moto) S3, driven through ``dmap serve`` by boto3 and the ``aws`` CLI.

The same scenario on both backends: create a state machine, start executions, poll them, read
Map Run counts, update a running Map Run's concurrency, stop one, fail one by tolerance and redrive
it, page through ListExecutions — and the executions are the ones the Python control API sees.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dmap import control
from tests.control.conftest import Ctl
from tests.control.handlers import key

from .conftest import ACCOUNT, REGION
from .flows import ROLE, csv_map, put_csv, run_input, serve_s3, wait_status

ITEMS = 6


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_a_csv_distributed_map_runs_stops_fails_and_redrives_through_the_api(
    backend: str, serve: Any, ctl: Ctl, s3_client: Any, bucket: str
) -> None:
    server = serve_s3(serve, ctl, backend, concurrency=3)
    sfn = server.client()
    put_csv(s3_client, bucket, "ok.csv", ITEMS)
    put_csv(s3_client, bucket, "broken.csv", ITEMS, failing={1, 4})
    made = sfn.create_state_machine(name=f"{ctl.ns}-csv", definition=json.dumps(csv_map()), roleArn=ROLE)
    machine = made["stateMachineArn"]
    assert machine == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{ctl.ns}-csv"

    # Started by the aws CLI, polled by boto3: it succeeds with one Map Run that counted every row.
    start = ["start-execution", "--state-machine-arn", machine, "--name", ctl.name("ok")]
    first = server.aws(*start, "--input", run_input(ctl, bucket, "ok.csv"))["executionArn"]
    assert first == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{ctl.ns}-csv:{ctl.name('ok')}"
    done = wait_status(ctl, sfn, first)
    assert done["status"] == "SUCCEEDED", done
    assert sorted(r["i"] for r in json.loads(done["output"])) == list(range(ITEMS))
    runs = sfn.list_map_runs(executionArn=first)["mapRuns"]
    assert len(runs) == 1
    counts = server.aws("describe-map-run", "--map-run-arn", runs[0]["mapRunArn"])["itemCounts"]
    assert (counts["total"], counts["succeeded"], counts["failed"]) == (ITEMS, ITEMS, 0)
    children, more = [], {}  # every child execution of the Map Run, 4 a page, from the run store's statuses
    while True:
        page = sfn.list_executions(mapRunArn=runs[0]["mapRunArn"], maxResults=4, **more)
        children += page["executions"]
        if "nextToken" not in page:
            break
        more = {"nextToken": page["nextToken"]}
    assert len({c["name"] for c in children}) == ITEMS and {c["status"] for c in children} == {"SUCCEEDED"}
    assert sfn.list_executions(mapRunArn=runs[0]["mapRunArn"], statusFilter="RUNNING")["executions"] == []
    if backend == "celery":  # one journal: the Python control API (another process) sees the same execution
        internal = first.replace(f"{REGION}:{ACCOUNT}", "local:000000000000")
        assert control.describe_execution(internal, backend=ctl.backend()).status == "SUCCEEDED"

    # A running Map Run: its concurrency is raised, then the execution is stopped.
    ns = f"{ctl.ns}held"
    value = run_input(ctl, bucket, "ok.csv", hold=1, max_concurrency=1, ns=ns)
    held = sfn.start_execution(stateMachineArn=machine, name=ctl.name("held"), input=value)["executionArn"]
    ctl.wait_for(lambda: ctl.conn.smembers(key(ns, "held")), "a child to be held")
    run = sfn.list_map_runs(executionArn=held)["mapRuns"][0]["mapRunArn"]
    assert sfn.describe_map_run(mapRunArn=run)["maxConcurrency"] == 1
    sfn.update_map_run(mapRunArn=run, maxConcurrency=3)
    assert sfn.describe_map_run(mapRunArn=run)["maxConcurrency"] == 3
    assert "stopDate" in sfn.stop_execution(executionArn=held)
    ctl.conn.set(key(ns, "release"), "1")
    stopped = wait_status(ctl, sfn, held)
    assert stopped["status"] == "ABORTED", stopped
    assert stopped["redriveStatus"] == "REDRIVABLE"

    # Two broken rows and no tolerance: FAILED; the failed children are listed; fixed and redriven, it succeeds.
    broken = sfn.start_execution(
        stateMachineArn=machine, name=ctl.name("broken"), input=run_input(ctl, bucket, "broken.csv")
    )["executionArn"]
    failed = wait_status(ctl, sfn, broken)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold"), failed
    run = sfn.list_map_runs(executionArn=broken)["mapRuns"][0]["mapRunArn"]
    assert sfn.describe_map_run(mapRunArn=run)["itemCounts"]["failed"] >= 1
    children = sfn.list_executions(mapRunArn=run, statusFilter="FAILED")["executions"]
    assert children and all(c["status"] == "FAILED" and c["mapRunArn"] == run for c in children)
    ctl.fix()
    assert sfn.redrive_execution(executionArn=broken)["redriveDate"]
    redriven = wait_status(ctl, sfn, broken)
    assert (redriven["status"], redriven["redriveCount"]) == ("SUCCEEDED", 1), redriven
    final = sfn.describe_map_run(mapRunArn=run)
    assert (final["itemCounts"]["succeeded"], final["itemCounts"]["total"], final["redriveCount"]) == (ITEMS, ITEMS, 1)

    # Paging: one execution a page by boto3, and the aws CLI's own pagination over maxResults 1.
    names, token = [], None
    while True:
        page = sfn.list_executions(stateMachineArn=machine, maxResults=1, **({"nextToken": token} if token else {}))
        names += [e["name"] for e in page["executions"]]
        token = page.get("nextToken")
        if token is None:
            break
    assert sorted(names) == sorted(ctl.name(n) for n in ("ok", "held", "broken"))
    listed = server.aws("list-executions", "--state-machine-arn", machine, "--page-size", "1")["executions"]
    assert [e["name"] for e in listed] == names
    only_failed = sfn.list_executions(stateMachineArn=machine, statusFilter="ABORTED")["executions"]
    assert [e["name"] for e in only_failed] == [ctl.name("held")]

    # GetExecutionHistory pages too: two events a page, both orders, and the aws CLI's own pagination.
    def history(reverse: bool) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        token = None
        while True:
            more = {"nextToken": token} if token else {}
            page = sfn.get_execution_history(executionArn=broken, maxResults=2, reverseOrder=reverse, **more)
            assert len(page["events"]) <= 2
            events += page["events"]
            token = page.get("nextToken")
            if token is None:
                return events

    forward = history(False)
    ids = [e["id"] for e in forward]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 4
    types = [e["type"] for e in forward]
    assert types[0] == "ExecutionStarted" and "ExecutionRedriven" in types and types[-1] == "ExecutionSucceeded"
    assert [e["id"] for e in history(True)] == ids[::-1]
    listed_events = server.aws("get-execution-history", "--execution-arn", broken, "--page-size", "2")["events"]
    assert [e["id"] for e in listed_events] == ids

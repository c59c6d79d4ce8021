"""The callback pattern on the celery backend: children waiting for their tokens hold no worker slot.

Real ``dmap worker`` processes with one slot each run distributed children that hand their task
token to the test (``ITestHandToken``) and park. The test answers with the public verbs (and the
CLI), kills a worker while the children are parked, and checks the counts and the calls exactly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

import dmap
from dmap import control
from dmap.cli import app
from dmap.config import get_settings
from dmap.interpreter import registry
from dmap.interpreter.context import execution_arn
from tests.definitions import distributed_map

from .conftest import Background, Cluster
from .handlers import REDIS_URL

CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"


def _callback_map(*, max_concurrency: int, tolerated: int = 0, **task: Any) -> dict[str, Any]:
    ask = {
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {
            "FunctionName": "ITestHandToken",
            "Payload": {"i.$": "$.i", "ns.$": "$.ns", "token.$": "$$.Task.Token"},
        },
        "ResultPath": "$.answer",
        "End": True,
        **task,
    }
    return distributed_map({"Ask": ask}, name="Each", MaxConcurrency=max_concurrency, ToleratedFailureCount=tolerated)


def _tokens(cluster: Cluster) -> dict[int, str]:
    raw = cluster.conn.lrange(f"itest:{cluster.ns}:tokens", 0, -1)
    return {entry["i"]: entry["token"] for entry in map(json.loads, raw)}


def test_twenty_parked_children_hold_no_slot_survive_a_killed_worker_and_count_exactly(cluster: Cluster) -> None:
    workers = cluster.start_workers(2, concurrency=1)
    backend = cluster.celery()
    name = f"callbacks-{cluster.ns}"
    items = [{"i": i, "ns": cluster.ns} for i in range(20)]
    run = Background(
        lambda: dmap.run(_callback_map(max_concurrency=20, tolerated=5), input=items, backend=backend, name=name)
    )
    # Two worker slots, twenty children waiting at once: every one of them let go of its slot.
    cluster.wait_for(lambda: len(_tokens(cluster)) == 20, "all 20 children to hand out their tokens")
    [map_run] = control.list_map_runs(execution_arn("dmap", name), backend=backend)
    live = control.describe_map_run(map_run.map_run_arn, backend=backend)
    assert (live.execution_counts["running"], live.execution_counts["pending"]) == (20, 0)

    workers[0].kill()  # kill -9 while all twenty are parked: nothing of theirs was in it
    cluster.start_workers(1, concurrency=1)
    for i, token in sorted(_tokens(cluster).items()):
        if i % 4 == 3:
            dmap.send_task_failure(token, "Rejected", f"item {i}", backend=backend)
        else:
            dmap.send_task_success(token, json.dumps({"double": i * 2}), backend=backend)

    execution = run.result()
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    [map_run] = execution.map_runs
    counts = map_run.execution_counts
    assert (counts["succeeded"], counts["failed"], counts["running"], counts["total"]) == (15, 5, 0, 20)
    assert cluster.calls() == {i: 1 for i in range(20)}  # each handler ran once: resumed, never re-run
    answers = {o["i"]: o["answer"] for o in execution.output if "answer" in o}
    assert answers == {i: {"double": i * 2} for i in range(20) if i % 4 != 3}
    with pytest.raises(dmap.TaskTimedOut):
        dmap.send_task_success(_tokens(cluster)[0], "{}", backend=backend)


def test_a_parked_child_without_heartbeats_fails_with_states_heartbeat_timeout(cluster: Cluster) -> None:
    cluster.start_workers(1, concurrency=1)
    backend = cluster.celery()
    catch = [{"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.error", "Next": "Gave up"}]
    definition = _callback_map(max_concurrency=2, HeartbeatSeconds=1, Catch=catch)
    processor = definition["States"]["Each"]["ItemProcessor"]
    processor["States"]["Ask"].pop("End")
    processor["States"]["Ask"]["Next"] = "Gave up"
    processor["States"]["Gave up"] = {"Type": "Pass", "End": True}
    items = [{"i": i, "ns": cluster.ns} for i in range(2)]
    execution = Background(lambda: dmap.run(definition, input=items, backend=backend)).result()
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert [o["error"]["Error"] for o in execution.output] == ["States.HeartbeatTimeout"] * 2


def test_the_cli_answers_a_top_level_task_of_a_celery_execution(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = cluster.celery()
    tokens: list[str] = []
    registry.register("TopHandToken", lambda event, context: tokens.append(event["token"]))
    try:
        definition = _callback_map(max_concurrency=1)["States"]["Each"]["ItemProcessor"]["States"]["Ask"]
        definition["Parameters"] = {"FunctionName": "TopHandToken", "Payload": {"token.$": "$$.Task.Token"}}
        definition["HeartbeatSeconds"] = 30
        run = Background(lambda: dmap.run({"StartAt": "Ask", "States": {"Ask": definition}}, backend=backend))
        cluster.wait_for(lambda: bool(tokens), "the top-level task to hand out its token")
        monkeypatch.setenv("DMAP_REDIS_URL", REDIS_URL)
        get_settings.cache_clear()  # the CLI reads DMAP_REDIS_URL as a fresh process would
        runner = CliRunner()
        beat = runner.invoke(app, ["send-task-heartbeat", tokens[0], "--backend", "celery"])
        assert beat.exit_code == 0, beat.output
        done = runner.invoke(app, ["send-task-success", tokens[0], '{"from": "cli"}', "--backend", "celery"])
        assert done.exit_code == 0, done.output
        assert run.result().output == {"answer": {"from": "cli"}}
        again = runner.invoke(app, ["send-task-failure", tokens[0], "--error", "Late", "--backend", "celery"])
        assert again.exit_code == 1
        assert "Task Timed Out" in again.output
    finally:
        registry.unregister("TopHandToken")
        get_settings.cache_clear()

"""The shutdown story of docker-compose.yml and deploy/k8s, on real processes: SIGTERM drains a worker.

A worker told to stop (``docker compose stop``, a pod deletion, a KEDA scale-down) finishes the child it
runs while its heartbeat keeps the lease, hands its reserved message back to the queue, and exits 0; no
lease expires, so no child waits a lease period or runs twice. That is why the grace periods are one
lease plus the longest child, and why no preStop hook is needed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dmap.api import state_machine_name
from dmap.interpreter.context import execution_arn
from dmap.records import new_run_id
from dmap.store.redis import RedisRunStore

from .conftest import ROOT

HANDLERS = """
import os, time
import dmap

@dmap.task("Drain")
def drain(event, context):
    time.sleep(1.5)
    return {"item": event, "pid": os.getpid()}
"""
DEFINITION = {
    "StartAt": "M",
    "States": {
        "M": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 4,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "S",
                "States": {"S": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:Drain", "End": True}},
            },
            "End": True,
        }
    },
}


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.integration
def test_sigterm_lets_a_worker_finish_its_child_and_hand_back_the_rest_without_losing_a_lease(
    redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "drain_handlers.py").write_text(HANDLERS, "utf-8")
    definition = tmp_path / "drain.json"
    definition.write_text(json.dumps(DEFINITION), "utf-8")
    env = {**os.environ, "DMAP_REDIS_URL": redis_url, "DMAP_BACKEND": "celery"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("DMAP_BROKER_URL", None)
    worker = [sys.executable, "-m", "dmap", "worker", "--concurrency", "1", "--import", "drain_handlers"]
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name, log in logs.items():
        with log.open("wb") as out:
            procs[name] = subprocess.Popen(worker, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    name = "drain-1"
    run = new_run_id(execution_arn(state_machine_name(definition), name), "M", 0)
    store = RedisRunStore.from_url(redis_url)
    try:
        for log in logs.values():
            wait_for(lambda log=log: b" ready." in log.read_bytes(), f"{log.name} to be ready")
        argv = [sys.executable, "-m", "dmap", "run", str(definition), "--backend", "celery", "--name", name]
        argv += ["--import", "drain_handlers", "--input", json.dumps({"items": list(range(6))}), "--output", "json"]
        procs["coordinator"] = coordinator = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        wait_for(lambda: b"received" in logs["a"].read_bytes(), "worker a to take a child")
        procs["a"].send_signal(signal.SIGTERM)
        assert procs["a"].wait(timeout=60) == 0  # warm shutdown: it waited for its child
        out, err = coordinator.communicate(timeout=120)
        assert coordinator.returncode == 0, err.decode()[-3000:]
        assert json.loads(out)["status"] == "SUCCEEDED"
        log_a = logs["a"].read_text("utf-8")
        assert "Warm shutdown" in log_a and "succeeded" in log_a.split("Warm shutdown", 1)[1]
        counts = store.counts(run)
        assert counts.items.succeeded == 6
        assert counts.reclaimed == 0  # no lease expired: nothing waited a lease period or ran twice
        assert counts.duplicates == 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
        store.close()

"""One fault scenario on the compose cluster: a 20,000-item run, a coordinator container, the numbers.

:class:`FaultCluster` is the running ``dmap-faults`` project (Redis, moto's S3, ``tally``, three
workers) seen from the host. :class:`FaultRun` puts ``items.jsonl`` in a bucket of its own, starts
the ``coordinator`` container on it (the fault suite's workflow, :mod:`tests.faults.flows`: one
``FaultWork`` child per item, results exported by the ResultWriter), samples progress (distinct
items started, from ``tally``) every 0.1 s while the test injects its fault, and at the end reads
the result files back (:func:`tests.faults.audit.audit_results`). :class:`Numbers` is one line of
the table printed at the end of the session. Checks, never decides: the tests assert.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import redis

from tests.faults import audit, flows
from tests.faults.handlers import key

from .cluster import Compose, address, docker, inspect, is_healthy, logs, wait_for

ITEMS = int(os.environ.get("DOCKER_FAULT_ITEMS", "20000"))
MAX_CONCURRENCY = 1000
LEASE_S = 5.0
"""DMAP_LEASE_SECONDS of tests/docker/compose.faults.yml."""


@dataclass
class Numbers:
    """One scenario's line of the session's table.

    Attributes:
        scenario: A short name.
        fault: What was injected.
        lost: Items in no result file (must be 0).
        double: Items written or counted more than once (must be 0).
        reruns: Handler runs beyond one per item (a child whose attempt was lost runs again).
        stall_s: The longest stretch with no new item started (how long the fault stopped progress).
        seconds: Wall time of the run, from the coordinator's start to its exit.
        restarts: Times the coordinator container was started again (restart policy or the test).
        outcome: The run's final status.
    """

    scenario: str
    fault: str
    lost: int
    double: int
    reruns: int
    stall_s: float
    seconds: float
    restarts: int
    outcome: str


RECORDED: list[Numbers] = []
BASELINE: dict[str, float] = {}
"""``{"seconds": ...}`` of the fault-free run, when it ran: each line's cost is measured against it."""


def table() -> list[str]:
    """The recorded numbers as aligned text lines (empty when no scenario ran)."""
    if not RECORDED:
        return []
    base = BASELINE.get("seconds")
    head = ("scenario", "fault", "lost", "double", "re-runs", "stall s", "run s", "cost s", "restarts", "outcome")
    rows = [head] + [
        (
            n.scenario,
            n.fault,
            str(n.lost),
            str(n.double),
            str(n.reruns),
            f"{n.stall_s:.1f}",
            f"{n.seconds:.1f}",
            "-" if base is None else f"{n.seconds - base:+.1f}",
            str(n.restarts),
            n.outcome,
        )
        for n in RECORDED
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]


HANDLER_RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 5, "BackoffRate": 2.0}
"""The Task's Retry: ``FaultWork`` writes its run counter to ``tally`` over the very network a fault
cuts, so a worker cut off fails the handler itself (``TimeoutError`` from redis-py) — a handler
error, which the workflow retries as a user's workflow with a network dependency would."""


def retrying_fault_map(bucket: str) -> dict[str, Any]:
    """The fault suite's workflow (:func:`tests.faults.flows.fault_map`) with :data:`HANDLER_RETRY` on its Task."""
    definition = flows.fault_map(bucket, max_concurrency=MAX_CONCURRENCY)
    processor = definition["States"][flows.MAP_STATE]["ItemProcessor"]
    processor["States"]["Work"]["Retry"] = [HANDLER_RETRY]
    return definition


class FaultCluster:
    """The running fault project as the host sees it: S3 and ``tally`` clients, worker containers."""

    def __init__(self, compose: Compose, specs: Path) -> None:
        self.compose, self.specs = compose, specs
        network = compose.network
        s3_at = address(compose.container("minio"), network)
        self.s3: Any = boto3.client(
            "s3",
            endpoint_url=f"http://{s3_at}:9000",
            aws_access_key_id="dmap",
            aws_secret_access_key="dmap-secret",
            region_name="us-east-1",
        )
        self.tally = redis.Redis(host=address(compose.container("tally"), network), socket_timeout=5)

    def workers(self) -> list[str]:
        """The worker containers, in replica order."""
        return self.compose.containers("worker")

    def coordinator(self) -> str:
        """The coordinator container (created by :meth:`FaultRun.start`)."""
        return self.compose.container("coordinator")

    def heal(self) -> None:
        """Undo whatever a scenario left: every worker running, unpaused and on the network."""
        for name in self.workers():
            state = inspect(name)["State"]
            if state["Paused"]:
                docker("unpause", name)
            if state["Running"]:  # a worker frozen by SIGSTOP (freeze's fallback) goes on
                docker("exec", name, "sh", "-c", "kill -CONT -1", check=False)
            if self.compose.network not in inspect(name)["NetworkSettings"]["Networks"]:
                docker("network", "connect", self.compose.network, name)
            if not inspect(name)["State"]["Running"]:
                docker("start", name)
        self.compose.run("up", "-d", "--no-recreate", "--scale", "worker=3", "worker", "minio", "tally")
        # A worker that was paused or cut off failed its probes: wait for the next ones to pass
        # (`up --wait` would give up at once on "unhealthy"); one that stays unhealthy is restarted.
        for name in self.workers():
            healthy = functools.partial(is_healthy, name)
            try:
                wait_for(healthy, f"{name} to be healthy", 30, every=0.5)
            except TimeoutError:
                docker("restart", "-t", "5", name)
                wait_for(healthy, f"{name} to be healthy", 60, every=0.5)


def summaries(container: str) -> list[dict[str, Any]]:
    """The outcome lines :mod:`tests.faults.drive` printed in the container (one per finished run)."""
    out = docker("logs", container)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


class FaultRun:
    """One execution of the fault workflow over ``items`` items, driven from the coordinator container."""

    def __init__(self, cluster: FaultCluster, scenario: str, items: int = ITEMS) -> None:
        self.cluster, self.scenario, self.items = cluster, scenario, items
        self.tag = uuid.uuid4().hex[:8]
        self.bucket, self.name = f"faults-{self.tag}", f"{scenario}-{self.tag}"
        self.samples: list[tuple[float, int]] = []
        self.started_at = 0.0
        self.test_restarts = 0
        self.restarts, self.seconds, self.died_of = 0, 0.0, ""
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name=f"progress-{scenario}", daemon=True)

    def started(self) -> int:
        """Distinct items whose handler has started at least once."""
        return int(self.cluster.tally.hlen(key(self.tag, "calls")))

    def calls(self) -> dict[int, int]:
        """Item index -> handler runs."""
        raw = self.cluster.tally.hgetall(key(self.tag, "calls"))
        return {int(k): int(v) for k, v in raw.items()}

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.started()))
            except redis.RedisError:
                pass
            self._stop.wait(0.1)

    def start(self) -> None:
        """Upload the items, write the coordinator's spec and (re)create the coordinator container."""
        self.cluster.s3.create_bucket(Bucket=self.bucket)
        self.cluster.s3.put_object(Bucket=self.bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(self.items))
        spec = {
            "name": self.name,
            "definition": retrying_fault_map(self.bucket),
            "input": flows.fault_input(self.tag),
            "redrive": False,
        }
        path = self.cluster.specs / f"{self.name}.json"
        path.write_text(json.dumps(spec), "utf-8")
        path.chmod(0o644)  # the coordinator runs as user 10001
        self.cluster.compose.env["FAULTS_SPEC"] = f"{self.name}.json"
        self.started_at = time.monotonic()
        self.cluster.compose.run("--profile", "faults", "up", "-d", "--force-recreate", "--no-deps", "coordinator")
        self._sampler.start()

    def wait_started(self, fraction: float, timeout: float = 120) -> None:
        """Wait until ``fraction`` of the items have started."""
        wait_for(lambda: self.started() >= fraction * self.items, f"{fraction:.0%} of the items to start", timeout)

    def finish(self, timeout: float = 240) -> dict[str, Any]:
        """Wait for the coordinator's final exit (restart policy included); its JSON summary.

        A coordinator that died and that the restart policy does not bring back (``docker kill``
        counts as a manual stop on some engines) is started again here, as a Job controller would.
        """
        name = self.cluster.coordinator()
        deadline = time.monotonic() + timeout
        while True:
            if summaries(name):  # the execution ended (SUCCEEDED or not): no restart may run it again
                try:
                    docker("update", "--restart", "no", name)
                except RuntimeError:
                    # The engine refuses to update a container that has stopped: this one exited between
                    # its summary and the update. Unless its restart policy is bringing it back, it is done.
                    if inspect(name)["State"]["Restarting"]:
                        raise
                wait_for(lambda: inspect(name)["State"]["Status"] == "exited", "the coordinator to exit", 30)
                break
            state: Any = inspect(name)["State"]
            if state["Status"] == "exited" and not state["Restarting"]:
                if state["ExitCode"] == 0:
                    break
                time.sleep(1.0)  # give the restart policy its chance first
                state = inspect(name)["State"]
                if state["Status"] == "exited" and not state["Restarting"]:
                    if self.test_restarts >= 10:
                        raise RuntimeError(f"{self.name}: the coordinator keeps failing:\n{logs(name, 30)}")
                    self.test_restarts += 1
                    docker("start", name)
            if time.monotonic() > deadline:
                late = f"{self.name}: the coordinator did not finish within {timeout:g}s"
                raise TimeoutError(f"{late}:\n{logs(name, 30)}")
            time.sleep(0.2)
        self.seconds = time.monotonic() - self.started_at
        self._stop.set()
        self._sampler.join(5)
        self.restarts = int(inspect(name)["RestartCount"]) + self.test_restarts
        errors = re.findall(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exists))\b", logs(name), flags=re.MULTILINE)
        self.died_of = errors[-1] if errors else ("killed" if self.restarts else "")
        return summaries(name)[0]

    def stall_s(self) -> float:
        """The longest stretch, between the first and the last item's start, with no new item started."""
        longest, last_change, last_count = 0.0, None, -1
        for at, count in self.samples:
            if count != last_count:
                if last_change is not None and last_count > 0:
                    longest = max(longest, at - last_change)
                last_change, last_count = at, count
            if count >= self.items:
                break
        return longest

    def check(self, fault: str, summary: dict[str, Any]) -> Numbers:
        """Audit the result files, record the scenario's numbers and assert nothing was lost or doubled."""
        found = audit.audit_results(self.cluster.s3, self.bucket, summary["run_id"], self.items)
        calls = self.calls()
        numbers = Numbers(
            self.scenario,
            fault,
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            self.stall_s(),
            self.seconds,
            self.restarts,
            summary["status"] + (f" (coordinator died: {self.died_of})" if self.restarts else ""),
        )
        RECORDED.append(numbers)
        assert summary["status"] == "SUCCEEDED", summary
        found.check_clean()
        found.check_counts(summary["item_counts"])
        assert found.by_group == {"SUCCEEDED": self.items, "FAILED": 0, "PENDING": 0}
        assert set(calls) == set(range(self.items))
        return numbers

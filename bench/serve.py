"""API latency benchmark: ``python -m bench.serve`` — StartExecution → SUCCEEDED through ``dmap serve``.

A ``dmap serve`` subprocess on the local backend (a fresh ``DMAP_HOME``); a boto3
``stepfunctions`` client creates a state machine whose DISTRIBUTED Map runs ``--items`` (100)
children of one Pass state, then, ``--runs`` times:

* **standard**: ``StartExecution``, then ``DescribeExecution`` every ``--poll`` seconds (10 ms)
  until it is no longer RUNNING; the latency is from the start call to the first SUCCEEDED answer
  (so it includes up to one poll interval and every HTTP round trip);
* **express sync**: the same definition as an EXPRESS state machine through ``StartSyncExecution``:
  one request, answered when the execution ended.

Prints p50/p95/min/max in milliseconds (the first run of each kind is a warm-up and not counted).
AWS users report 7+ s of fixed overhead for such a Map Run on Step Functions. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import boto3
import httpx
from botocore.config import Config

from tests.definitions import distributed_map

ROLE = "arn:aws:iam::123456789012:role/bench"


def definition(items: int) -> dict[str, Any]:
    """A DISTRIBUTED Map over ``items`` input items whose child is one Pass state."""
    return distributed_map(name="Fan", execution_type="EXPRESS", ItemsPath="$.items")


def start_server(home: str) -> tuple[subprocess.Popen[bytes], str]:
    """A ``dmap serve`` subprocess on a free port (local backend); its process and URL once it is ready."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DMAP_BACKEND": "local", "DMAP_HOME": home}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dmap", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("dmap serve did not start")


def measure(label: str, runs: int, once: Callable[[], float]) -> None:
    """Run ``once`` ``runs`` + 1 times (the first is a warm-up) and print its latency percentiles."""
    once()
    samples = sorted(once() * 1000 for _ in range(runs))
    p95 = samples[min(len(samples) - 1, int(round(0.95 * len(samples))) - 1)]
    print(
        f"{label:<34} runs={runs:<4} p50={statistics.median(samples):8.1f} ms  p95={p95:8.1f} ms  "
        f"min={samples[0]:8.1f} ms  max={samples[-1]:8.1f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--poll", type=float, default=0.01)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dmap-bench-serve-") as home:
        proc, url = start_server(home)
        try:
            sfn = boto3.client(
                "stepfunctions",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
            )
            text = json.dumps(definition(args.items))
            payload = json.dumps({"items": [{"i": i} for i in range(args.items)]})
            standard = sfn.create_state_machine(name="bench", definition=text, roleArn=ROLE)["stateMachineArn"]
            express = sfn.create_state_machine(name="bench-express", definition=text, roleArn=ROLE, type="EXPRESS")[
                "stateMachineArn"
            ]

            def polled() -> float:
                began = time.perf_counter()
                arn = sfn.start_execution(stateMachineArn=standard, input=payload)["executionArn"]
                while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
                    time.sleep(args.poll)
                if status != "SUCCEEDED":
                    raise SystemExit(f"execution {arn} ended {status}")
                return time.perf_counter() - began

            def synced() -> float:
                began = time.perf_counter()
                answer = sfn.start_sync_execution(stateMachineArn=express, input=payload)
                if answer["status"] != "SUCCEEDED":
                    raise SystemExit(f"sync execution ended {answer['status']}")
                return time.perf_counter() - began

            print(f"dmap serve, local backend, {args.items}-item DISTRIBUTED Map of one Pass state")
            measure(f"StartExecution + poll {args.poll * 1000:g} ms", args.runs, polled)
            measure("StartSyncExecution (EXPRESS)", args.runs, synced)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()

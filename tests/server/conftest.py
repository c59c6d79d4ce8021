"""Fixtures of the API tests: a real ``dmap serve`` subprocess, a boto3 ``stepfunctions`` client and the ``aws`` CLI.

The server runs on either backend with the control tests' handlers (``tests.control.handlers``) and
their :class:`~tests.control.conftest.Ctl` (real ``dmap worker`` processes, namespaced Redis keys,
cleanup), reading S3 from moto over HTTP. It checks every response it sends against botocore's
model (``DMAP_SERVE_CHECK_SHAPES``); a test fails if its server logged a mismatch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.control.conftest import ROOT, Ctl, ctl, ctl_redis  # noqa: F401  (shared fixtures, not copies)

START_TIMEOUT = 60.0
REGION = "eu-west-1"
ACCOUNT = "210987654321"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One ``dmap serve`` process and the clients that talk to it."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    env: dict[str, str]
    tmp: Path
    clients: list[Any] = field(default_factory=list)

    def client(self, access_key: str = "testing", **config: Any) -> Any:
        """A boto3 ``stepfunctions`` client of this server, exactly as for AWS but for ``endpoint_url``."""
        import boto3
        from botocore.config import Config

        made = boto3.client(
            "stepfunctions",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, **config),
        )
        self.clients.append(made)
        return made

    def aws(self, *args: str, check: bool = True) -> Any:
        """Run ``aws stepfunctions ARGS`` (endpoint from ``AWS_ENDPOINT_URL_SFN``); its JSON output, or the process."""
        env = {**self.env, "AWS_ENDPOINT_URL_SFN": self.url, "AWS_DEFAULT_REGION": REGION, "AWS_PAGER": ""}
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        done = subprocess.run(
            [sys.executable, "-m", "awscli", "stepfunctions", *args, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if not check:
            return done
        assert done.returncode == 0, (args, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def text(self) -> str:
        """The server's log so far."""
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL if it lingers)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_server(owner: Ctl, backend: str, **env: str) -> Server:
    """Start ``dmap serve`` for ``owner``'s test on ``backend`` and wait until ``/health/ready`` answers."""
    port = free_port()
    environment = owner.env()
    environment.update(
        DMAP_BACKEND=backend,
        DMAP_HOME=str(owner.tmp / "home"),
        DMAP_SERVE_CHECK_SHAPES="1",
        DMAP_ACCOUNT_ID=ACCOUNT,
        **env,
    )
    log = owner.tmp / f"serve-{port}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dmap", "serve", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log, environment, owner.tmp)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"dmap serve did not start:\n{server.text()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture
def serve(ctl: Ctl) -> Iterator[Any]:  # noqa: F811  (the shared ctl fixture)
    """A factory: ``serve(backend, **env)`` starts a server; each is stopped and its log checked afterwards."""
    started: list[Server] = []

    def make(backend: str = "local", **env: str) -> Server:
        server = start_server(ctl, backend, **env)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.proc.poll() is None and server.env["DMAP_BACKEND"] == "celery":  # the registry is in shared Redis
            sfn = server.client()
            for page in sfn.get_paginator("list_state_machines").paginate():
                for machine in page["stateMachines"]:
                    if machine["name"].startswith(ctl.ns):
                        sfn.delete_state_machine(stateMachineArn=machine["stateMachineArn"])
        server.stop()
        for client in server.clients:
            client.close()
    mismatches = [line for s in started for line in s.text().splitlines() if "SHAPE MISMATCH" in line]
    assert not mismatches, "responses that do not match botocore's model:\n" + "\n".join(mismatches)

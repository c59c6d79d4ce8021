"""Fixtures of the integration suite: a real Redis database and real ``dmap worker`` processes.

Everything runs against redis-server DB 13 (``ITEST_REDIS_URL``), flushed before and after each
test, with a Celery queue unique to the test so stray messages never cross tests. The
:class:`Cluster` factory starts ``dmap worker`` subprocesses (prefork) in their own process
groups, waits until each reports ready through Redis, and kills them all at teardown (SIGTERM,
then SIGKILL). Without Redis the tests skip locally and fail under CI (``CI`` set).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

import dmap
from dmap.backends import Backend
from dmap.backends.celery import CeleryBackend
from dmap.backends.local import LocalBackend
from dmap.config import Settings

from .handlers import REDIS_URL, ready_key

ROOT = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))
READY_TIMEOUT = 90.0


@pytest.fixture
def itest_redis() -> Iterator[redis.Redis]:
    """A client of the integration database, empty before and after the test."""
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as exc:
        if IN_CI:
            raise
        pytest.skip(f"no redis-server at {REDIS_URL}: {exc}")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@dataclass
class Worker:
    """One ``dmap worker`` process group (the main process and its prefork children)."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The main process id (also the process group id)."""
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the whole process group at once: the machine "dies", nothing shuts down cleanly."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        """The end of the worker's log (for failure messages)."""
        text = self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    """Workers, backends and environment of one test, all on one queue of the integration database.

    Attributes:
        conn: The integration Redis client.
        queue: The Celery queue of this test.
        ns: The namespace of this test's handler counters (``itest:<ns>:*``).
        logs: Where worker logs go.
        lease_seconds: ``DMAP_LEASE_SECONDS`` of workers and coordinators.
        dispatch_lease_seconds: ``DMAP_DISPATCH_LEASE_SECONDS`` (how long a queued child keeps its permit).
    """

    conn: redis.Redis
    queue: str
    ns: str
    logs: Path
    lease_seconds: float = 30.0
    dispatch_lease_seconds: float = 600.0
    workers: list[Worker] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker or coordinator subprocess of this test."""
        env = dict(os.environ)
        path = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        env.update(
            PYTHONPATH=os.pathsep.join(path),
            ITEST_REDIS_URL=REDIS_URL,
            ITEST_WORKER="1",
            DMAP_REDIS_URL=REDIS_URL,
            DMAP_BROKER_URL=REDIS_URL,
            DMAP_QUEUE=self.queue,
            DMAP_LEASE_SECONDS=str(self.lease_seconds),
            DMAP_DISPATCH_LEASE_SECONDS=str(self.dispatch_lease_seconds),
            DMAP_IMPORTS="tests.integration.handlers",
        )
        env.pop("DMAP_BACKEND", None)
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Settings:
        """Settings of an in-test coordinator on this cluster."""
        values: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "broker_url": REDIS_URL,
            "queue": self.queue,
            "lease_seconds": self.lease_seconds,
            "dispatch_lease_seconds": self.dispatch_lease_seconds,
        }
        values.update(overrides)
        return Settings(**values)

    def start_workers(
        self, count: int, *, concurrency: int = 1, loglevel: str = "WARNING", env: dict[str, str] | None = None
    ) -> list[Worker]:
        """Start ``count`` ``dmap worker`` processes and wait until all of them are ready (``env``: extra variables)."""
        before = self.conn.scard(ready_key(self.queue))
        started = []
        for _ in range(count):
            log = self.logs / f"worker-{len(self.workers)}.log"
            command = [sys.executable, "-m", "dmap", "worker", "--concurrency", str(concurrency)]
            command += ["--pool", "prefork", "--loglevel", loglevel]
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env(**(env or {})),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            worker = Worker(proc, log)
            self.workers.append(worker)
            started.append(worker)
        deadline = time.monotonic() + READY_TIMEOUT
        while self.conn.scard(ready_key(self.queue)) < before + count:
            dead = [w for w in started if w.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n---\n".join(w.tail() for w in (dead or started))
                pytest.fail(f"{len(dead)} worker(s) exited / not ready in {READY_TIMEOUT}s:\n{logs}")
            time.sleep(0.05)
        return started

    def celery(self, **overrides: Any) -> CeleryBackend:
        """A celery backend (this process is the coordinator) sending to this test's queue."""
        backend = CeleryBackend(self.settings(**overrides))
        self.backends.append(backend)
        return backend

    def local(self, **overrides: Any) -> LocalBackend:
        """A private local backend (its own thread pool and in-memory store)."""
        backend = LocalBackend(self.settings(**overrides))
        self.backends.append(backend)
        return backend

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll ``condition`` until it holds; fail the test naming ``what`` (never a timing assertion)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"gave up after {timeout:g}s waiting for {what}")
            time.sleep(0.02)

    def counter(self, name: str) -> int:
        """A handler counter of this test (``running``, ``done``...)."""
        value = self.conn.get(f"itest:{self.ns}:{name}")
        return int(value) if value is not None else 0

    def peak(self, phase: int | str = 0) -> int:
        """The highest number of handlers running at once seen in ``phase``."""
        value = self.conn.hget(f"itest:{self.ns}:peak", str(phase))
        return int(value) if value is not None else 0

    def set_phase(self, phase: int | str) -> None:
        """Start measuring the peak of a new phase (children entering from now on)."""
        self.conn.set(f"itest:{self.ns}:phase", str(phase))

    def calls(self) -> dict[int, int]:
        """How many times the handler ran each item index."""
        raw = self.conn.hgetall(f"itest:{self.ns}:calls")
        return {int(k): int(v) for k, v in raw.items()}

    def close(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL) and close the backends."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                os.killpg(worker.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(worker.proc.pid, signal.SIGKILL)  # pool children left behind, if any
            except ProcessLookupError:
                pass
            if worker.proc.poll() is None:
                worker.proc.wait(timeout=10)
        for backend in self.backends:
            if isinstance(backend, CeleryBackend) and backend._app is not None:
                backend._app.close()
            backend.close()


class Background:
    """``dmap.run(...)`` on a thread of this process, so the test can act while the run goes on."""

    def __init__(self, run: Callable[[], dmap.Execution]) -> None:
        self._run = run
        self._box: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._target, name="itest-run", daemon=True)
        self._thread.start()

    def _target(self) -> None:
        try:
            self._box["execution"] = self._run()
        except BaseException as exc:  # re-raised in the test thread by result()
            self._box["error"] = exc

    def result(self, timeout: float = 120.0) -> dmap.Execution:
        """The finished execution; fails the test if the run is still going after ``timeout`` seconds."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            pytest.fail(f"the run did not finish within {timeout:g}s")
        if "error" in self._box:
            raise self._box["error"]
        execution: dmap.Execution = self._box["execution"]
        return execution


@pytest.fixture
def cluster(itest_redis: redis.Redis, tmp_path: Path) -> Iterator[Cluster]:
    """A :class:`Cluster` for this test; every worker it started is killed afterwards."""
    tag = uuid.uuid4().hex[:10]
    made = Cluster(conn=itest_redis, queue=f"itest-{tag}", ns=tag, logs=tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=["local", "celery"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The same behaviour test on the embedded backend and on celery workers."""
    return str(request.param)


def engine_for(cluster: Cluster, kind: str, *, workers: int = 3, concurrency: int = 3) -> Backend:
    """A backend of ``kind`` on ``cluster``; for celery, ``workers`` processes are started first."""
    if kind == "local":
        return cluster.local()
    cluster.start_workers(workers, concurrency=concurrency)
    return cluster.celery()

"""Fixtures of the fault-injection suite: Redis DB 10, real workers, a private redis-server, numbers.

Everything here reuses the integration suite's :class:`~tests.integration.conftest.Cluster`
(``dmap worker`` subprocesses in their own process groups, killed at teardown) on the suite's own
database, ``redis://127.0.0.1:6379/10`` (flushed before and after each test), with a Celery queue
unique to the test. The run store and broker can be moved to a private ``redis-server`` (the
Redis-restart scenario restarts that one, never the machine's). At the end of the session the
numbers every scenario recorded (:mod:`tests.faults.audit`) are printed as one table.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.conftest import ROOT, Cluster, Worker
from tests.integration.handlers import ready_key

from . import audit
from .handlers import REDIS_URL, key

IN_CI = bool(os.environ.get("CI"))
HANDLER_MODULES = "tests.integration.handlers,tests.faults.handlers"
"""Workers import both: the integration module marks them ready, this suite's registers ``FaultWork``."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the numbers of every scenario that ran (items, kills, lost, double-counted, recovery)."""
    lines = audit.table()
    if lines:
        terminalreporter.section("fault injection")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def faults_redis() -> Iterator[redis.Redis]:
    """A client of the suite's database, empty before and after the test."""
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
class FaultCluster(Cluster):
    """A :class:`Cluster` on the suite's database whose run store may live on another Redis.

    Attributes:
        store_url: ``DMAP_REDIS_URL`` / ``DMAP_BROKER_URL`` of workers and coordinators; the handler
            counters and ready markers always stay in :data:`tests.faults.handlers.REDIS_URL`.
    """

    store_url: str = REDIS_URL
    broker_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker or coordinator subprocess of this test."""
        env = super().env()
        env.update(
            ITEST_REDIS_URL=REDIS_URL,
            FAULTS_REDIS_URL=REDIS_URL,
            DMAP_REDIS_URL=self.store_url,
            DMAP_BROKER_URL=self.broker_url or self.store_url,
            DMAP_IMPORTS=HANDLER_MODULES,
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Any:
        """Settings of an in-test coordinator on this cluster."""
        values: dict[str, Any] = {"redis_url": self.store_url, "broker_url": self.broker_url or self.store_url}
        values.update(overrides)
        return super().settings(**values)

    def start_celery_workers(self, count: int, *args: str, concurrency: int = 1) -> list[Worker]:
        """Start ``celery -A workers.app worker`` processes with extra ``args`` (flags ``dmap worker`` lacks)."""
        before = self.conn.scard(ready_key(self.queue))
        started = []
        for _ in range(count):
            log = self.logs / f"worker-{len(self.workers)}.log"
            command = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", self.queue]
            command += ["-P", "prefork", "-c", str(concurrency), "--loglevel=WARNING", "--without-gossip"]
            command += ["--without-mingle", *args]
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    command, cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            worker = Worker(proc, log)
            self.workers.append(worker)
            started.append(worker)
        self.wait_for(lambda: self.conn.scard(ready_key(self.queue)) >= before + count, "celery workers to start", 90)
        return started

    def queued(self) -> int:
        """Messages ready in this test's queue (not those a worker fetched and has not acknowledged)."""
        if self.broker_url is None:
            return int(self.conn.llen(self.queue))
        from kombu import Connection

        with Connection(self.broker_url) as connection:
            channel = connection.default_channel
            try:
                return int(channel.queue_declare(self.queue, passive=True).message_count)
            except Exception:  # not declared yet: nothing queued
                return 0

    def fcalls(self) -> dict[int, int]:
        """How many times ``FaultWork`` ran each item index."""
        raw = self.conn.hgetall(key(self.ns, "calls"))
        return {int(k): int(v) for k, v in raw.items()}

    def ran_by(self, pid: int) -> list[tuple[int, float]]:
        """``(item index, start time)`` of every item process ``pid`` started, in order."""
        raw = self.conn.lrange(key(self.ns, f"ran:{pid}"), 0, -1)
        entries = ((v.decode() if isinstance(v, bytes) else str(v)).split("@") for v in raw)
        return [(int(index), float(at)) for index, at in entries]

    def runners(self) -> list[int]:
        """The process ids that ran ``FaultWork`` in this test."""
        prefix = key(self.ns, "ran:")
        names = (k.decode() if isinstance(k, bytes) else str(k) for k in self.conn.scan_iter(match=prefix + "*"))
        return [int(name[len(prefix) :]) for name in names]


@pytest.fixture
def fault_cluster(faults_redis: redis.Redis, tmp_path: Path) -> Iterator[FaultCluster]:
    """A :class:`FaultCluster` with 2 s run leases; every worker it started is killed afterwards."""
    tag = uuid.uuid4().hex[:10]
    made = FaultCluster(conn=faults_redis, queue=f"faults-{tag}", ns=tag, logs=tmp_path, lease_seconds=2.0)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest, fault_cluster: FaultCluster) -> Iterator[str]:
    """Each broker in turn for ``fault_cluster``: its Redis, then RabbitMQ (``amqp_url``, a quorum queue).

    The run store stays Redis either way; the RabbitMQ queue of the test is deleted afterwards.
    """
    if request.param == "redis":
        yield "redis"
        return
    url = request.getfixturevalue("amqp_url")
    fault_cluster.broker_url = url
    try:
        yield "amqp"
    finally:
        fault_cluster.close()  # the workers first: a consumer would declare the queue again
        from kombu import Connection

        with Connection(url) as connection:
            try:
                connection.default_channel.queue_delete(fault_cluster.queue)
            except Exception:  # never declared
                pass


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of this test alone, with AOF (``appendfsync`` as given), restartable in place."""

    def __init__(self, folder: Path, fsync: str = "everysec") -> None:
        self.folder, self.port, self.fsync = folder, free_port(), fsync
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    def start(self) -> None:
        """Start the server on the same port and folder (it loads its AOF) and wait until it answers."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        command += ["--appendonly", "yes", "--appendfsync", self.fsync, "--save", "", "--daemonize", "no"]
        command += ["--maxmemory-policy", "noeviction", "--logfile", str(self.folder / "redis.log")]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client.ping():
                    return
            except redis.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start (see {self.folder}/redis.log)")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server: whatever the AOF had not fsynced yet is lost (up to a second with ``everysec``)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.client.connection_pool.disconnect()

    def stop(self) -> None:
        """Stop the server for good (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.client.close()


def _private_redis(tmp_path: Path, fsync: str) -> Iterator[PrivateRedis]:
    if not any((Path(p) / "redis-server").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        if IN_CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder, fsync)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running :class:`PrivateRedis` (``appendfsync everysec``) in a folder of this test; stopped afterwards."""
    yield from _private_redis(tmp_path, "everysec")


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running :class:`PrivateRedis` with ``appendfsync always`` (every acknowledged write survives a SIGKILL)."""
    yield from _private_redis(tmp_path, "always")

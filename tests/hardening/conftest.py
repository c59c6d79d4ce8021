"""Fixtures of the hardening suite: a DMAP_S3_ROOT folder, the CLI as a subprocess, Redis DB 11, private redis-servers.

Celery tests reuse the integration suite's :class:`~tests.integration.conftest.Cluster` (real
``dmap worker`` subprocesses, ready-checked through Redis) on this suite's own Redis URL — DB 11 of
the shared server, or a redis-server a test starts itself (with a password, or TLS) — and a queue
unique to the test. Servers a test starts are ended by their pid at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from dmap.backends.local import LocalBackend
from dmap.config import Settings, get_settings
from tests.integration.conftest import Cluster

from . import handlers as _handlers  # noqa: F401 - registers the Hardening* handlers in this process

ROOT = Path(__file__).resolve().parents[2]
BAD_INPUTS = Path(__file__).parent / "bad_inputs"
IN_CI = bool(os.environ.get("CI"))
HARD_REDIS_URL = os.environ.get("HARDENING_REDIS_URL", "redis://127.0.0.1:6379/11")
"""This suite's database on the shared redis-server (run store, broker and ready marks)."""
IMPORTS = "tests.integration.handlers,tests.hardening.handlers"
BUCKET = "b"
CLI_TIMEOUT = 60.0
"""Seconds a ``dmap`` subprocess may take: each one here needs about one; more means it hung."""
HUNG = -999
"""The exit code :func:`run_cli` reports for a command it had to kill."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests here that start workers, redis-servers or moto are ``integration`` tests."""
    here = Path(__file__).parent
    services = {"hard_redis", "hard_cluster", "server_factory", "moto_server"}
    for item in items:
        if here in Path(str(item.fspath)).parents and services & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def missing(what: str) -> None:
    """Skip on a developer machine, fail under CI, when a service or tool is not there."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI")
    pytest.skip(what)


# -- storage -------------------------------------------------------------------------------------


@pytest.fixture
def s3root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``DMAP_S3_ROOT`` for this test: a folder with one empty bucket ``b`` (``root/b``)."""
    root = tmp_path / "s3root"
    (root / BUCKET).mkdir(parents=True)
    monkeypatch.setenv("DMAP_S3_ROOT", str(root))
    return root


@pytest.fixture
def local_backend() -> Iterator[Callable[..., LocalBackend]]:
    """Private local backends built from explicit Settings (never the process-wide shared one)."""
    made: list[LocalBackend] = []

    def build(**settings: Any) -> LocalBackend:
        backend = LocalBackend(Settings(**settings))
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.close()


@pytest.fixture
def integrations(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set ``DMAP_INTEGRATIONS`` for this test (the settings cache is cleared before and after)."""

    def set_value(value: str) -> None:
        monkeypatch.setenv("DMAP_INTEGRATIONS", value)
        get_settings.cache_clear()

    monkeypatch.delenv("DMAP_INTEGRATIONS", raising=False)
    get_settings.cache_clear()
    yield set_value
    monkeypatch.delenv("DMAP_INTEGRATIONS", raising=False)
    get_settings.cache_clear()


# -- the CLI -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cli:
    """What one ``dmap`` subprocess did."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """stdout and stderr together."""
        return self.stdout + "\n" + self.stderr


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``dmap`` subprocess: this process's, with the repository on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("DMAP_BACKEND", None)
    env.update(extra)
    return env


def run_cli(args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT) -> Cli:
    """Run ``python -m dmap ARGS`` in the repository; never raises for a non-zero exit.

    A command still running after ``timeout`` seconds is killed and reported with code :data:`HUNG`.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dmap", *args],
            cwd=ROOT,
            env=env or cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run killed it
        return Cli(tuple(args), HUNG, _text(exc.stdout), _text(exc.stderr))
    return Cli(tuple(args), done.returncode, done.stdout, done.stderr)


def _text(data: str | bytes | None) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data or ""


def run_many(
    commands: Sequence[Sequence[str]], *, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
) -> list[Cli]:
    """Several ``dmap`` subprocesses at once (a few at a time), in the order given."""
    with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
        return list(pool.map(lambda args: run_cli(args, env=env, timeout=timeout), commands))


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def hard_redis() -> Iterator[redis.Redis]:
    """A client of DB 11, empty before and after the test."""
    conn = redis.Redis.from_url(HARD_REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as exc:
        conn.close()
        missing(f"no redis-server at {HARD_REDIS_URL}: {exc}")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@dataclass
class HardCluster(Cluster):
    """The integration :class:`Cluster` on this suite's Redis URL, with the hardening handlers imported.

    Attributes:
        url: The Redis URL of run store, broker and ready marks (``DMAP_REDIS_URL`` of workers).
        extra_env: More environment for worker subprocesses.
    """

    url: str = HARD_REDIS_URL
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        """A worker's environment: the cluster's, on :attr:`url`, with both handler modules."""
        env = super().env()
        env.update(ITEST_REDIS_URL=self.url, DMAP_REDIS_URL=self.url, DMAP_BROKER_URL=self.url, DMAP_IMPORTS=IMPORTS)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Settings:
        """Settings of an in-test coordinator on :attr:`url`."""
        return super().settings(**{"redis_url": self.url, "broker_url": self.url, **overrides})

    def log_text(self) -> str:
        """Every worker's whole log."""
        return "\n".join(w.log.read_text("utf-8", errors="replace") for w in self.workers if w.log.exists())


def make_cluster(conn: redis.Redis, url: str, logs: Path, **extra_env: str) -> HardCluster:
    """A :class:`HardCluster` on ``url`` with a fresh queue; close it when done."""
    tag = uuid.uuid4().hex[:10]
    return HardCluster(conn=conn, queue=f"hard-{tag}", ns=tag, logs=logs, url=url, extra_env=dict(extra_env))


@pytest.fixture
def hard_cluster(hard_redis: redis.Redis, tmp_path: Path) -> Iterator[HardCluster]:
    """A :class:`HardCluster` on DB 11; every worker it started is stopped afterwards."""
    cluster = make_cluster(hard_redis, HARD_REDIS_URL, tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


def watch_worker(env: dict[str, str], log: Path, until: Sequence[str], timeout: float = 60) -> str:
    """Start a ``dmap worker`` (its own process group), wait until its log holds one of ``until``, stop it.

    Returns:
        The worker's whole log (it may end without any of ``until`` if the worker exited or time ran out).
    """
    command = [sys.executable, "-m", "dmap", "worker", "--concurrency", "1", "--loglevel", "INFO"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not any(text in log.read_text("utf-8", "replace") for text in until):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # pool children left behind, if any
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(timeout=10)
    return log.read_text("utf-8", "replace")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A redis-server this test started (no persistence), stopped by its pid at teardown."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers: ``start(*args, tls=False, client=...)`` waits until ``client`` answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed")
    started: list[RedisServer] = []

    def start(*args: str, tls: bool = False, ping: Callable[[int], redis.Redis]) -> RedisServer:
        port = free_port()
        ports = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
        log = tmp_path / f"redis-{port}.log"
        command = [str(binary), *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(tmp_path), "--logfile", str(log), *args]
        server = RedisServer(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT), port, log)
        started.append(server)
        client = ping(port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.proc.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text("utf-8", errors="replace") if log.exists() else ""
                    pytest.fail(f"redis-server {' '.join(command)} did not start:\n{text[-2000:]}")
                time.sleep(0.05)
            finally:
                client.close()
        return server

    yield start
    for server in started:
        server.stop()


def dump_redis(conn: redis.Redis) -> str:
    """Every key and value of the client's database as text (strings, hashes, lists, sets, zsets, streams)."""
    parts: list[str] = []
    for key in conn.scan_iter(count=1000):
        raw = conn.type(key)
        kind = raw.decode() if isinstance(raw, bytes) else str(raw)
        value: Any
        if kind == "string":
            value = conn.get(key)
        elif kind == "hash":
            value = conn.hgetall(key)
        elif kind == "list":
            value = conn.lrange(key, 0, -1)
        elif kind == "set":
            value = conn.smembers(key)
        elif kind == "zset":
            value = conn.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = conn.xrange(key)
        else:
            value = kind
        parts.append(f"{key!r} {kind} {value!r}")
    return "\n".join(parts)

"""The real services the suite needs, started by the suite itself: a ``redis-server`` per loopback URL.

``pytest`` on a fresh machine (the README's test command) must run the real-Redis tests, not skip
them. So, before collection, every Redis URL the fixtures use (``DMAP_TEST_REDIS_URL``,
``ITEST_REDIS_URL``, ``CTL_REDIS_URL``, ``HARDENING_REDIS_URL``, ``FAULTS_REDIS_URL``,
``BENCH_REDIS_URL``; default 127.0.0.1:6379) is checked; for a loopback host:port where nothing
answers, a throw-away ``redis-server`` (no persistence) is started there and stopped when the
session ends. A server already running is used as is; remote hosts are never touched. Without the
``redis-server`` binary the session fails at once with the command that installs it;
``DMAP_TEST_SERVICES=0`` opts out (the real-Redis tests then skip, as they did before).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: The variables the suite's fixtures read a Redis URL from, with their defaults.
REDIS_URL_VARIABLES = {
    "DMAP_TEST_REDIS_URL": "redis://127.0.0.1:6379/15",
    "ITEST_REDIS_URL": "redis://127.0.0.1:6379/13",
    "CTL_REDIS_URL": "redis://127.0.0.1:6379/12",
    "HARDENING_REDIS_URL": "redis://127.0.0.1:6379/11",
    "FAULTS_REDIS_URL": "redis://127.0.0.1:6379/10",
    "BENCH_REDIS_URL": "redis://127.0.0.1:6379/8",
}
INSTALL = "sudo apt-get install redis-server (Debian/Ubuntu; brew install redis on macOS)"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ServiceError(Exception):
    """Raised when a service the tests need is missing and cannot be started."""


@dataclass
class Started:
    """A redis-server this session started (and must stop)."""

    port: int
    process: subprocess.Popen[bytes]
    folder: str


def wanted_redis() -> dict[tuple[str, int], str | None]:
    """The loopback ``(host, port)`` pairs the suite's Redis URLs name, each with its password (if any)."""
    wanted: dict[tuple[str, int], str | None] = {}
    for variable, default in REDIS_URL_VARIABLES.items():
        parts = urlsplit(os.environ.get(variable) or default)
        host = parts.hostname or "127.0.0.1"
        if parts.scheme != "redis" or host not in _LOOPBACK:
            continue  # TLS or another machine: whoever named it runs it
        wanted[(host, parts.port or 6379)] = unquote(parts.password) if parts.password else None
    return wanted


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_redis(host: str, port: int, password: str | None = None, timeout: float = 10.0) -> Started:
    """Start a throw-away ``redis-server`` on ``host:port`` (no RDB, no AOF) and wait until it answers.

    Raises:
        ServiceError: The binary is missing, or the server did not come up in ``timeout`` seconds.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError(
            f"the tests need a redis-server on {host}:{port} and none answers there; install one: {INSTALL} "
            "(or point DMAP_TEST_REDIS_URL and friends at a running server; DMAP_TEST_SERVICES=0 skips those tests)"
        )
    folder = tempfile.mkdtemp(prefix="dmap-test-redis-")
    bind = "127.0.0.1" if host == "localhost" else host
    argv = [binary, "--port", str(port), "--bind", bind, "--save", "", "--appendonly", "no", "--dir", folder]
    if password:
        argv += ["--requirepass", password]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _await_port(process, "redis-server", host, port, timeout, poll=0.05)
    return Started(port, process, folder)


def _await_port(
    process: subprocess.Popen[bytes], name: str, host: str, port: int, timeout: float, *, poll: float
) -> None:
    """Wait until the server ``process`` just started answers on host:port.

    Raises:
        ServiceError: It exited or did not answer within ``timeout`` seconds (killed; its stderr tail says why).
    """
    deadline = time.monotonic() + timeout
    while not answers(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            error = process.communicate()[1].decode("utf-8", errors="replace")[-500:]
            raise ServiceError(f"{name} did not start on {host}:{port}: {error.strip() or 'no output'}")
        time.sleep(poll)


def _terminate(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """Stop a server this session started: SIGTERM, SIGKILL after ``grace`` seconds; close its stderr pipe."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


def stop(started: Started) -> None:
    """Stop a server :func:`start_redis` started and remove its folder."""
    _terminate(started.process, grace=10)
    shutil.rmtree(started.folder, ignore_errors=True)


def ensure_redis() -> list[Started]:
    """Start a redis-server for every wanted loopback URL where nothing answers; return what was started.

    Raises:
        ServiceError: One is needed and cannot be started (the message says how to install it).
    """
    if os.environ.get("DMAP_TEST_SERVICES", "1") == "0":
        return []
    started: list[Started] = []
    try:
        for (host, port), password in wanted_redis().items():
            if not answers(host, port):
                started.append(start_redis(host, port, password))
    except ServiceError:
        for server in started:
            stop(server)
        raise
    return started


#: The RabbitMQ the broker tests use (guest/guest on loopback unless DMAP_TEST_AMQP_URL says otherwise).
AMQP_URL = os.environ.get("DMAP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
INSTALL_RABBITMQ = "sudo apt-get install rabbitmq-server (Debian/Ubuntu; brew install rabbitmq on macOS)"


@dataclass
class StartedBroker:
    """A rabbitmq-server this session started (and must stop)."""

    process: subprocess.Popen[bytes]


def ensure_rabbitmq(timeout: float = 90.0) -> StartedBroker | None:
    """Start ``rabbitmq-server`` when nothing answers at :data:`AMQP_URL`'s loopback port; None if one runs.

    RabbitMQ takes seconds to boot, so only the tests that use it ask for it (a session fixture), not
    every session. Remote hosts are never touched.

    Raises:
        ServiceError: It is needed, not running and cannot be started (the message says how to install it).
    """
    parts = urlsplit(AMQP_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if answers(host, port) or host not in _LOOPBACK or os.environ.get("DMAP_TEST_SERVICES", "1") == "0":
        return None
    binary = shutil.which("rabbitmq-server", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if binary is None:
        raise ServiceError(f"the broker tests need RabbitMQ on {host}:{port}, none answers; {INSTALL_RABBITMQ}")
    process = subprocess.Popen([binary], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _await_port(process, "rabbitmq-server", host, port, timeout, poll=0.2)
    return StartedBroker(process)


def stop_rabbitmq(started: StartedBroker) -> None:
    """Stop a broker :func:`ensure_rabbitmq` started."""
    _terminate(started.process, grace=30)

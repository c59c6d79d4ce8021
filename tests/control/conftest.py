"""Fixtures of the control-plane tests: real ``dmap worker`` processes and ``dmap`` CLI subprocesses.

Everything runs against redis-server DB 12 (``CTL_REDIS_URL``). That database may be shared (the
benchmarks use it too), so nothing here flushes it: each test gets its own Celery queue, its own
counter namespace and execution names that start with that namespace, and removes exactly the keys
it made at teardown. Workers run in their own process groups and are killed at teardown (SIGTERM,
then SIGKILL). Without Redis the tests skip locally and fail under CI (``CI`` set).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from dmap.backends.celery import CeleryBackend
from dmap.config import Settings

from .handlers import REDIS_URL, key, ready_key

ROOT = Path(__file__).resolve().parents[2]
IN_CI = bool(os.environ.get("CI"))
READY_TIMEOUT = 90.0
CLI_TIMEOUT = 120.0
WORK = {"Type": "Task", "Resource": "CtlWork", "End": True}
"""The one state of every child: the handler of :mod:`tests.control.handlers`."""


def work_map(
    *,
    max_concurrency: int = 0,
    reader: dict[str, Any] | None = None,
    writer: dict[str, Any] | None = None,
    tolerated_count: int | None = None,
    tolerated_percentage: float | None = None,
) -> dict[str, Any]:
    """A state machine whose DISTRIBUTED Map runs ``CtlWork`` once per item.

    Items come from ``$.items`` of the input, or from ``reader`` (an ItemReader). The
    ItemSelector adds the Map input's ``ns``, ``sleep_ms`` and ``hold`` to each item.
    """
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemSelector": {
            "i.$": "$$.Map.Item.Value.i",
            "fail.$": "$$.Map.Item.Value.fail",
            "hold.$": "$.hold",
            "gate.$": "$$.Map.Item.Value.gate",
            "ns.$": "$.ns",
            "sleep_ms.$": "$.sleep_ms",
        },
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": WORK},
        },
        "End": True,
    }
    if reader is None:
        state["ItemsPath"] = "$.items"
    else:
        state["ItemReader"] = reader
    if writer is not None:
        state["ResultWriter"] = writer
    if tolerated_count is not None:
        state["ToleratedFailureCount"] = tolerated_count
    if tolerated_percentage is not None:
        state["ToleratedFailurePercentage"] = tolerated_percentage
    return {"StartAt": "Fan", "States": {"Fan": state}}


def work_items(count: int, *, failing: Collection[int] = (), gated: Collection[int] = ()) -> list[dict[str, Any]]:
    """``count`` items ``{"i", "fail", "gate"}``: ``failing`` fail until fixed, ``gated`` wait for a release."""
    failing, gated = set(failing), set(gated)
    return [{"i": i, "fail": i in failing, "gate": i in gated} for i in range(count)]


def work_input(
    ns: str, count: int = 0, *, failing: Collection[int] = (), sleep_ms: float = 0, hold: int = 0
) -> dict[str, Any]:
    """The execution input: ``count`` items (none for an ItemReader) and the fields every child gets.

    ``hold`` = N makes the first N handler calls to start block until :meth:`Ctl.release`.
    """
    data: dict[str, Any] = {"ns": ns, "sleep_ms": sleep_ms, "hold": hold}
    if count:
        data["items"] = work_items(count, failing=failing)
    return data


def flat(text: str) -> str:
    """``text`` without any whitespace (rich wraps long lines and ARNs at the terminal width)."""
    return "".join(text.split())


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
        """SIGKILL the whole process group at once: the machine dies, nothing shuts down cleanly."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def text(self) -> str:
        """The worker's log so far."""
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        """The end of the worker's log (for failure messages)."""
        return "\n".join(self.text().splitlines()[-lines:])


@dataclass
class Ctl:
    """Workers, CLI and environment of one test, on one queue of the control-test database.

    Attributes:
        conn: A client of the test database.
        ns: This test's namespace: counter keys ``ctl:<ns>:*`` and the prefix of its execution names.
        queue: Its Celery queue.
        tmp: A folder for logs, definitions and the ``DMAP_S3_ROOT``.
        extra_env: More ``DMAP_*`` settings for every worker and CLI subprocess.
    """

    conn: redis.Redis
    ns: str
    queue: str
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    _backend: CeleryBackend | None = None

    @property
    def s3_root(self) -> Path:
        """The folder that stands in for S3 (``DMAP_S3_ROOT``): a bucket is a sub-folder."""
        return self.tmp / "s3"

    def env(self, queue: str | None = None) -> dict[str, str]:
        """The environment of a worker or CLI subprocess of this test (on ``queue``, default this test's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DMAP_")}
        path = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        env.update(
            PYTHONPATH=os.pathsep.join(path),
            CTL_REDIS_URL=REDIS_URL,
            DMAP_BACKEND="celery",
            DMAP_REDIS_URL=REDIS_URL,
            DMAP_BROKER_URL=REDIS_URL,
            DMAP_QUEUE=queue or self.queue,
            DMAP_IMPORTS="tests.control.handlers",
            DMAP_S3_ROOT=str(self.s3_root),
            COLUMNS="250",
        )
        env.update(self.extra_env)
        return env

    def backend(self) -> CeleryBackend:
        """A celery backend of this test's queue, for the Python control API in the test process."""
        if self._backend is None:
            self._backend = CeleryBackend(Settings(redis_url=REDIS_URL, broker_url=REDIS_URL, queue=self.queue))
        return self._backend

    def name(self, label: str) -> str:
        """An execution name of this test."""
        return f"{self.ns}-{label}"

    def start_workers(
        self, count: int, *, concurrency: int = 2, loglevel: str = "WARNING", queue: str | None = None
    ) -> list[Worker]:
        """Start ``count`` ``dmap worker`` processes and wait for them (``queue`` must start with this test's)."""
        queue = queue or self.queue
        before = self.conn.scard(ready_key(queue))
        started = []
        for number in range(len(self.workers), len(self.workers) + count):
            log = self.tmp / f"worker-{number}.log"
            command = [sys.executable, "-m", "dmap", "worker", "--concurrency", str(concurrency)]
            command += ["--pool", "prefork", "--loglevel", loglevel]
            with log.open("ab") as out:  # O_APPEND: the pool processes write to the same file
                proc = subprocess.Popen(
                    command, cwd=ROOT, env=self.env(queue), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            started.append(Worker(proc, log))
        self.workers.extend(started)
        self.wait_for(
            lambda: self.conn.scard(ready_key(queue)) >= before + count or _dead(started),
            "the workers to be ready",
            READY_TIMEOUT,
        )
        dead = _dead(started)
        if dead:
            pytest.fail("worker(s) exited while starting:\n" + "\n---\n".join(w.tail() for w in dead))
        return started

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run ``python -m dmap ARGS`` to completion in this test's environment."""
        return subprocess.run(
            [sys.executable, "-m", "dmap", *args],
            cwd=self.tmp,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``python -m dmap ARGS`` (stdout and stderr piped) and return at once."""
        return subprocess.Popen(
            [sys.executable, "-m", "dmap", *args],
            cwd=self.tmp,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def json(self, *args: str) -> Any:
        """Run a CLI verb that prints JSON; fail the test unless it exits 0 and stdout is JSON only."""
        done = self.cli(*args)
        assert done.returncode == 0, (args, done.returncode, done.stderr)
        return json.loads(done.stdout)

    def write_json(self, name: str, value: Any) -> Path:
        """Write ``value`` as ``<tmp>/<name>`` and return the path."""
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), "utf-8")
        return path

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
        """Poll ``condition`` until it holds; fail the test naming ``what`` (never a timing assertion)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n---\n".join(w.tail(15) for w in self.workers)
                pytest.fail(f"gave up after {timeout:g}s waiting for {what}\nworker logs:\n{logs}")
            time.sleep(0.05)

    def held(self) -> set[int]:
        """The items whose handler call is blocked (or was, until released)."""
        return {int(i) for i in self.conn.smembers(key(self.ns, "held"))}

    def counts(self, name: str) -> dict[int, int]:
        """A per-item counter of the handler (``calls`` or ``ok``): item index -> count."""
        raw = self.conn.hgetall(key(self.ns, name))
        return {int(k): int(v) for k, v in raw.items()}

    def release(self) -> None:
        """Let the held items finish."""
        self.conn.set(key(self.ns, "release"), "1")

    def fix(self) -> None:
        """Make the handler succeed for the items marked to fail."""
        self.conn.set(key(self.ns, "fixed"), "1")

    def close(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL) and remove every key this test made."""
        self.release()  # a held handler would keep its worker's warm shutdown waiting
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
        if self._backend is not None:
            if self._backend._app is not None:
                self._backend._app.close()
            self._backend.close()
        _forget(self.conn, self.ns, self.queue)


def _dead(workers: list[Worker]) -> list[Worker]:
    return [w for w in workers if w.proc.poll() is not None]


def _forget(conn: redis.Redis, ns: str, queue: str) -> None:
    """Delete this test's executions, Map Runs, run state, plans, counters and queue from the shared database."""
    prefix = "dmap:j:"
    doomed: list[str] = []
    for raw in conn.zrange(f"{prefix}xs", 0, -1):
        arn = raw.decode()
        if f":{ns}-" not in arn:
            continue
        conn.zrem(f"{prefix}xs", arn)
        conn.zrem(f"{prefix}detached", arn)
        conn.hdel(f"{prefix}detached-spec", arn)
        text = conn.get(f"{prefix}x:{arn}")
        for map_run in json.loads(text).get("map_runs", []) if text else []:
            doomed.append(f"{prefix}m:{map_run}")
            run_id = map_run.rsplit(":", 1)[-1]
            doomed.extend(k.decode() for k in conn.scan_iter(match=f"dmap:{{{run_id}}}:*", count=1000))
        doomed += [f"{prefix}x:{arn}", f"{prefix}d:{arn}", f"{prefix}stop:{arn}", f"{prefix}source:{arn}"]
    for pattern in (f"ctl:{ns}*", f"{queue}*", f"{ready_key(queue)}*", f"_kombu.binding*.{queue}*"):
        doomed.extend(k.decode() for k in conn.scan_iter(match=pattern, count=1000))
    for start in range(0, len(doomed), 500):
        conn.delete(*doomed[start : start + 500])


@pytest.fixture
def ctl_redis() -> Iterator[redis.Redis]:
    """A client of the control-test database (never flushed: it may be shared)."""
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except redis.ConnectionError as exc:
        if IN_CI:
            raise
        pytest.skip(f"no redis-server at {REDIS_URL}: {exc}")
    yield conn
    conn.close()


@pytest.fixture
def ctl(ctl_redis: redis.Redis, tmp_path: Path) -> Iterator[Ctl]:
    """A :class:`Ctl` for this test; its workers are killed and its keys removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    made = Ctl(conn=ctl_redis, ns=f"ctl{tag}", queue=f"ctl-{tag}", tmp=tmp_path)
    made.s3_root.mkdir()
    try:
        yield made
    finally:
        made.close()

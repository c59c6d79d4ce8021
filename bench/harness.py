"""Worker processes for the benchmarks: start ``dmap worker``-equivalent subprocesses on a private queue, stop them.

Optionally each worker runs under cProfile (``--pool solo`` so the tasks run in the profiled
process) and writes ``worker-<n>.prof`` when it shuts down. The broker is the benchmark's Redis
unless ``broker_url`` names another (RabbitMQ: :data:`BENCH_AMQP_URL`); the run store is always that
Redis. Owns no measurement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
from kombu import Connection

from .tasks import BENCH_REDIS_URL, ready_key

ROOT = Path(__file__).resolve().parents[1]

BENCH_AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
"""The RabbitMQ of ``--brokers amqp``; shared with others, so each run declares its own queue and deletes it."""
BROKER_URLS = {"redis": BENCH_REDIS_URL, "amqp": BENCH_AMQP_URL}
"""The broker URL of each ``--brokers`` name."""


@dataclass
class Workers:
    """``count`` worker processes of ``concurrency`` each, all listening on :attr:`queue`."""

    count: int
    concurrency: int
    profile_dir: Path | None = None
    disable_prefetch: bool = False
    broker_url: str = BENCH_REDIS_URL
    queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment of the workers and of anything talking to them."""
        env = dict(os.environ)
        env.update(
            PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
            BENCH_REDIS_URL=BENCH_REDIS_URL,
            DMAP_REDIS_URL=BENCH_REDIS_URL,
            DMAP_BROKER_URL=self.broker_url,
            DMAP_QUEUE=self.queue,
            DMAP_IMPORTS="bench.tasks",
        )
        return env

    def start(self, conn: redis.Redis, timeout: float = 90.0) -> None:
        """Start the workers and wait until each one reported ready."""
        for n in range(self.count):
            command = [sys.executable]
            pool, concurrency = "prefork", self.concurrency
            if self.profile_dir is not None:
                command += ["-m", "cProfile", "-o", str(self.profile_dir / f"worker-{n}.prof")]
                pool, concurrency = "solo", 1
            if self.disable_prefetch:  # the proposed setting; otherwise exactly ``dmap worker``
                command += ["-m", "bench.worker", pool, str(concurrency), "--disable-prefetch"]
            else:
                command += ["-m", "dmap", "worker", "--pool", pool, "--concurrency", str(concurrency)]
                command += ["--loglevel", "WARNING"]
            with self.log(n).open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        deadline = time.monotonic() + timeout
        while conn.scard(ready_key(self.queue)) < self.count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                tail = self.log(0).read_text("utf-8", errors="replace")[-3000:]
                raise RuntimeError(f"benchmark workers did not start; worker-0 log ends:\n{tail}")
            time.sleep(0.05)

    def log(self, n: int) -> Path:
        """Where worker ``n`` writes its output."""
        folder = self.profile_dir or Path(tempfile.gettempdir())
        return folder / f"{self.queue}-worker-{n}.log"

    def stop(self) -> None:
        """SIGTERM every worker (a warm shutdown writes the profiles), then SIGKILL what is left."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()

    def delete_queue(self) -> None:
        """Delete the workers' queue on a broker other than the benchmark's Redis (flushed anyway); after :meth:`stop`.

        A RabbitMQ quorum queue outlives its consumers, and the server is shared: a queue left behind
        is litter on someone else's broker.
        """
        if self.broker_url == BENCH_REDIS_URL:
            return
        with Connection(self.broker_url) as connection:
            connection.default_channel.queue_delete(self.queue)

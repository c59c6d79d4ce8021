"""Network benchmark: ``python -m bench.network`` — dmap against raw Celery with Redis a round trip away.

For each ``--rtt`` (milliseconds, default 0, 0.5 and 2) every Redis connection of the system under
test goes through :mod:`bench.latency_proxy` with half the round trip added each way: one proxy
process for the coordinator side (``dmap.run`` and the raw Celery producer) and one for the worker
side (the ``dmap worker`` processes, which serve both dmap's children and the raw tasks). The same
workers run every case. Per case it prints items/s of raw Celery (``apply_async`` of the no-op of
:mod:`bench.tasks`, as phase ``a`` of :mod:`bench.engine`) and of dmap at each ``--max-concurrency``,
their ratio, and what each child cost on the wire, counted by the proxies: round trips (request
bursts a client waited on) and Redis commands, coordinator side + worker side.

Before that it checks what the proxy alone costs: ``redis-benchmark`` direct and through the proxy at
0 ms added, and (``--direct``, on by default) every case once more without proxies on workers of
their own, so the 0 ms rows can be read against loopback. The proxies run at a raised scheduling
priority where permitted (``--proxy-nice``): a network does not wait for the host's CPU, and on a
busy machine each extra hop would otherwise add scheduler latency to every round trip. The
harness's own polling (has the last raw task finished, when did the first child start) talks to
Redis directly and is not counted. It prints numbers and asserts nothing; Redis DB 8
(``BENCH_REDIS_URL``) is flushed before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

import dmap
from dmap.config import Settings

from .engine import TimedCelery, emit, run_dmap, run_raw
from .harness import ROOT, Workers
from .tasks import BENCH_REDIS_URL


class Proxy:
    """A :mod:`bench.latency_proxy` process in front of the benchmark's Redis, and its control connection."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream = urlsplit(upstream_url)
        upstream = f"{self.upstream.hostname or '127.0.0.1'}:{self.upstream.port or 6379}"
        command = [sys.executable, "-m", "bench.latency_proxy", "--upstream", upstream]
        # Its own process: in the bench process it would share the GIL with the coordinator it delays.
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdout is not None
        words = self.proc.stdout.readline().decode().split()
        if len(words) != 4:
            self.proc.kill()
            raise RuntimeError("the latency proxy did not start")
        self.port, control = int(words[1]), int(words[3])
        self.control = socket.create_connection(("127.0.0.1", control))
        self.replies = self.control.makefile("rb")

    def renice(self, nice: int) -> bool:
        """Run the proxy at scheduling priority ``nice`` (a network never waits for the host's CPU); False if denied."""
        try:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, nice)
        except (PermissionError, OSError):
            return False
        return True

    @property
    def url(self) -> str:
        """The upstream URL with this proxy's address in it (same database, same credentials)."""
        netloc = self.upstream.netloc.rpartition("@")
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(self.upstream._replace(netloc=f"{netloc[0]}@{host}" if netloc[1] else host))

    def ask(self, line: str) -> dict[str, Any]:
        """One control request (``stats``, ``reset``, ``delay <ms>``) and its JSON answer."""
        self.control.sendall(line.encode() + b"\n")
        answer: dict[str, Any] = json.loads(self.replies.readline())
        return answer

    def stop(self) -> None:
        """End the proxy process (it drops its connections)."""
        self.control.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class ProxiedWorkers(Workers):
    """:class:`~bench.harness.Workers` whose Redis (store, broker, the tasks' own client) is ``redis_url``."""

    redis_url: str = BENCH_REDIS_URL

    def env(self) -> dict[str, str]:
        """The harness's worker environment, pointed at the proxy."""
        env = super().env()
        env.update(BENCH_REDIS_URL=self.redis_url, DMAP_REDIS_URL=self.redis_url, DMAP_BROKER_URL=self.redis_url)
        return env


@dataclass
class Wire:
    """What one measured run cost on the wire, from both proxies' counters."""

    items: int
    coordinator: dict[str, Any]
    worker: dict[str, Any]

    @property
    def sides(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The coordinator-side and the worker-side counters."""
        return self.coordinator, self.worker

    def per_child(self, key: str) -> tuple[float, float]:
        """``key`` (round_trips or commands) per item: coordinator side, worker side."""
        return self.coordinator[key] / self.items, self.worker[key] / self.items


def measured(proxies: Sequence[Proxy], items: int, run: Any) -> tuple[dict[str, float], Wire]:
    """Reset the proxies' counters, run, and read them back."""
    for proxy in proxies:
        proxy.ask("reset")
    result = run()
    coordinator, worker = (proxy.ask("stats") for proxy in proxies)
    return result, Wire(items, coordinator, worker)


def ping_rtt(url: str, count: int = 200) -> tuple[float, float]:
    """Median and mean PING round trip through ``url``, in ms: what the proxy really adds, timer and scheduler slop too.

    The mean is what a client that waits out its round trips one after another pays; on a busy machine it is well above
    the median, because every hop through the proxy is one more process that has to be scheduled.
    """
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            client.ping()
            samples.append(time.perf_counter() - start)
        return 1000 * statistics.median(samples), 1000 * statistics.mean(samples)
    finally:
        client.close()


def redis_benchmark(port: int, clients: int, requests: int, pipeline: int = 1) -> float | None:
    """``redis-benchmark`` PING requests/s against 127.0.0.1:``port`` (None without the tool)."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return None
    command = [tool, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-n", str(requests)]
    command += ["-P", str(pipeline), "-t", "ping_mbulk", "-q", "--csv"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [line.split(",") for line in out.splitlines() if line.startswith('"PING')]
    return float(rows[0][1].strip('"')) if rows else None


def proxy_check(direct_port: int, proxy: Proxy, requests: int) -> None:
    """Print PING rates direct and through the proxy at 0 ms added: the proxy alone must not be the bound."""
    proxy.ask("delay 0")
    emit("proxy alone (0 ms added), redis-benchmark PING requests/s, direct vs through the proxy:")
    for clients, pipeline, label in ((1, 1, "1 client"), (20, 1, "20 clients"), (20, 16, "20 clients, pipeline 16")):
        n = requests * pipeline if pipeline > 1 else requests
        direct = redis_benchmark(direct_port, clients, n, pipeline)
        proxy.ask("reset")
        proxied = redis_benchmark(proxy.port, clients, n, pipeline)
        stats = proxy.ask("stats")
        if direct is None or proxied is None:
            emit("  redis-benchmark not found: skipped")
            return
        emit(
            f"  {label:<24} direct {direct:>9,.0f}/s   proxy {proxied:>9,.0f}/s   ({proxied / direct:>4.0%})   "
            f"proxy CPU {1e6 * stats['cpu_seconds'] / max(1, stats['round_trips']):.0f} us per round trip"
        )
    (direct_median, direct_mean), (proxy_median, proxy_mean) = ping_rtt(BENCH_REDIS_URL), ping_rtt(proxy.url)
    emit(
        f"  PING round trip, median/mean: direct {direct_median:.3f}/{direct_mean:.3f} ms, "
        f"proxy {proxy_median:.3f}/{proxy_mean:.3f} ms"
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.network", description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000, help="items per measured run")
    parser.add_argument("--rtt", default="0,0.5,2", help="round trips to Redis to add, ms, comma-separated")
    parser.add_argument("--max-concurrency", default="0,8,100", help="dmap MaxConcurrency values, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="dmap worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="prefork processes per worker")
    parser.add_argument("--check-requests", type=int, default=20000, help="PINGs per proxy-alone check (0: skip)")
    parser.add_argument(
        "--direct",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run every case without the proxies (own workers): what the proxy alone costs end to end",
    )
    parser.add_argument(
        "--proxy-nice", type=int, default=-10, help="scheduling priority of the proxies (negative needs privilege)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy check, the direct baseline and every round trip; print the table."""
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    rtts = [float(v) for v in args.rtt.split(",") if v.strip()]
    limits = [int(v) for v in args.max_concurrency.split(",") if v.strip()]
    conn = redis.Redis.from_url(BENCH_REDIS_URL)  # direct: the harness's polling must not count as the system's
    conn.ping()
    conn.flushdb()
    emit(f"dmap {dmap.__version__} network benchmark; Redis {BENCH_REDIS_URL} behind a latency proxy")
    coordinator_proxy = Proxy(BENCH_REDIS_URL)
    worker_proxy = Proxy(BENCH_REDIS_URL)
    proxies = (coordinator_proxy, worker_proxy)
    reniced = all(proxy.renice(args.proxy_nice) for proxy in proxies)
    emit(f"proxies at nice {args.proxy_nice if reniced else 'unchanged (not permitted)'}")
    table = Table(args.workers * args.concurrency, args.items)
    emit(f"workers: {args.workers} x {args.concurrency} prefork ({table.slots} slots), {args.items} items per run")
    try:
        if args.check_requests:
            proxy_check(urlsplit(BENCH_REDIS_URL).port or 6379, coordinator_proxy, args.check_requests)
        if args.direct:
            with workers_on(conn, args, BENCH_REDIS_URL, BENCH_REDIS_URL) as (backend, queue):
                table.add_cases("direct", ping_rtt(BENCH_REDIS_URL, 100), backend, queue, conn, limits, None)
        with workers_on(conn, args, worker_proxy.url, coordinator_proxy.url) as (backend, queue):
            for rtt in rtts:
                for proxy in proxies:
                    proxy.ask(f"delay {rtt / 2}")
                table.add_cases(f"{rtt:g}", ping_rtt(coordinator_proxy.url, 100), backend, queue, conn, limits, proxies)
    finally:
        for proxy in proxies:
            proxy.stop()
        conn.flushdb()
    table.report(f"{max(rtts):g}" if rtts else None)
    return 0


@contextmanager
def workers_on(conn: redis.Redis, args: argparse.Namespace, worker_url: str, coordinator_url: str) -> Iterator[Any]:
    """Workers whose Redis is ``worker_url`` and a celery backend whose Redis is ``coordinator_url``; stopped after."""
    workers = ProxiedWorkers(args.workers, args.concurrency, redis_url=worker_url)
    workers.start(conn)
    backend = TimedCelery(Settings(redis_url=coordinator_url, broker_url=coordinator_url, queue=workers.queue))
    try:
        yield backend, workers.queue
    finally:
        app = backend._app
        if app is not None:
            app.close()
        backend.close()
        workers.stop()


@dataclass
class Table:
    """The rows measured so far, printed as they come and once more, whole, at the end."""

    slots: int
    items: int
    rows: list[str] = field(default_factory=list)
    wires: dict[str, Wire] = field(default_factory=dict)
    busiest: float = 0.0
    busiest_cpu: float = 0.0

    def add_cases(
        self,
        rtt: str,
        ping: tuple[float, float],
        backend: Any,
        queue: str,
        conn: redis.Redis,
        limits: list[int],
        proxies: Sequence[Proxy] | None,
    ) -> None:
        """Raw Celery, then dmap at each MaxConcurrency, on the workers of ``queue``; counted when ``proxies``."""
        items = self.items
        run_dmap(backend, conn, 50)  # warm-up: connections in every pool, plans, worker imports
        run_raw(backend.app, queue, conn, 50)
        runs: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("raw Celery", lambda: run_raw(backend.app, queue, conn, items))
        ]
        for limit in limits:
            runs.append(
                (
                    f"dmap MaxConcurrency {limit}",
                    lambda limit=limit: run_dmap(backend, conn, items, max_concurrency=limit),
                )
            )
        raw: dict[str, float] | None = None
        for name, run in runs:
            if proxies is None:
                result, wire = run(), None
            else:
                result, wire = measured(proxies, items, run)
                self.wires[f"{name} at {rtt} ms"] = wire
                self.busiest = max(self.busiest, *(side["round_trips"] / result["seconds"] for side in wire.sides))
                cpu = (side["cpu_seconds"] / result["seconds"] for side in wire.sides)
                self.busiest_cpu = max(self.busiest_cpu, *cpu)
            raw = raw or result
            if not self.rows:
                emit(HEADER)
            self.rows.append(row(rtt, ping, name, result, raw, wire, self.slots))
            emit(self.rows[-1])

    def report(self, rtt: str | None) -> None:
        """The notes, the whole table, and the commands by name at round trip ``rtt``."""
        emit()
        emit("round trips and commands per child: coordinator side + worker side, counted by the two proxies (idle")
        emit("polling included). ping: median/mean PING round trip. bound/s: the rate if each round trip were waited")
        emit("out one after another (at the mean ping), by one coordinator loop (1 / (its round trips per child x")
        emit("ping)) and by the worker slots (slots / (worker-side round trips per child x ping)).")
        emit(
            f"busiest proxy: {self.busiest:,.0f} round trips/s, {self.busiest_cpu:.0%} of one core "
            "(near 100% would mean the proxy, not the system, set the rate)"
        )
        emit()
        emit(HEADER)
        for line in self.rows:
            emit(line)
        if rtt is not None and self.wires:
            emit()
            breakdown(self.wires, rtt)


HEADER = (
    f"{'rtt ms':>6} {'ping ms':>11}  {'system':<22} {'items/s':>8} {'x raw':>6}  "
    f"{'round trips/child':>17} {'commands/child':>15} {'bound/s coord':>13} {'worker':>7}"
)


def row(
    rtt: str,
    ping: tuple[float, float],
    name: str,
    result: dict[str, float],
    raw: dict[str, float],
    wire: Wire | None,
    slots: int,
) -> str:
    """One line of the table."""
    line = (
        f"{rtt:>6} {ping[0]:>5.2f}/{ping[1]:<5.2f}  {name:<22} {result['rate']:>8,.0f} "
        f"{result['rate'] / raw['rate']:>5.2f}x  "
    )
    if wire is None:
        return line + f"{'-':>17} {'-':>15} {'-':>13} {'-':>7}"
    coordinator, worker = (
        1000 / (n * ping[1]) if n * ping[1] > 0 else float("inf") for n in wire.per_child("round_trips")
    )
    return (
        line + f"{split(wire, 'round_trips'):>17} {split(wire, 'commands'):>15} {coordinator:>13,.0f} "
        f"{slots * worker:>7,.0f}"
    )


def split(wire: Wire, key: str) -> str:
    """``coordinator+worker`` per child."""
    coordinator, worker = wire.per_child(key)
    return f"{coordinator:.2f}+{worker:.2f}"


def breakdown(wires: dict[str, Wire], rtt: str) -> None:
    """Redis commands per child by name, each side, for the runs at round trip ``rtt``."""
    emit(f"commands per child by name at {rtt} ms (coordinator side | worker side):")
    for label, wire in wires.items():
        if not label.endswith(f" at {rtt} ms"):
            continue
        sides = []
        for stats in wire.sides:
            names = stats["by_command"]
            top = [(name, count) for name, count in names.items() if count >= wire.items / 100]  # >= 0.01 per child
            top.sort(key=lambda kv: -kv[1])
            sides.append(" ".join(f"{name} {count / wire.items:.2f}" for name, count in top) or "-")
        emit(f"  {label}: {sides[0]} | {sides[1]}")


if __name__ == "__main__":
    raise SystemExit(main())

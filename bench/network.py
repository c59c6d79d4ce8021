"""Network benchmark: ``python -m bench.network`` — dmap against raw Celery with Redis a round trip away.

For each ``--rtt`` (milliseconds, default 0, 0.5 and 2) every Redis connection of the system under
test goes through :mod:`bench.latency_proxy` with half the round trip added each way: one proxy
process for the coordinator side (``dmap.run`` and the raw Celery producer) and one for the worker
side (the ``dmap worker`` processes, which serve both dmap's children and the raw tasks). The same
workers run every case. Per case it prints items/s of raw Celery (``apply_async`` of the no-op of
:mod:`bench.tasks`, as phase ``a`` of :mod:`bench.engine`) and of dmap at each ``--max-concurrency``,
their ratio, and what each child cost on the wire, counted by the proxies: round trips (request
bursts a client waited on) and Redis commands, coordinator side + worker side.

Before that it checks that the proxy alone does not cap the rate (``redis-benchmark`` direct and
through the proxy at 0 ms added). The harness's own polling (has the last raw task finished, when did
the first child start) talks to Redis directly and is not counted. It prints numbers and asserts
nothing; Redis DB 8 (``BENCH_REDIS_URL``) is flushed before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


def ping_rtt(url: str, count: int = 200) -> float:
    """Median PING round trip through ``url``, in milliseconds (what the proxy really adds, timer slop included)."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            client.ping()
            samples.append(time.perf_counter() - start)
        return 1000 * statistics.median(samples)
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
    emit(f"  PING round trip: direct {ping_rtt(BENCH_REDIS_URL):.3f} ms, proxy {ping_rtt(proxy.url):.3f} ms")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.network", description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000, help="items per measured run")
    parser.add_argument("--rtt", default="0,0.5,2", help="round trips to Redis to add, ms, comma-separated")
    parser.add_argument("--max-concurrency", default="0,8,100", help="dmap MaxConcurrency values, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="dmap worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="prefork processes per worker")
    parser.add_argument("--check-requests", type=int, default=20000, help="PINGs per proxy-alone check (0: skip)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy check and every round trip; print the table."""
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
    try:
        if args.check_requests:
            proxy_check(urlsplit(BENCH_REDIS_URL).port or 6379, coordinator_proxy, args.check_requests)
        run_cases(args, conn, proxies, rtts, limits)
    finally:
        for proxy in proxies:
            proxy.stop()
        conn.flushdb()
    return 0


def run_cases(
    args: argparse.Namespace, conn: redis.Redis, proxies: Sequence[Proxy], rtts: list[float], limits: list[int]
) -> None:
    """Every round trip x (raw Celery, dmap at each MaxConcurrency) on one set of workers."""
    coordinator_proxy, worker_proxy = proxies
    workers = ProxiedWorkers(args.workers, args.concurrency, redis_url=worker_proxy.url)
    workers.start(conn)
    slots = args.workers * args.concurrency
    emit(f"workers: {args.workers} x {args.concurrency} prefork ({slots} slots), {args.items} items per run")
    settings = Settings(redis_url=coordinator_proxy.url, broker_url=coordinator_proxy.url, queue=workers.queue)
    backend = TimedCelery(settings)
    rows: list[str] = []
    wires: dict[str, Wire] = {}
    busiest, busiest_cpu = 0.0, 0.0
    try:
        for rtt in rtts:
            for proxy in proxies:
                proxy.ask(f"delay {rtt / 2}")
            ping = ping_rtt(coordinator_proxy.url, 100)
            run_dmap(backend, conn, 50)  # warm-up: connections in every pool, plans, worker imports
            run_raw(backend.app, workers.queue, conn, 50)
            raw, wire = measured(proxies, args.items, lambda: run_raw(backend.app, workers.queue, conn, args.items))
            cases = [("raw Celery", raw, wire)]
            for limit in limits:
                result, wire = measured(
                    proxies, args.items, lambda limit=limit: run_dmap(backend, conn, args.items, max_concurrency=limit)
                )
                cases.append((f"dmap MaxConcurrency {limit}", result, wire))
            for name, result, wire in cases:
                wires[f"{name} at {rtt:g} ms"] = wire
                if not rows:
                    emit(HEADER)
                rows.append(row(rtt, ping, name, result, raw, wire, slots))
                emit(rows[-1])
                busiest = max(busiest, *(side["round_trips"] / result["seconds"] for side in wire.sides))
                busiest_cpu = max(busiest_cpu, *(side["cpu_seconds"] / result["seconds"] for side in wire.sides))
    finally:
        app = backend._app
        if app is not None:
            app.close()
        backend.close()
        workers.stop()
    emit()
    emit("round trips and commands per child: coordinator side + worker side, counted by the two proxies (idle")
    emit("polling included); ping: median PING round trip through the proxy. bound/s: the rate if each round trip")
    emit("were waited out one after another, by one coordinator loop (1 / (its round trips per child x ping)) and")
    emit("by each worker slot (slots / (worker-side round trips per child x ping)).")
    emit(
        f"busiest proxy: {busiest:,.0f} round trips/s, {busiest_cpu:.0%} of one core "
        "(near 100% would mean the proxy, not the system, set the rate)"
    )
    emit()
    emit(HEADER)
    for line in rows:
        emit(line)
    if rtts:
        emit()
        breakdown(wires, max(rtts))


HEADER = (
    f"{'rtt ms':>6} {'ping ms':>7}  {'system':<22} {'items/s':>8} {'x raw':>6}  "
    f"{'round trips/child':>17} {'commands/child':>15} {'bound/s coord':>13} {'worker':>7}"
)


def row(
    rtt: float, ping: float, name: str, result: dict[str, float], raw: dict[str, float], wire: Wire, slots: int
) -> str:
    """One line of the table."""
    coordinator, worker = (1000 / (n * ping) if n * ping > 0 else float("inf") for n in wire.per_child("round_trips"))
    return (
        f"{rtt:>6g} {ping:>7.2f}  {name:<22} {result['rate']:>8,.0f} {result['rate'] / raw['rate']:>5.2f}x  "
        f"{split(wire, 'round_trips'):>17} {split(wire, 'commands'):>15} {coordinator:>13,.0f} {slots * worker:>7,.0f}"
    )


def split(wire: Wire, key: str) -> str:
    """``coordinator+worker`` per child."""
    coordinator, worker = wire.per_child(key)
    return f"{coordinator:.2f}+{worker:.2f}"


def breakdown(wires: dict[str, Wire], rtt: float) -> None:
    """Redis commands per child by name, each side, for the runs at round trip ``rtt``."""
    emit(f"commands per child by name at {rtt:g} ms (coordinator side | worker side):")
    for label, wire in wires.items():
        if not label.endswith(f" at {rtt:g} ms"):
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

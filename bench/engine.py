"""Engine benchmark: ``python -m bench.engine`` — dmap against raw Celery on the same workers, and the local backend.

Phases (``--phases``, default all):

* ``a`` N no-op children through dmap (celery backend) at MaxConcurrency 8, 100, 1,000 and 0
  against the same N no-op tasks sent with raw Celery ``apply_async`` (one pooled producer),
  items/s and the ratio;
* ``b`` dmap with ``ItemBatcher`` (100 items per batch) at the same MaxConcurrency values against
  the raw unbatched rate of ``a``; ``a`` and ``b`` print one table;
* ``c`` the local backend on a 10,000-item map whose child is one Pass state with ItemSelector and
  ``States.MathAdd`` (target: 5,000 items/s or more);
* ``d`` time to first dispatch (coordinator sends the first child) and to the first child's start,
  from the ``dmap.run`` call, on both backends;
* ``e`` the local backend with a one-Task (no-op handler) and a one-Pass child at MaxConcurrency 8,
  100 and 0, next to ``ThreadPoolExecutor(8).map`` over the same handler in the same run
  (:mod:`bench.local`; targets 15,000 and 20,000 items/s).

``--brokers redis,amqp`` runs a, b and d once per broker — the Redis of ``BENCH_REDIS_URL``, then
RabbitMQ at ``BENCH_AMQP_URL`` (quorum queue, as ``DMAP_BROKER_URL=amqp://…`` gives) — each on its
own freshly started workers, and prints one table with a column group per broker, each ratio taken
to raw Celery on the same broker. The run store is that Redis either way; the RabbitMQ queue is
unique to the run and deleted afterwards.

Every number is the best of ``--repeat`` runs. Workers are ``dmap worker`` processes started here
(prefork, or a cProfile'd solo pool with ``--profile DIR``, which also profiles the coordinator
side of each phase). The Redis database of ``BENCH_REDIS_URL`` is flushed before and after. It
prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis

import dmap
from dmap.backends.celery import CeleryBackend
from dmap.backends.local import LocalBackend
from dmap.child import ChildPlan
from dmap.config import Settings
from dmap.store import Lease

from . import local as local_phase
from .harness import BROKER_URLS, Workers
from .tasks import BENCH_REDIS_URL, RAW_TASK

logger = logging.getLogger(__name__)


def emit(line: str = "") -> None:
    """One line of the benchmark's report on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class FirstDispatch:
    """Mixin: remember the wall time at which the coordinator first dispatched a child."""

    first_dispatch: float | None = None

    def dispatch(self, plan: ChildPlan, leases: Sequence[Lease]) -> None:
        if self.first_dispatch is None and leases:
            self.first_dispatch = time.time()
        super().dispatch(plan, leases)  # type: ignore[misc]

    def dispatch_packs(self, plan: ChildPlan, packs: Sequence[Sequence[Lease]]) -> None:
        if self.first_dispatch is None and any(packs):
            self.first_dispatch = time.time()
        super().dispatch_packs(plan, packs)  # type: ignore[misc]


class TimedCelery(FirstDispatch, CeleryBackend):
    """The celery backend, timing its first dispatch."""


class TimedLocal(FirstDispatch, LocalBackend):
    """The local backend, timing its first dispatch."""


def noop_map(*, batch: int | None = None, max_concurrency: int = 0) -> dict[str, Any]:
    """A DISTRIBUTED Map whose child is one Task calling the ``BenchNoop`` handler."""
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemSelector": {"i.$": "$$.Map.Item.Value", "first.$": "$.first"},
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Noop",
            "States": {"Noop": {"Type": "Task", "Resource": "BenchNoop", "End": True}},
        },
        "ResultSelector": {"done": True},
        "End": True,
    }
    if batch:
        state["ItemBatcher"] = {"MaxItemsPerBatch": batch}
    return {"StartAt": "Fan", "States": {"Fan": state}}


PASS_MAP: dict[str, Any] = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "ItemSelector": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Add",
                "States": {
                    "Add": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.value, $.index)"}, "End": True}
                },
            },
            "ResultSelector": {"done": True},
            "End": True,
        }
    },
}


@contextmanager
def profiled(directory: Path | None, name: str) -> Iterator[None]:
    """cProfile the block into ``<directory>/<name>.prof`` (no-op without a directory)."""
    if directory is None:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(directory / f"{name}.prof")


def best(repeat: int, measure: Callable[[], dict[str, float]], key: str) -> dict[str, float]:
    """The run with the highest ``key`` among ``repeat`` runs."""
    runs = [measure() for _ in range(repeat)]
    return max(runs, key=lambda r: r[key])


def run_dmap(backend: Any, conn: redis.Redis, items: int, **shape: Any) -> dict[str, float]:
    """One dmap run of ``items`` no-op items; items/s and the times to first dispatch and first start."""
    first = f"bench:{uuid.uuid4().hex}:first"
    backend.first_dispatch = None
    wall, start = time.time(), time.perf_counter()
    execution = dmap.run(noop_map(**shape), manifest=range(items), input={"first": first}, backend=backend)
    elapsed = time.perf_counter() - start
    if execution.status != "SUCCEEDED":
        raise RuntimeError(f"benchmark run {execution.status}: {execution.error}: {execution.cause}")
    started = conn.get(first)
    return {
        "rate": items / elapsed,
        "seconds": elapsed,
        "first_dispatch_ms": 1000 * ((backend.first_dispatch or wall) - wall),
        "first_start_ms": 1000 * (float(started) - wall) if started else float("nan"),
    }


def run_raw(app: Any, queue: str, conn: redis.Redis, items: int) -> dict[str, float]:
    """``items`` raw Celery no-op tasks sent with ``apply_async``; items/s until the last one finished."""
    counter = f"bench:{uuid.uuid4().hex}:raw"
    task = app.tasks[RAW_TASK]
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(items):
            task.apply_async(args=(counter,), queue=queue, producer=producer)
    sent = time.perf_counter() - start
    while int(conn.get(counter) or 0) < items:
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    return {"rate": items / elapsed, "seconds": elapsed, "send_rate": items / sent}


def run_local(items: int) -> dict[str, float]:
    """The local backend on the Pass + MathAdd map: items/s and time to first dispatch."""
    backend = TimedLocal()
    try:
        wall, start = time.time(), time.perf_counter()
        execution = dmap.run(PASS_MAP, manifest=range(items), backend=backend)
        elapsed = time.perf_counter() - start
    finally:
        backend.close()
    if execution.status != "SUCCEEDED":
        raise RuntimeError(f"local benchmark run {execution.status}: {execution.error}: {execution.cause}")
    return {
        "rate": items / elapsed,
        "seconds": elapsed,
        "first_dispatch_ms": 1000 * ((backend.first_dispatch or wall) - wall),
    }


def print_profile(path: Path, lines: int) -> None:
    """The top functions of a profile by own time, then by cumulative time."""
    emit(f"--- {path.name}")
    stream = _Lines()
    stats = pstats.Stats(str(path), stream=stream)  # type: ignore[arg-type]
    stats.strip_dirs().sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    emit("\n".join(line for line in stream.text.splitlines() if line.strip())[-12000:])


class _Lines:
    """A write-only text sink for pstats."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)


MAX_CONCURRENCIES = (8, 100, 1000, 0)
"""The MaxConcurrency values of the dmap-vs-raw table (0 = unlimited, AWS's 10,000)."""


@dataclass
class BrokerTable:
    """One broker's column group of the dmap-vs-raw table: raw Celery's rate and dmap's rates on the same workers."""

    broker: str
    raw: float
    rates: dict[tuple[int, str], float] = field(default_factory=dict)
    """items/s by (MaxConcurrency, phase): phase ``a`` unbatched, ``b`` ItemBatcher(100)."""


def table_lines(groups: Sequence[BrokerTable], items: int, batch_items: int) -> list[str]:
    """The dmap-vs-raw table, one column group per broker; each ratio is to raw Celery on that group's broker."""
    cell_widths = (("a", "unbatched/s", 12), ("b", "batched(100)/s", 14))
    group_width = sum(width + 8 for _, _, width in cell_widths) - 1
    lines = [
        "(a/b) dmap celery vs raw Celery on the same workers; x raw = ratio to raw Celery on the same broker",
        f"      {'broker':>14} | "
        + " | ".join(f"{f'{g.broker}, raw Celery {g.raw:,.0f}/s':^{group_width}}" for g in groups),
        f"      {'MaxConcurrency':>14} | "
        + " | ".join(" ".join(f"{title:>{width}} {'x raw':>6}" for _, title, width in cell_widths) for _ in groups),
    ]
    for mc in MAX_CONCURRENCIES:
        cells = []
        for group in groups:
            for phase, _, width in cell_widths:
                rate = group.rates.get((mc, phase))
                cells.append(
                    f"{'-':>{width}} {'-':>6}" if rate is None else f"{rate:>{width},.0f} {rate / group.raw:>5.2f}x"
                )
        pairs = [" ".join(cells[i : i + len(cell_widths)]) for i in range(0, len(cells), len(cell_widths))]
        lines.append(f"      {mc if mc else '0 (10,000)':>14} | " + " | ".join(pairs))
    lines.append(f"      unbatched: {items} children per run; batched: {batch_items} items in batches of 100")
    return [line.rstrip() for line in lines]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=3000, help="items of phases a and d")
    parser.add_argument("--batch-items", type=int, default=20000, help="items of phase b")
    parser.add_argument("--local-items", type=int, default=10000, help="items of phase c")
    parser.add_argument("--local-map-items", type=int, default=20000, help="items of each run of phase e")
    parser.add_argument("--workers", type=int, default=2, help="dmap worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="prefork processes per worker")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best is shown)")
    parser.add_argument("--phases", default="abcde", help="which of a, b, c, d, e to run")
    parser.add_argument(
        "--brokers",
        default="redis",
        help="comma-separated brokers of phases a, b and d: redis, amqp (RabbitMQ at BENCH_AMQP_URL); the run store "
        "stays Redis",
    )
    parser.add_argument(
        "--disable-prefetch", action="store_true", help="start workers with worker_disable_prefetch (proposed)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile files here and print the tops")
    parser.add_argument("--profile-lines", type=int, default=25)
    args = parser.parse_args(argv)
    args.brokers = [name.strip() for name in args.brokers.split(",") if name.strip()]
    unknown = [name for name in args.brokers if name not in BROKER_URLS]
    if unknown or not args.brokers:
        parser.error(f"--brokers: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(BROKER_URLS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the phases and print the report."""
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    emit(f"dmap {dmap.__version__} engine benchmark; Redis {BENCH_REDIS_URL}")
    if "e" in args.phases:  # in-process only: no Redis, no workers
        with profiled(args.profile, "local-maps"):
            for line in local_phase.report(args.local_map_items, args.repeat):
                emit(line)
    if not set("abcd") & set(args.phases):
        return 0
    conn = redis.Redis.from_url(BENCH_REDIS_URL)
    conn.ping()
    conn.flushdb()
    try:
        if "c" in args.phases or "d" in args.phases:
            run_local(min(args.local_items, 1000))  # warm-up: imports and caches
            with profiled(args.profile, "coordinator-local"):
                local = best(args.repeat, lambda: run_local(args.local_items), "rate")
            emit(
                f"(c) local backend, {args.local_items} items, Pass+ItemSelector+MathAdd child: "
                f"{local['rate']:,.0f} items/s ({local['seconds']:.2f} s; target >= 5,000)"
            )
            emit(f"(d) local backend: first dispatch {local['first_dispatch_ms']:.1f} ms after dmap.run")
        if set("abd") & set(args.phases):
            groups = [celery_phases(args, conn, broker) for broker in args.brokers]
            tables = [group for group in groups if group is not None and group.rates]
            if tables:
                for line in table_lines(tables, args.items, args.batch_items):
                    emit(line)
    finally:
        conn.flushdb()
    if args.profile is not None:
        for path in sorted(args.profile.glob("*.prof")):
            print_profile(path, args.profile_lines)
    return 0


def celery_phases(args: argparse.Namespace, conn: redis.Redis, broker: str) -> BrokerTable | None:
    """Phases a, b and d on one set of worker processes with ``broker`` as the broker; the table's column group."""
    broker_url = BROKER_URLS[broker]
    workers = Workers(
        args.workers,
        args.concurrency,
        profile_dir=args.profile,
        disable_prefetch=args.disable_prefetch,
        broker_url=broker_url,
    )
    slots = args.workers * (1 if args.profile else args.concurrency)
    # What the workers run with: dmap worker sets worker_disable_prefetch on Redis already, and Celery
    # ignores it on RabbitMQ (--disable-prefetch predates workers/app.py setting it).
    settings = Settings(redis_url=BENCH_REDIS_URL, broker_url=broker_url, queue=workers.queue)
    backend = TimedCelery(settings)
    try:
        workers.start(conn)
        emit(
            f"[{broker}] workers: {args.workers} x {args.concurrency} "
            f"({'profiled solo' if args.profile else 'prefork'}), {slots} slots, "
            f"worker_disable_prefetch={broker == 'redis'}, queue {workers.queue}"
        )
        tag = "" if broker == "redis" else f"-{broker}"  # profile names as before for the default broker
        run_dmap(backend, conn, 100)  # warm-up: plans, connections, worker imports
        run_raw(backend.app, workers.queue, conn, 100)
        group: BrokerTable | None = None
        if "a" in args.phases or "b" in args.phases:
            with profiled(args.profile, f"coordinator-raw{tag}"):
                raw = best(args.repeat, lambda: run_raw(backend.app, workers.queue, conn, args.items), "rate")
            emit(
                f"[{broker}] (a) raw Celery apply_async, {args.items} no-op tasks: {raw['rate']:,.0f} items/s "
                f"(sending alone {raw['send_rate']:,.0f}/s)"
            )
            group = BrokerTable(broker, raw["rate"])
        if "a" in args.phases or "d" in args.phases:
            with profiled(args.profile, f"coordinator-dmap{tag}"):
                plain = best(args.repeat, lambda: run_dmap(backend, conn, args.items), "rate")
            if group is not None:
                group.rates[(0, "a")] = plain["rate"]
            if "a" in args.phases and group is not None:
                for mc in (m for m in MAX_CONCURRENCIES if m):
                    shaped = best(args.repeat, partial(run_dmap, backend, conn, args.items, max_concurrency=mc), "rate")
                    group.rates[(mc, "a")] = shaped["rate"]
            emit(
                f"[{broker}] (d) celery backend: first dispatch {plain['first_dispatch_ms']:.1f} ms, "
                f"first child started {plain['first_start_ms']:.1f} ms after dmap.run"
            )
        if "b" in args.phases and group is not None:
            with profiled(args.profile, f"coordinator-batched{tag}"):
                for mc in MAX_CONCURRENCIES:
                    batched = best(
                        args.repeat,
                        partial(run_dmap, backend, conn, args.batch_items, batch=100, max_concurrency=mc),
                        "rate",
                    )
                    group.rates[(mc, "b")] = batched["rate"]
        return group
    finally:
        app = backend._app
        if app is not None:
            app.close()
        backend.close()
        workers.stop()
        workers.delete_queue()


if __name__ == "__main__":
    raise SystemExit(main())

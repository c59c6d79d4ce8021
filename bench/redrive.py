"""Redrive benchmark: ``python -m bench.redrive`` — a 1,000,000-child Map Run with 10,000 failures, redriven.

Exact command (about two minutes on 2 cores, most of it building the run; Redis at ``--redis``,
default ``DMAP_REDIS_URL`` or ``redis://127.0.0.1:6379/13``, whose run keys are deleted at the end)::

    . .venv/bin/activate && python -m bench.redrive

It drives the celery backend's run store (:class:`~dmap.store.redis.RedisRunStore`, the same Lua
scripts the coordinator and the workers call) directly, without Celery workers, so only the store's
work is measured:

1. **Build** (not part of the result): ``--children`` children, one item each; every ``--every``-th
   child FAILED (10,000 of 1,000,000), the others SUCCEEDED and their results taken as a ResultWriter
   takes them; the totals set and the run aborted (tolerance), as the original Map Run ended.
   ``--build api`` does it all through the scripts (``acquire`` in steps of 5,000, then ``start.lua``
   and ``complete.lua`` per child, pipelined: about 6 minutes for 1,000,000 on 2 busy cores);
   ``--build direct`` (default) sends only the failed children through them and writes the succeeded
   ones as the scripts leave them (status nibble and counters): the same state, in seconds (compare
   the printed counts of both at ``--children 20000``).
2. **Redrive**, the calls ``Coordinator.run`` makes for a redrive, in its order: ``create_run``
   (finds the run), ``requeue_unstarted``, ``reset_for_redrive`` (paged Lua over the failure
   index, 500 failures per call: the longest call is reported, as it blocks Redis), ``cursor``,
   the reader reopened at the stored position of a ``--children``-line JSONL manifest (a seek to its
   end: nothing left to read), then the dispatch loop at MaxConcurrency ``--concurrency``:
   ``acquire`` (redo children first, 1,000 examined per call) and, for every granted child, a worker's
   ``start`` and ``complete`` (pipelined per round, standing in for the children's own work).

   Last, the result writer's pass: the records of the redriven children are found among the
   1,000,000 children (those written before the redrive are passed over 2,048 at a time) and taken.

Reported: time to the first redriven child's ``start`` (target <= 5 s), the redrive's own overhead
(everything but the children's start/complete calls: reset, cursor, reader, acquire rounds, the
writer's pass; target <= 30 s) with its round trips to Redis (the writer's not counted), and the
wall time until the 10,000 children are done and their records taken.
It prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmap.store import ChildSpec, ChildStatus, RunConfig
from dmap.store.redis import RedisRunStore

FIRST_CHILD_TARGET_S = 5.0
OVERHEAD_TARGET_S = 30.0
STEP = 5_000
LEASE_MS = 600_000
NEVER = 2**53


class Timer:
    """Sums the time and calls of what it wraps."""

    def __init__(self) -> None:
        self.seconds, self.calls, self.longest = 0.0, 0, 0.0

    def wrap(self, fn: Any) -> Any:
        """``fn`` timed into this timer."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds += elapsed
                self.calls += 1
                self.longest = max(self.longest, elapsed)

        return timed


def worker_round(store: RedisRunStore, run: str, leases: Sequence[Any], fail_every: int = 0) -> None:
    """Start then complete ``leases`` as workers would, each step pipelined (one round trip per step)."""
    keys = store._k(run)
    pipe = store.client.pipeline(transaction=False)
    for lease in leases:
        store._scripts["start"](keys=keys, args=[lease.child, lease.token, LEASE_MS, "bench:1"], client=pipe)
    pipe.execute()
    pipe = store.client.pipeline(transaction=False)
    for lease in leases:
        failed = fail_every and lease.child % fail_every == 0
        status = ChildStatus.FAILED if failed else ChildStatus.SUCCEEDED
        record = {"Child": lease.child, "Index": lease.child, "Items": 1, "Input": json.dumps({"i": lease.child})}
        record |= {"Status": status.name, "Error": "Bench.Failed", "Cause": "every 100th"} if failed else {}
        args = [lease.child, lease.token, int(status), json.dumps(record), "Bench.Failed" if failed else ""]
        store._scripts["complete"](keys=keys, args=args, client=pipe)
    pipe.execute()


def build(store: RedisRunStore, run: str, children: int, every: int) -> None:
    """A finished Map Run of ``children`` children, every ``every``-th FAILED, the results taken."""
    store.create_run(run, RunConfig(max_concurrency=0, tolerated_failure_count=NEVER, tolerated_failure_percentage=100))
    taken = 0
    for first in range(0, children, STEP):
        specs = [ChildSpec(c, c, 1, f'{{"i":{c}}}', cursor=c + 1) for c in range(first, min(first + STEP, children))]
        acquired = store.acquire(run, specs, dispatch_lease_ms=LEASE_MS)
        assert acquired.granted_new == len(specs), acquired.granted_new
        worker_round(store, run, acquired.leases, every)
        taken += len(store.take_results(run, taken, children))
    store.set_total(run, items=children, children=children)
    store.abort(run, "tolerance")


def build_direct(store: RedisRunStore, run: str, children: int, every: int) -> None:
    """The same finished Map Run as :func:`build`, fast: the failed children go through the store's scripts
    (``acquire``, ``start``, ``complete``), the succeeded ones are written as those scripts leave them once
    their results are taken (status SUCCEEDED in the bitfield, counted; no meta, input or result left).
    """
    store.create_run(run, RunConfig(max_concurrency=0, tolerated_failure_count=NEVER, tolerated_failure_percentage=100))
    keys, client = store._k(run), store.client
    succeeded, made = 0, 0
    pipe = client.pipeline(transaction=False)
    for failing in [*range(0, children, every), children]:
        for first in range(made, failing, 1000):  # SUCCEEDED (2) for the children before the failing one
            ops = [op for c in range(first, min(first + 1000, failing)) for op in ("SET", "u4", f"#{c}", 2)]
            pipe.execute_command("BITFIELD", keys[1], *ops)
        succeeded += failing - made
        pipe.hset(keys[0], mapping={"cc": failing, "ci": failing, "cr": failing})
        pipe.execute()
        if failing == children:
            break
        spec = ChildSpec(failing, failing, 1, f'{{"i":{failing}}}', cursor=failing + 1)
        worker_round(store, run, store.acquire(run, [spec], dispatch_lease_ms=LEASE_MS).leases, every)
        pipe.hdel(keys[7], str(failing))  # its result taken by the ResultWriter (take_results.lua)
        pipe.hincrby(keys[0], "iw", 1)
        pipe.hincrby(keys[0], "ew", 1)
        made = failing + 1
    for field in ("i2", "e2", "iw", "ew"):
        pipe.hincrby(keys[0], field, succeeded)
    pipe.execute()
    store.set_total(run, items=children, children=children)
    store.abort(run, "tolerance")


def manifest(children: int) -> tuple[Path, str]:
    """A ``children``-line JSONL manifest and the reader position at its end (what the cursor stores)."""
    path = Path(tempfile.gettempdir()) / f"dmap-bench-redrive-{children}.jsonl"
    if not path.is_file():
        with path.open("w", encoding="utf-8") as out:
            for first in range(0, children, 100_000):
                out.write("".join(f'{{"i":{i}}}\n' for i in range(first, min(first + 100_000, children))))
    position = json.dumps({"i": children, "o": path.stat().st_size, "l": children}, separators=(",", ":"))
    return path, position


def redrive(store: RedisRunStore, run: str, path: Path, position: str, concurrency: int) -> dict[str, float]:
    """Redrive ``run`` as the coordinator does; the timings."""
    from dmap.readers import ReaderSpec, open_items
    from dmap.storage.local import LocalStorage

    own = Timer()  # the redrive's own calls (not the children's start/complete)
    create_run, requeue = own.wrap(store.create_run), own.wrap(store.requeue_unstarted)
    reset, cursor, acquire = own.wrap(store.reset_for_redrive), own.wrap(store.cursor), own.wrap(store.acquire)
    redrive_calls = Timer()
    script = store._scripts["redrive"]
    store._scripts["redrive"] = redrive_calls.wrap(script)
    started = time.perf_counter()
    found = not create_run(run, RunConfig(max_concurrency=concurrency))
    requeue(run)
    store.update_config(run, max_concurrency=concurrency)  # the coordinator's config (the run's own limit)
    reset_count = reset(run)
    reset_s = time.perf_counter() - started
    _, next_child, next_item = cursor(run)
    spec = ReaderSpec(
        resource="arn:aws:states:::s3:getObject", bucket=path.parent.name, key=path.name, input_type="JSONL"
    )
    reader_started = time.perf_counter()
    left = list(open_items(spec, LocalStorage(path.parent.parent), position=position, start=next_item))
    reader_s = time.perf_counter() - reader_started
    own.seconds += reader_s
    assert found and not left and next_child == next_item
    first_start = None
    done = 0
    while done < reset_count:
        acquired = acquire(run, [], dispatch_lease_ms=LEASE_MS)
        if not acquired.leases:
            store.wait(run, 5)
            continue
        if first_start is None:
            lease = acquired.leases[0]
            store.start(run, lease.child, lease.token, lease_ms=LEASE_MS, worker="bench:1")
            first_start = time.perf_counter() - started
            store.complete(run, lease.child, lease.token, ChildStatus.SUCCEEDED, json.dumps({"Child": lease.child}))
            worker_round(store, run, acquired.leases[1:])
        else:
            worker_round(store, run, acquired.leases)
        done += len(acquired.leases)
    # The result writer then writes the redriven children's records: over 1,000,000 children whose
    # earlier records were written before the redrive, skipped a span at a time (dmap.results).
    from dmap.results import records_from

    writer_started = time.perf_counter()
    written = sum(1 for _ in records_from(store, run, 0, take=True))
    writer_s = time.perf_counter() - writer_started
    own.seconds += writer_s
    total = time.perf_counter() - started
    store._scripts["redrive"] = script
    counts = store.counts(run).executions
    assert counts.succeeded == counts.total, counts
    return {
        "reset": reset_count,
        "reset_s": reset_s,
        "redrive_calls": redrive_calls.calls,
        "longest_call_ms": redrive_calls.longest * 1000,
        "reader_s": reader_s,
        "first_start_s": first_start or 0.0,
        "overhead_s": own.seconds,
        "round_trips": own.calls + redrive_calls.calls - 1,  # reset_for_redrive's own call is counted in both
        "acquires": own.calls,
        "total_s": total,
        "writer_s": writer_s,
        "written": written,
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.redrive", description=__doc__.split("\n")[0])
    parser.add_argument("--children", type=int, default=1_000_000, help="children (one item each) of the Map Run")
    parser.add_argument("--every", type=int, default=100, help="every n-th child fails (10,000 of 1,000,000)")
    parser.add_argument("--build", choices=("direct", "api"), default="direct", help="how the run is built (see above)")
    parser.add_argument("--concurrency", type=int, default=1000, help="MaxConcurrency of the redrive")
    parser.add_argument("--redis", default=os.environ.get("DMAP_REDIS_URL", "redis://127.0.0.1:6379/13"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the run, redrive it, print the numbers."""
    args = parse(argv)
    store = RedisRunStore.from_url(args.redis)
    run = f"bench-redrive-{uuid.uuid4().hex[:8]}"
    try:
        started = time.perf_counter()
        (build if args.build == "api" else build_direct)(store, run, args.children, args.every)
        failed = store.failure_count(run)
        built = time.perf_counter() - started
        print(f"built ({args.build}) {args.children:,} children, {failed:,} failed, in {built:.0f} s ({args.redis})")
        print(f"counts before the redrive: {store.counts(run).executions.as_dict()}")
        path, position = manifest(args.children)
        r = redrive(store, run, path, position, args.concurrency)
    finally:
        store.delete_run(run)
    first = "meets" if r["first_start_s"] <= FIRST_CHILD_TARGET_S else "misses"
    overhead = "meets" if r["overhead_s"] <= OVERHEAD_TARGET_S else "misses"
    print(
        f"reset_for_redrive: {int(r['reset']):,} children reset in {r['reset_s']:.2f} s, "
        f"{int(r['redrive_calls'])} Lua calls, the longest {r['longest_call_ms']:.1f} ms"
    )
    print(f"reader reopened at its stored position (end of {args.children:,} lines): {r['reader_s'] * 1000:.1f} ms")
    print(
        f"result records of the {int(r['written']):,} redriven children found among {args.children:,} "
        f"and taken in {r['writer_s']:.2f} s"
    )
    print(f"first redriven child started after {r['first_start_s']:.2f} s ({first} <= {FIRST_CHILD_TARGET_S:g} s)")
    print(
        f"redrive overhead {r['overhead_s']:.2f} s in {int(r['round_trips']):,} round trips to Redis "
        f"({overhead} <= {OVERHEAD_TARGET_S:g} s); all {int(r['reset']):,} children done after {r['total_s']:.2f} s"
    )


if __name__ == "__main__":
    main()

"""Scale benchmark: ``python -m bench.scale`` — the reader and dispatcher on 1M and 10M items, in bounded memory.

Exact command (the full run, about an hour on 2 cores, most of it the two time-limited cases)::

    . .venv/bin/activate && python -m bench.scale

Quick check (the same cases, smaller): ``python -m bench.scale --items 100000 --big-items 1000000
--time-limit 60``; some cases only: ``--cases 'local/jsonl-1M*,reader/*'`` (``fnmatch`` patterns over
the case names of the table). ``--profile DIR`` runs every case under cProfile.

Data: a ``--items`` (1,000,000) JSONL manifest and CSV manifest in moto S3 (a ``ThreadedMotoServer``
in this process), and ``--big-items`` (10,000,000) ones under a ``DMAP_S3_ROOT`` folder
(``--data``, kept between runs and reused; ``--clean`` removes it at the end). Cases, each in a
fresh process (``bench.scale_case``) whose RSS is sampled here every ``--sample`` seconds:

* ``reader/…``: the ItemReader alone over each manifest (items/s);
* ``local/…``: ``dmap.run`` on the local backend, where children run on threads of the
  coordinator's process (so the RSS is theirs too): the 1M manifests one child per item; the 10M
  manifests in batches of ``--batch`` items; the 10M JSONL manifest in batches of 256 KiB (AWS's
  largest) with an inline Pass child, a pooled no-op Task child and a Task child that sleeps
  ``--slow-child`` seconds per batch (slower than the reader, so granted children queue up); and one
  child per item for at most ``--time-limit`` seconds (then extrapolated);
* ``celery/…``: the 1M manifests on the celery backend with ``--workers`` ``dmap worker``
  processes (Redis DB 12, flushed before and after), whose coordinator is the case process: in
  batches of ``--batch`` items, the JSONL one in 256 KiB batches, and one child per item for at
  most ``--time-limit`` seconds.

The child is a Pass state (unless named a Task); a ResultWriter (JSONL, COMPACT) exports every result
so that none has to stay in memory. Per case: items, wall time, the reader's items/s (from the
``reader/`` case of the same manifest), the run's items/s, the dispatch rate (items granted between
the first and the last dispatch), time from the ``dmap.run`` call to the first dispatch and to the
first child's start (the child outputs its own ``$$.Execution.StartTime``), the case process's peak
RSS (``VmHWM``) and whether RSS stays flat (the highest sample of the first quarter of the run,
from its first dispatch, against that of the last quarter). Targets: peak RSS <= 150 MB at 1M and
10M items, first dispatch <= 0.5 s. It prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scale_case import status_kb
from .scale_data import Manifest, check_disk, folder_bytes, local_results, moto_s3, tidy, upload

ROOT = Path(__file__).resolve().parents[1]
RSS_TARGET_MB = 150
FIRST_DISPATCH_TARGET_S = 0.5
FLAT_MB = 10.0
"""Growth of RSS between the first and the last quarter of a run that still counts as flat."""


def emit(line: str = "") -> None:
    """One line of the benchmark's report on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def short(items: int) -> str:
    """1000000 -> ``1M``, 100000 -> ``100k``."""
    if items % 1_000_000 == 0:
        return f"{items // 1_000_000}M"
    return f"{items // 1000}k" if items % 1000 == 0 else str(items)


@dataclass
class Case:
    """One measurement: its spec (given to ``bench.scale_case``) and what came back."""

    name: str
    spec: dict[str, Any]
    storage: str  # "moto" or "local"
    celery: bool = False
    result: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (epoch seconds, VmRSS KiB)


def plan_cases(args: argparse.Namespace, small: list[Manifest], big: list[Manifest]) -> list[Case]:
    """Every case selected by ``--cases``, in the order they run (readers first, celery last)."""
    kib256 = 256 * 1024

    def case(kind: str, m: Manifest, storage: str, suffix: str = "", **spec: Any) -> Case:
        name = f"{kind}/{m.fmt}-{short(m.items)}/{storage}{suffix}"
        spec = {"key": m.key, "input_type": m.input_type, "items": m.items, "name": name.replace("/", "_"), **spec}
        if kind != "reader":
            spec.update(mode="run", backend=kind)
        return Case(name, spec, storage, celery=kind == "celery")

    cases = [case("reader", m, "moto", mode="reader") for m in small]
    cases += [case("reader", m, "local", mode="reader") for m in big]
    cases += [case("local", m, "moto") for m in small]
    cases += [case("local", m, "local", f"/batch-{args.batch}", batch=args.batch) for m in big]
    jsonl = big[0]  # the largest batches AWS allows: an inline Pass child, a pooled Task child, a slow Task child
    cases.append(case("local", jsonl, "local", "/batch-256KiB/pass", batch_bytes=kib256))
    cases.append(case("local", jsonl, "local", "/batch-256KiB/task", batch_bytes=kib256, child="task"))
    slow = {"batch_bytes": kib256, "child": "task", "sleep": args.slow_child}
    cases.append(case("local", jsonl, "local", "/batch-256KiB/slow-task", **slow))
    cases.append(case("local", jsonl, "local", "/unbatched", time_limit=args.time_limit))
    cases += [case("celery", m, "moto", f"/batch-{args.batch}", batch=args.batch) for m in small]
    cases.append(case("celery", small[0], "moto", "/batch-256KiB", batch_bytes=kib256))
    cases += [case("celery", m, "moto", "/unbatched", time_limit=args.time_limit) for m in small]
    return [c for c in cases if any(fnmatch.fnmatch(c.name, p) for p in args.cases.split(","))]


def run_case(case: Case, env: dict[str, str], sample: float, logs: Path, profile: Path | None = None) -> None:
    """Run one case in its own process, sampling its RSS until it exits (under cProfile with ``profile``)."""
    out_path, err_path = logs / f"{case.spec['name']}.out", logs / f"{case.spec['name']}.err"
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile / f"{case.spec['name']}.prof")]
    command += ["-m", "bench.scale_case", json.dumps(case.spec)]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        while proc.poll() is None:
            rss = status_kb("VmRSS", proc.pid)
            if rss:
                case.samples.append((time.time(), rss))
            time.sleep(sample)
    lines = [line for line in out_path.read_text().splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = err_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"case {case.name} exited {proc.returncode}; stderr ends:\n{tail}")
    case.result = json.loads(lines[-1].removeprefix("RESULT "))


def flatness(case: Case) -> tuple[float, float] | None:
    """The highest RSS (MB) of the first and of the last quarter of the steady phase (first dispatch to end)."""
    begin, end = case.result["steady"]
    samples = [s for s in case.samples if begin <= s[0] <= end]
    if len(samples) < 8:
        return None
    quarter = len(samples) // 4
    return max(r for _, r in samples[:quarter]) / 1024, max(r for _, r in samples[-quarter:]) / 1024


def trend(case: Case) -> tuple[float, float] | None:
    """Items/s over the first and over the last quarter of the progress samples (a slowing run shows here)."""
    progress = case.result.get("progress") or []
    if len(progress) < 8:
        return None
    quarter = len(progress) // 4

    def rate(part: list[list[float]]) -> float:
        return (part[-1][1] - part[0][1]) / (part[-1][0] - part[0][0])

    return rate(progress[: quarter + 1]), rate(progress[-quarter - 1 :])


def describe(case: Case, readers: dict[tuple[str, str], float]) -> dict[str, str]:
    """One row of the summary table."""
    r = case.result
    spec = case.spec
    if "error" in r:
        return {"case": case.name, "items": "FAILED: " + r["error"][:60]}
    reader_rate = r.get("reader_rate") or readers.get((spec["key"], case.storage))
    wall = f"{r['seconds']:.1f}"
    if r.get("partial"):
        projected = spec["items"] / r["run_rate"] if r["run_rate"] else float("nan")
        wall = f"{r['seconds']:.0f} of ~{projected:.0f} (proj.)"
    flat, pace = flatness(case), trend(case)
    peak = r["peak_rss_kb"] / 1024
    row = {
        "case": case.name,
        "items": f"{r['items']:,}" + (" (partial)" if r.get("partial") else ""),
        "wall s": wall,
        "reader it/s": _rate(reader_rate),
        "run it/s": _rate(r.get("run_rate")),
        "dispatch it/s": _rate(r.get("dispatch_rate")),
        "1st dispatch s": _seconds(r.get("first_dispatch_s")),
        "1st start s": _seconds(r.get("first_start_s")),
        "peak RSS MB": f"{peak:.0f}" + ("" if peak <= RSS_TARGET_MB else " (!)"),
        "rate q1->q4 it/s": "-" if pace is None else f"{pace[0]:,.0f}->{pace[1]:,.0f}",
        "RSS q1->q4 MB": "-" if flat is None else f"{flat[0]:.0f}->{flat[1]:.0f}",
        "flat": "-" if flat is None else ("yes" if flat[1] - flat[0] <= FLAT_MB else "NO"),
    }
    return row


def _rate(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:,.0f}"  # None or NaN


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: list[dict[str, str]]) -> None:
    """Print rows as an aligned text table."""
    if not rows:
        return
    columns: list[str] = []
    for row in rows:  # a failed case's row has fewer columns
        columns += [c for c in row if c not in columns]
    rows = [{c: row.get(c, "") for c in columns} for row in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    emit("  ".join(c.ljust(widths[c]) for c in columns))
    emit("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        emit("  ".join(row[c].ljust(widths[c]) for c in columns))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items of the moto S3 manifests")
    parser.add_argument("--big-items", type=int, default=10_000_000, help="items of the DMAP_S3_ROOT manifests")
    parser.add_argument("--batch", type=int, default=1000, help="MaxItemsPerBatch of the big batched cases")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds before a case stops and extrapolates")
    parser.add_argument("--slow-child", type=float, default=5.0, help="seconds a slow-task child sleeps per batch")
    parser.add_argument("--workers", type=int, default=2, help="dmap worker processes of the celery cases")
    parser.add_argument("--concurrency", type=int, default=1, help="prefork processes per worker")
    parser.add_argument("--cases", default="*", help="comma-separated fnmatch patterns of the cases to run")
    parser.add_argument("--sample", type=float, default=0.1, help="seconds between two RSS samples")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dmap-bench-scale")
    parser.add_argument("--clean", action="store_true", help="remove the data folder at the end")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile every case into DIR/<case>.prof")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the data, run the cases, print the summary."""
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    data = args.data.resolve()
    small = [Manifest(fmt, args.items, data) for fmt in ("jsonl", "csv")]
    big = [Manifest(fmt, args.big_items, data) for fmt in ("jsonl", "csv")]
    tidy(data)
    check_disk(data, small + big, results_bytes=40 * args.big_items)
    for manifest in small + big:
        began = time.perf_counter()
        if manifest.ensure():
            size = manifest.path.stat().st_size / 1e6
            emit(f"wrote {manifest.path} ({size:.0f} MB, {time.perf_counter() - began:.1f} s)")
    cases = plan_cases(args, small, big)
    if args.profile is not None:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    emit(f"dmap scale benchmark: {len(cases)} cases; data in {data}; case logs in {logs}")
    try:
        with moto_s3() as s3_env:
            if any(c.storage == "moto" for c in cases):
                began = time.perf_counter()
                upload(s3_env, small)
                emit(f"uploaded {', '.join(m.key for m in small)} to moto ({time.perf_counter() - began:.1f} s)")
            run_all(cases, args, data, s3_env, logs)
    finally:
        if args.clean:
            shutil.rmtree(data, ignore_errors=True)
        else:
            emit(f"data kept in {data} ({folder_bytes(data) / 1e9:.2f} GB); --clean removes it")
    readers = {(c.spec["key"], c.storage): c.result["reader_rate"] for c in cases if c.result.get("reader_rate")}
    emit()
    table([describe(c, readers) for c in cases if c.result])
    emit()
    emit(f"targets: peak RSS <= {RSS_TARGET_MB} MB ((!) marks a miss), first dispatch <= {FIRST_DISPATCH_TARGET_S} s;")
    emit(f"flat = the last quarter's highest RSS sample within {FLAT_MB:.0f} MB of the first quarter's.")
    return 0


def run_all(cases: list[Case], args: argparse.Namespace, data: Path, s3_env: dict[str, str], logs: Path) -> None:
    """Run the cases in order, starting the celery workers once for the celery cases."""
    base = dict(os.environ)
    base.pop("DMAP_S3_ROOT", None)
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [base.get("PYTHONPATH")])])
    workers = conn = None
    try:
        for case in cases:
            env = dict(base)
            if case.celery:
                if workers is None:
                    workers, conn = start_workers(args)
                env.update(workers.env())
                env.pop("DMAP_S3_ROOT", None)
            if case.storage == "moto":
                env.update(s3_env)
            else:
                env["DMAP_S3_ROOT"] = str(data)
            local_results(data)
            emit(f"... {case.name}")
            try:
                run_case(case, env, args.sample, logs, args.profile)
            except RuntimeError as exc:  # one failed case does not lose the others' numbers
                case.result = {"error": str(exc).splitlines()[-1]}
            brief = {k: v for k, v in case.result.items() if k not in ("progress", "steady")}
            emit(f"    {json.dumps(brief)}")
    finally:
        if workers is not None:
            workers.stop()
        if conn is not None:
            conn.flushdb()


def start_workers(args: argparse.Namespace) -> tuple[Any, Any]:
    """Flush the benchmark's Redis database and start the ``dmap worker`` processes."""
    import redis

    from .harness import Workers
    from .tasks import BENCH_REDIS_URL

    conn = redis.Redis.from_url(BENCH_REDIS_URL)
    conn.flushdb()
    workers = Workers(args.workers, args.concurrency)
    workers.start(conn)
    emit(f"workers: {args.workers} x {args.concurrency} (prefork), queue {workers.queue}")
    return workers, conn


if __name__ == "__main__":
    raise SystemExit(main())

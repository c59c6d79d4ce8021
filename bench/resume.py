"""Resume benchmark: ``python -m bench.resume`` — how long a resumed reader takes to reach its cursor.

Exact command (about a minute the first time, most of it writing the 10,000,000-line file, which
later runs reuse)::

    . .venv/bin/activate && python -m bench.resume

Data: the ``--lines`` (10,000,000) JSONL manifest of :mod:`bench.scale_data` (about 580 MB) under
``--data`` (a ``DMAP_S3_ROOT`` folder, default ``$TMPDIR/dmap-bench-resume``; ``--clean`` removes
it at the end), and a ``--s3-lines`` (1,000,000) one in moto S3 (an in-process
``ThreadedMotoServer``; smaller because moto holds objects in memory, and a Range GET does not
depend on the object's size).

For each, the reader position of item ``--at`` (default: 1,000 lines before the end, the
9,999,000th line of the big file) is what an :class:`~dmap.readers.ItemStream` stores with the
coordinator's cursor, ``{"i": n, "o": byte offset, "l": line}``: the offset is found by counting
newlines in the file (setup, not timed). Measured, each the best of ``--repeat``:

* ``resume``: ``open_items(spec, storage, position=...)`` until its first item (one seek or HTTP
  Range GET), checked to be item ``--at`` with the right value;
* ``re-stream`` (what a resume cost before, and still costs a JSON array or a compressed object
  without random access): ``open_items(spec, storage, start=n)`` until its first item, once.

Target: the resumed 10,000,000-line reader reaches its cursor in <= 1 s. It prints numbers and
asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmap.readers import ItemStream, ReaderSpec, encode_position, open_items
from dmap.storage import Storage

from .scale_data import BUCKET, Manifest, moto_s3, s3_client

TARGET_S = 1.0
GET = "arn:aws:states:::s3:getObject"


def offset_of_line(path: Path, line: int) -> int:
    """The byte offset where 0-based line ``line`` of ``path`` starts (newlines counted in C)."""
    offset, seen = 0, 0
    with path.open("rb") as f:
        while chunk := f.read(8 * 1024 * 1024):
            n = chunk.count(b"\n")
            if seen + n < line:
                seen, offset = seen + n, offset + len(chunk)
                continue
            at = -1
            for _ in range(line - seen):
                at = chunk.index(b"\n", at + 1)
            return offset + at + 1
    raise ValueError(f"{path} has fewer than {line} lines")


def first_item(open_stream: Any) -> tuple[float, Any]:
    """Seconds from opening a stream to its first item, and the item."""
    started = time.perf_counter()
    stream: ItemStream = open_stream()
    item = next(stream)
    elapsed = time.perf_counter() - started
    stream.close()
    return elapsed, item


def measure(
    label: str, storage: Storage, key: str, path: Path, lines: int, at: int, repeat: int, compare: bool
) -> None:
    """Print the time to the first item of a resumed and (with ``compare``) of a re-streamed reader."""
    spec = ReaderSpec(resource=GET, bucket=BUCKET, key=key, input_type="JSONL")
    position = encode_position((at, {"o": offset_of_line(path, at), "l": at}))
    times = []
    for _ in range(repeat):
        elapsed, item = first_item(lambda: open_items(spec, storage, position=position))
        times.append(elapsed)
        if item.index != at or item.value.get("id") != at:
            raise SystemExit(f"{label}: the resumed reader yielded item {item.index} = {item.value}, not {at}")
    best = min(times)
    verdict = "meets" if best <= TARGET_S else "misses"
    print(f"{label:<28} {lines:>12,} lines  resume at {at:>12,}: {best * 1000:9.1f} ms  ({verdict} <= {TARGET_S:g} s)")
    if compare:
        elapsed, item = first_item(lambda: open_items(spec, storage, start=at))
        assert item.index == at
        print(f"{'':<28} {'':>12}        re-stream instead: {elapsed * 1000:9.1f} ms  ({elapsed / best:,.0f}x)")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.resume", description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines of the local JSONL manifest")
    parser.add_argument("--s3-lines", type=int, default=1_000_000, help="lines of the moto S3 one (0: skip S3)")
    parser.add_argument("--behind", type=int, default=1_000, help="resume this many lines before the end")
    parser.add_argument("--repeat", type=int, default=5, help="resumes timed per file (the best is shown)")
    parser.add_argument("--no-compare", dest="compare", action="store_false", help="skip the re-stream timing")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dmap-bench-resume")
    parser.add_argument("--clean", action="store_true", help="remove --data at the end")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the manifests, then time resumed readers on disk and in moto S3."""
    from dmap.storage.local import LocalStorage
    from dmap.storage.s3 import S3Storage

    args = parse(argv)
    try:
        big = Manifest("jsonl", args.lines, args.data)
        started = time.perf_counter()
        if big.ensure():
            print(
                f"wrote {big.path} ({big.path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.0f} s"
            )
        at = args.lines - args.behind
        measure(
            "local (DMAP_S3_ROOT)",
            LocalStorage(args.data),
            big.key,
            big.path,
            args.lines,
            at,
            args.repeat,
            args.compare,
        )
        if args.s3_lines > 0:
            small = Manifest("jsonl", args.s3_lines, args.data)
            small.ensure()
            with moto_s3() as env:
                client = s3_client(env)
                client.create_bucket(Bucket=BUCKET)
                client.upload_file(str(small.path), BUCKET, small.key)
                at = args.s3_lines - args.behind
                measure(
                    "moto S3 (Range GET)",
                    S3Storage(client),
                    small.key,
                    small.path,
                    args.s3_lines,
                    at,
                    args.repeat,
                    args.compare,
                )
    finally:
        if args.clean:
            shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()

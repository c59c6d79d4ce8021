"""A Map Run's activity over time: items finished per time bucket and a histogram of child durations.

This module owns the layout both run stores keep when a child finishes (the Lua ``finish`` in
``dmap/lua/_lib.lua`` follows the same rules): how wide a time bucket is, which histogram bucket a
duration falls in, and how a reader turns them into rates and percentiles. It does not read or
write a store. The record stays small on any run length: buckets widen as the run ages (1 s for
the first 10 minutes, 10 s until 2 hours, then 60 s: about 2,700 buckets a day), and durations are
counted in logarithmic buckets (four per doubling, so a percentile is known within about 19 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BUCKETS_PER_DOUBLING = 4
"""Histogram resolution: a bucket spans a factor of 2 ** (1/4) (about 19 %) of duration."""

_WIDTHS = ((600, 1), (7200, 10))
_LAST_WIDTH = 60


def bucket_width(age_seconds: int) -> int:
    """The width in seconds of the time bucket a completion ``age_seconds`` after the first one falls in."""
    for below, width in _WIDTHS:
        if age_seconds < below:
            return width
    return _LAST_WIDTH


def time_bucket(second: int, first_second: int) -> int:
    """The start (epoch seconds) of the bucket holding a completion at ``second``."""
    width = bucket_width(second - first_second)
    return second - second % width


def duration_bucket(milliseconds: float) -> int:
    """The histogram bucket of a child that ran ``milliseconds``."""
    return math.floor(BUCKETS_PER_DOUBLING * math.log2(max(milliseconds, 0) + 1))


def bucket_upper_ms(bucket: int) -> float:
    """The longest duration (ms) that falls in histogram ``bucket``."""
    return float(2 ** ((bucket + 1) / BUCKETS_PER_DOUBLING) - 1)


@dataclass(slots=True)
class RunActivity:
    """What a store holds about a run's activity (both stores return this shape).

    Attributes:
        first_second: Epoch second of the first completion (None before any).
        done: Bucket start (epoch seconds) -> items that reached a terminal status in it.
        failed: Bucket start -> items that FAILED or TIMED_OUT in it.
        durations: Histogram bucket -> children (that started and then finished) whose run fell in it.
    """

    first_second: int | None = None
    done: dict[int, int] = field(default_factory=dict)
    failed: dict[int, int] = field(default_factory=dict)
    durations: dict[int, int] = field(default_factory=dict)

    def note(self, now: float, items: int, failed: bool, ran_ms: float | None) -> None:
        """Count a child that finished at epoch ``now`` covering ``items`` (the in-process store's path)."""
        second = int(now)
        if self.first_second is None:
            self.first_second = second
        bucket = time_bucket(second, self.first_second)
        self.done[bucket] = self.done.get(bucket, 0) + items
        if failed:
            self.failed[bucket] = self.failed.get(bucket, 0) + items
        if ran_ms is not None:
            b = duration_bucket(ran_ms)
            self.durations[b] = self.durations.get(b, 0) + 1

    def copy(self) -> RunActivity:
        """A snapshot (the in-process store hands these out, never its own dicts)."""
        return RunActivity(self.first_second, dict(self.done), dict(self.failed), dict(self.durations))


def parse_fields(fields: dict[str, int]) -> RunActivity:
    """A :class:`RunActivity` from the Redis hash (``t0``, ``d<bucket>``, ``f<bucket>``, ``h<bucket>``)."""
    activity = RunActivity()
    for name, value in fields.items():
        kind, key = name[:1], name[1:]
        if name == "t0":
            activity.first_second = value
        elif kind == "d":
            activity.done[int(key)] = value
        elif kind == "f":
            activity.failed[int(key)] = value
        elif kind == "h":
            activity.durations[int(key)] = value
    return activity


def percentile_ms(durations: dict[int, int], fraction: float) -> float | None:
    """The duration (ms, a bucket's upper bound) below which ``fraction`` of the children finished; None if none."""
    total = sum(durations.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for bucket in sorted(durations):
        seen += durations[bucket]
        if seen >= rank:
            return bucket_upper_ms(bucket)
    return bucket_upper_ms(max(durations))


@dataclass(frozen=True, slots=True)
class RatePoint:
    """One point of the throughput chart: ``seconds`` after the first completion, items/s and failures/s."""

    seconds: float
    items_per_second: float
    failures_per_second: float


def rates(activity: RunActivity, *, points: int = 120, now: float | None = None) -> list[RatePoint]:
    """Items/s and failures/s over the run, in at most ``points`` equal slices from the first completion to ``now``.

    A slice is never narrower than the widest bucket inside it, so a 60 s bucket is not shown as a spike.
    ``now`` defaults to the last bucket's end (a finished run's chart ends with its last completion).
    """
    if activity.first_second is None or not activity.done:
        return []
    start = activity.first_second
    last = max(activity.done)
    end = max(float(last + bucket_width(last - start)), now if now is not None else 0.0)
    span = max(end - start, 1.0)
    width = max(span / points, float(bucket_width(int(span))), 1.0)
    slices = max(1, math.ceil(span / width))
    done, failed = [0] * slices, [0] * slices
    for source, into in ((activity.done, done), (activity.failed, failed)):
        for bucket, count in source.items():
            into[min(slices - 1, max(0, int((bucket - start) // width)))] += count
    out = []
    for i in range(slices):
        seconds = max(min(width, span - i * width), 1.0)  # the last slice may be shorter
        out.append(RatePoint(round(i * width + seconds, 3), done[i] / seconds, failed[i] / seconds))
    return out

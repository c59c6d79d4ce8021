"""Shared rate limits: the rate syntax, the token bucket (Lua on a real Redis, and in-process), the API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import dmap
from dmap.flow.hooks import ChildFlow, call_keys, waiting_stats
from dmap.flow.limits import NO_LIMIT, RESERVED, TOO_FAR, MemoryLimits, RedisLimits
from dmap.flow.rates import make_limit, parse_rate
from dmap.store import RunConfig
from dmap.store.memory import MemoryRunStore


def test_rates_are_read_per_second_minute_and_hour() -> None:
    assert parse_rate("50/s") == 50
    assert parse_rate("3000/m") == 50
    assert parse_rate("3600 / h") == 1
    for bad in ("50", "0/s", "-1/s", "5/day", "x/s"):
        with pytest.raises(dmap.ConfigurationError):
            parse_rate(bad)
    with pytest.raises(dmap.ConfigurationError):
        make_limit("k", "1/s", burst=0)


@pytest.fixture(params=["redis", "memory"])
def limits(request: pytest.FixtureRequest, real_redis: Any) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryLimits()
        return
    prefix = f"flowtest-{uuid.uuid4().hex[:8]}"
    yield RedisLimits(real_redis, prefix)
    for key in real_redis.scan_iter(f"{prefix}:*"):
        real_redis.delete(key)


def test_a_bucket_hands_each_caller_its_own_moment_burst_then_one_per_interval(limits: Any) -> None:
    # The waits below allow each call 5 ms: a busy machine can stall one call longer than that, so a
    # sequence of 13 calls that took 5 ms or more is taken again on a bucket of its own (the last try is
    # checked as is).
    for attempt in range(5):
        key = f"svc-{attempt}"
        limits.set(make_limit(key, "40/s", burst=3))
        started = time.monotonic()
        waits = [limits.take(key, 10_000) for _ in range(13)]
        if time.monotonic() - started < 0.005:
            break
    assert all(t.outcome == RESERVED for t in waits)
    assert [t.wait_ms for t in waits[:3]] == [0, 0, 0]
    # Then one token every 25 ms: the 13th is ten intervals after the burst (less the time the calls took).
    gaps = [b.wait_ms - a.wait_ms for a, b in zip(waits[3:], waits[4:], strict=False)]
    assert all(20 <= g <= 30 for g in gaps), gaps
    assert 200 <= waits[-1].wait_ms <= 250


def test_a_token_further_away_than_the_caller_waits_is_not_reserved(limits: Any) -> None:
    limits.set(make_limit("svc", "1/s"))
    assert limits.take("svc", 0).outcome == RESERVED
    far = limits.take("svc", 100)
    assert far.outcome == TOO_FAR and far.wait_ms > 100
    again = limits.take("svc", 100)  # nothing was reserved: the same token is still the next one
    assert again.outcome == TOO_FAR and abs(again.wait_ms - far.wait_ms) < 50


def test_limits_are_listed_changed_and_deleted(limits: Any) -> None:
    assert limits.take("none", 0).outcome == NO_LIMIT
    limits.set(make_limit("b", "3000/m", burst=5))
    limits.set(make_limit("a", "2/s"))
    assert [(x.key, x.rate, x.per_second, x.burst) for x in limits.all()] == [
        ("a", "2/s", 2, 1),
        ("b", "3000/m", 50, 5),
    ]
    assert limits.limited("a")
    assert limits.delete("a") and not limits.delete("a")
    assert [x.key for x in limits.all()] == ["b"]


def test_a_call_takes_tokens_of_its_function_by_arn_and_name_its_http_host_and_the_run_label() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:resize:live"
    assert call_keys(arn, None, {}, None) == [arn, "resize"]
    assert call_keys("arn:aws:states:::lambda:invoke", "resize", {}, "batch") == ["resize", "batch"]
    http = call_keys("arn:aws:states:::http:invoke", None, {"ApiEndpoint": "https://api.example.com:8443/v1"}, None)
    assert http == ["api.example.com:8443", "api.example.com"]
    assert call_keys("MyHandler", None, {}, None) == ["MyHandler"]


def test_the_python_api_sets_lists_and_deletes_limits_of_the_local_backend() -> None:
    key = f"api-{uuid.uuid4().hex[:8]}"
    limit = dmap.set_limit(key, "50/s", burst=2)
    try:
        assert (limit.key, limit.per_second, limit.burst) == (key, 50, 2)
        assert key in [x.key for x in dmap.list_limits()]
    finally:
        assert dmap.delete_limit(key)
    assert key not in [x.key for x in dmap.list_limits()]


def test_a_token_asked_for_a_later_moment_is_reserved_for_it_and_the_next_comes_after(limits: Any) -> None:
    limits.set(make_limit("svc", "10/s"))
    later = limits.take("svc", 10_000, 500)  # another key's token is due in 500 ms: this one no sooner
    assert later.outcome == RESERVED and later.wait_ms >= 500 and later.interval_ms == 100
    after = limits.take("svc", 10_000)
    assert after.wait_ms >= later.wait_ms + 50  # one interval after the reserved moment, less the time between
    assert limits.take("svc", 0, 500).outcome == TOO_FAR  # beyond the caller's horizon: nothing reserved


class _Oversleeping(ChildFlow):
    """A child on a busy machine: its first wait for a token ends ``extra`` seconds late."""

    def __init__(self, *args: Any, extra: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra = extra

    def _wait(self, seconds: float) -> None:
        super()._wait(seconds + self.extra)
        self.extra = 0.0


def test_a_child_that_wakes_too_late_for_its_token_takes_a_new_one_instead_of_bunching() -> None:
    store, limits = MemoryRunStore(), MemoryLimits()
    run = str(uuid.uuid4())
    store.create_run(run, RunConfig(max_concurrency=4))
    limits.set(make_limit("svc", "10/s"))  # a token every 100 ms; later than 50 ms is too late
    ChildFlow(store, run, 0, None, limits=limits).before_call("svc", None, {})  # the first token: now
    late = _Oversleeping(store, run, 1, None, limits=limits, extra=0.4)
    late.before_call("svc", None, {})  # reserved for +100 ms, woke at +500 ms: that token goes unused
    assert late.late_tokens >= 1
    assert waiting_stats(store, run)["lateTokens"] == late.late_tokens

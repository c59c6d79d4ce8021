"""Run-state scripts retried after a lost reply (a Redis restarted from its AOF just after running one).

A client that rides out an outage (:mod:`dmap.outage`) sends the same call again when the connection
broke before the reply came. The effect may already be applied: each script must then answer the same
or harmlessly, never grant, count or lose anything twice. Only the Redis stores run scripts.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dmap.store import RUN, STALE, ChildStatus, RunStore
from dmap.store.redis import RedisRunStore

from .conftest import LONG_MS, let_leases_expire, record, specs


@pytest.fixture
def redis_store(store: RunStore) -> RedisRunStore:
    """The Redis-backed stores only (fakeredis[lua] and the real server)."""
    if not isinstance(store, RedisRunStore):
        pytest.skip("only Redis stores run scripts that a client retries")
    return store


def test_an_acquire_sent_again_with_the_same_nonce_gets_the_same_grant_and_nothing_more(
    redis_store: RedisRunStore, make_run: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(max_concurrency=3)
    monkeypatch.setattr("dmap.store.redis.secrets.token_hex", lambda _n: "feed")
    first = redis_store.acquire(run, specs(0, 5), dispatch_lease_ms=LONG_MS)
    again = redis_store.acquire(run, specs(0, 5), dispatch_lease_ms=LONG_MS)  # the retry of a lost reply

    assert [(lease.child, lease.token) for lease in again.leases] == [
        (lease.child, lease.token) for lease in first.leases
    ]
    assert again.granted_new == first.granted_new == 3
    assert redis_store.counts(run).leases == 3
    assert redis_store.cursor(run)[1:] == (3, 3)
    monkeypatch.undo()
    later = redis_store.acquire(run, specs(3, 2), dispatch_lease_ms=LONG_MS)  # a new call: a new nonce
    assert later.leases == [] and later.held == 3


def test_a_completion_sent_again_counts_once(redis_store: RedisRunStore, make_run: Callable[..., str]) -> None:
    run = make_run(max_concurrency=2)
    (lease,) = redis_store.acquire(run, specs(0, 1), dispatch_lease_ms=LONG_MS).leases
    assert redis_store.start(run, 0, lease.token, lease_ms=LONG_MS).outcome == RUN
    assert redis_store.complete(run, 0, lease.token, ChildStatus.SUCCEEDED, record(0)).recorded
    assert not redis_store.complete(run, 0, lease.token, ChildStatus.SUCCEEDED, record(0)).recorded
    counts = redis_store.counts(run)
    assert (counts.items.succeeded, counts.items.running, counts.leases) == (1, 0, 0)


def test_a_start_sent_again_is_stale_and_the_lease_brings_the_child_back(
    redis_store: RedisRunStore, make_run: Callable[..., str]
) -> None:
    # The second answer is STALE: the worker drops the child, whose lease then expires and is re-granted
    # (one lease period and one attempt, never two runs at once).
    run = make_run(max_concurrency=2)
    (lease,) = redis_store.acquire(run, specs(0, 1), dispatch_lease_ms=LONG_MS).leases
    assert redis_store.start(run, 0, lease.token, lease_ms=1).outcome == RUN
    assert redis_store.start(run, 0, lease.token, lease_ms=1).outcome == STALE
    let_leases_expire()
    (again,) = redis_store.acquire(run, [], dispatch_lease_ms=LONG_MS).leases
    assert (again.child, again.attempt) == (0, 2)
    assert redis_store.counts(run).items.running == 0

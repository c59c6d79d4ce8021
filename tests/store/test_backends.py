"""What only one implementation can show: Redis keys, URLs and sizes; the memory store's clock."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.crc import key_slot

from dmap.errors import ConfigurationError
from dmap.keys import RUN_KEY_SUFFIXES, run_keys
from dmap.store import ChildStatus, RunConfig
from dmap.store.memory import MemoryRunStore
from dmap.store.redis import RedisRunStore

from .conftest import LONG_MS, record, specs


def test_every_key_of_a_run_hashes_to_one_cluster_slot() -> None:
    keys = run_keys("dmap", "arn:aws:states:local:0:mapRun:sm/label:1234")
    assert len(keys) == len(RUN_KEY_SUFFIXES)
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert keys[0] == "dmap:{arn:aws:states:local:0:mapRun:sm/label:1234}:run"


def test_from_url_passes_passwords_and_tls_to_redis_py() -> None:
    store = RedisRunStore.from_url("rediss://:s3cret@cache.example:6380/2", prefix="p")
    pool = store.client.connection_pool
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_class is redis.SSLConnection
    assert store.prefix == "p"
    store.close()


def test_from_url_reaches_a_real_redis(redis_url: str) -> None:
    store = RedisRunStore.from_url(redis_url)
    assert store.create_run("r", RunConfig(max_concurrency=1))
    assert store.config("r") == RunConfig(max_concurrency=1)
    store.delete_run("r")
    store.close()


def test_a_decoding_client_is_refused(fake_redis: Any) -> None:
    import fakeredis

    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisRunStore(fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True))


def test_child_statuses_take_four_bits_each(any_redis: Any) -> None:
    store = RedisRunStore(any_redis)
    store.create_run("r", RunConfig(max_concurrency=0))
    leases = store.acquire("r", specs(0, 1000), dispatch_lease_ms=LONG_MS).leases
    store.start("r", 999, leases[999].token, lease_ms=LONG_MS)
    assert any_redis.strlen(run_keys("dmap", "r")[1]) == 500
    assert store.statuses("r", 998, 3) == [ChildStatus.PENDING, ChildStatus.RUNNING, ChildStatus.PENDING]


def test_delete_run_leaves_no_key_behind(any_redis: Any) -> None:
    store = RedisRunStore(any_redis, prefix="del")
    store.create_run("r", RunConfig(max_concurrency=3))
    leases = store.acquire("r", specs(0, 3), dispatch_lease_ms=LONG_MS).leases
    store.start("r", 0, leases[0].token, lease_ms=LONG_MS)
    store.complete("r", 0, leases[0].token, ChildStatus.FAILED, record(0, "FAILED"))
    store.complete("r", 1, leases[1].token, ChildStatus.SUCCEEDED, record(1))
    assert any_redis.keys("del:*")
    store.delete_run("r")
    assert any_redis.keys("del:*") == []


def test_expire_run_sets_a_retention_on_every_key(any_redis: Any) -> None:
    store = RedisRunStore(any_redis)
    store.create_run("r", RunConfig(max_concurrency=3))
    leases = store.acquire("r", specs(0, 2), dispatch_lease_ms=LONG_MS).leases
    store.complete("r", 0, leases[0].token, ChildStatus.FAILED, record(0, "FAILED"))
    store.expire_run("r", 3600)
    ttls = [any_redis.ttl(k) for k in run_keys("dmap", "r") if any_redis.exists(k)]
    assert len(ttls) >= 6
    assert all(0 < ttl <= 3600 for ttl in ttls)


def test_the_memory_store_forgets_an_expired_run_on_its_own_clock() -> None:
    now = [100.0]
    store = MemoryRunStore(clock=lambda: now[0])
    store.create_run("r", RunConfig())
    store.expire_run("r", 60)
    now[0] += 59
    assert store.config("r") is not None
    now[0] += 2
    assert store.config("r") is None
    assert store.create_run("r", RunConfig())


def test_the_memory_store_reclaims_leases_on_its_injected_clock() -> None:
    now = [0.0]
    store = MemoryRunStore(clock=lambda: now[0])
    store.create_run("r", RunConfig(max_concurrency=1))
    lease = store.acquire("r", specs(0, 1), dispatch_lease_ms=1000).leases[0]
    now[0] += 0.999
    assert store.acquire("r", [], dispatch_lease_ms=1000).reclaimed == 0
    now[0] += 0.002
    again = store.acquire("r", [], dispatch_lease_ms=1000)
    assert (again.reclaimed, again.leases[0].attempt) == (1, 2)
    assert again.leases[0].token != lease.token


def test_a_long_redo_list_is_granted_in_bounded_steps_before_new_children(any_redis: Any) -> None:
    store = RedisRunStore(any_redis)
    store.create_run("r", RunConfig(max_concurrency=0, tolerated_failure_count=10**6))
    for lease in store.acquire("r", specs(0, 1001), dispatch_lease_ms=LONG_MS).leases:
        store.complete("r", lease.child, lease.token, ChildStatus.FAILED, record(lease.child, "FAILED"))
    assert store.reset_for_redrive("r") == 1001
    assert store.wait("r", 0) == "1"
    first = store.acquire("r", specs(1001, 1), dispatch_lease_ms=LONG_MS)
    assert (len(first.leases), first.granted_new) == (1000, 0)
    assert store.wait("r", 0) == "1"  # come back at once for the rest
    second = store.acquire("r", specs(1001, 1), dispatch_lease_ms=LONG_MS)
    assert [lease.child for lease in second.leases] == [1000, 1001]


def test_wait_outlasts_a_short_socket_timeout(redis_url: str) -> None:
    store = RedisRunStore.from_url(redis_url, socket_timeout=0.2)
    store.create_run("r", RunConfig(max_concurrency=1))
    assert store.wait("r", 500) is None
    store.abort("r", "stopped")
    assert store.wait("r", 500) == "ABORT"
    store.close()

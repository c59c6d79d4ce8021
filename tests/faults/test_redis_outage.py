"""A Redis restart under a detached run costs seconds, not the run (issue #16).

The run store and broker live in this test's own ``redis-server`` (AOF, ``appendfsync always``:
what Redis acknowledged survives a SIGKILL). The execution is detached: a worker runs its coordinator.
Redis is SIGKILLed mid-run and started again on the same port and AOF 2 s later, the workers left
running. Every Redis call of the coordinator and the workers retries for ``DMAP_REDIS_OUTAGE_SECONDS``
(:mod:`dmap.outage`), so the run goes on by itself once Redis is back: nothing lost, nothing counted
twice. With a budget shorter than the outage the coordinator hands the execution over instead
(RUNNING, its lease left to expire) and a worker's reaper resumes it: also nothing lost.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

import dmap
from dmap.config import Settings
from dmap.outage import RestartWatch, ride_out
from dmap.store.redis import RedisRunStore
from tests.integration import flows as iflows

from . import audit, flows, tools
from .conftest import FaultCluster, PrivateRedis

ITEMS = 3000
MAX_CONCURRENCY = 20
DOWN_S = 2.0
KILL_AT = 0.3
"""Kill Redis once this fraction of the items has run."""


def _start(cluster: FaultCluster, server: PrivateRedis, s3_client: Any, bucket: str, **env: str) -> tuple[str, str]:
    """Workers on ``server`` and a detached run submitted to them: ``(execution arn, map run id)``."""
    cluster.store_url = server.url
    cluster.lease_seconds = 5.0
    s3_client.put_object(Bucket=bucket, Key=flows.ITEMS_KEY, Body=flows.items_jsonl(ITEMS))
    cluster.extra_env.update(env)
    cluster.start_workers(2, concurrency=3)  # one slot of one of them runs the coordinator
    name = f"outage-{cluster.ns}"
    execution = dmap.run(
        flows.fault_map(bucket, max_concurrency=MAX_CONCURRENCY),
        input=flows.fault_input(cluster.ns),
        backend=cluster.celery(),
        name=name,
        wait=False,
    )
    assert execution.status == "RUNNING"
    return execution.execution_arn, tools.run_id_of(name)


def _restart(server: PrivateRedis, store: RedisRunStore, run_id: str) -> tuple[float, int]:
    """SIGKILL Redis, start it again ``DOWN_S`` later; ``(kill time, items succeeded as the AOF kept them)``."""
    server.kill()
    killed_at = time.monotonic()
    time.sleep(DOWN_S)
    server.start()
    return killed_at, store.counts(run_id).items.succeeded


def _finish(cluster: FaultCluster, store: RedisRunStore, arn: str, timeout: float) -> Any:
    """Wait until the execution is no longer RUNNING; its record."""
    journal = cluster.celery().journal
    cluster.wait_for(lambda: (journal.execution(arn) or _Running()).status != "RUNNING", "the run to end", timeout)
    return journal.execution(arn)


class _Running:
    status = "RUNNING"


def _through_a_restart(
    cluster: FaultCluster, server: PrivateRedis, arn: str, run_id: str, *, recover_timeout: float
) -> tuple[Any, float]:
    """Restart Redis (:func:`_restart`) once the run is under way and wait for the run to end.

    Returns ``(execution record, recovery seconds)``: the time to recover is from the SIGKILL until a
    child finishes again after the restart (within ``recover_timeout``).
    """
    store = RedisRunStore.from_url(server.url)
    try:
        cluster.wait_for(lambda: len(cluster.fcalls()) >= KILL_AT * ITEMS, "the run to be under way")
        killed_at, kept = _restart(server, store, run_id)
        cluster.wait_for(
            lambda: store.counts(run_id).items.succeeded > kept, "a child to finish again", recover_timeout
        )
        recovery = time.monotonic() - killed_at
        return _finish(cluster, store, arn, 180), recovery
    finally:
        store.close()


def _logs(cluster: FaultCluster) -> str:
    return "\n".join(w.log.read_text("utf-8", errors="replace") for w in cluster.workers)


@pytest.mark.slow
def test_a_redis_restart_under_a_detached_run_is_ridden_out_and_the_run_finishes_exactly(
    fault_cluster: FaultCluster, durable_redis: PrivateRedis, s3_client: Any, bucket: str
) -> None:
    cluster = fault_cluster
    started = time.monotonic()
    arn, run_id = _start(cluster, durable_redis, s3_client, bucket)
    execution, recovery = _through_a_restart(cluster, durable_redis, arn, run_id, recover_timeout=60)
    seconds = time.monotonic() - started

    (map_run,) = execution.map_runs
    found = audit.audit_results(s3_client, bucket, run_id, ITEMS)
    calls = cluster.fcalls()
    logs = _logs(cluster)
    audit.record(
        audit.Numbers(
            "3b Redis restart, detached",
            ITEMS,
            f"Redis SIGKILL, AOF always, down {DOWN_S:g} s, workers left running",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            recovery,
            seconds,
            f"{execution.status}{' after a hand-over' if 'handed over' in logs else ', ridden out'}",
        )
    )
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    found.check_clean()
    found.check_counts(map_run.item_counts)
    assert found.by_group == {"SUCCEEDED": ITEMS, "FAILED": 0, "PENDING": 0}
    assert set(calls) == set(range(ITEMS))
    # Ridden out: the coordinator that was running went on; nothing was recorded as lost or handed over.
    assert "could not record execution" not in logs
    assert "handed over" not in logs
    assert "resuming detached execution" not in logs


@pytest.mark.slow
def test_an_outage_longer_than_the_budget_hands_the_detached_run_over_and_a_reaper_resumes_it(
    fault_cluster: FaultCluster, durable_redis: PrivateRedis, s3_client: Any, bucket: str
) -> None:
    cluster = fault_cluster
    started = time.monotonic()
    arn, run_id = _start(cluster, durable_redis, s3_client, bucket, DMAP_REDIS_OUTAGE_SECONDS="0.5")
    execution, recovery = _through_a_restart(cluster, durable_redis, arn, run_id, recover_timeout=120)

    logs = _logs(cluster)
    calls = cluster.fcalls()
    found = audit.audit_results(s3_client, bucket, run_id, ITEMS)
    audit.record(
        audit.Numbers(
            "3c Redis restart, budget 0.5 s",
            ITEMS,
            f"Redis SIGKILL, AOF always, down {DOWN_S:g} s, DMAP_REDIS_OUTAGE_SECONDS=0.5",
            len(found.lost),
            len(found.double),
            sum(calls.values()) - len(calls),
            recovery,
            time.monotonic() - started,
            f"{execution.status} after a reaper resumed it",
        )
    )
    assert "handed over" in logs or "could not hand over" in logs, logs[-3000:]
    assert f"resuming detached execution {arn}" in logs
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    found.check_clean()
    found.check_counts(map_run.item_counts)
    assert found.by_group == {"SUCCEEDED": ITEMS, "FAILED": 0, "PENDING": 0}


def test_a_client_that_rides_out_outages_waits_for_a_restarted_redis(private_redis: PrivateRedis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    ride_out(client, 30)
    client.set("k", "before")
    private_redis.kill()
    restarter = threading.Timer(1.0, private_redis.start)
    restarter.start()
    try:
        assert client.get("k") == b"before"  # blocks through the outage: the AOF kept the value
        assert client.incr("n") == 1
    finally:
        restarter.join()
        client.close()


def test_a_client_gives_up_once_its_outage_budget_is_spent(private_redis: PrivateRedis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    ride_out(client, 0.3)
    client.ping()
    private_redis.kill()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    client.close()


def test_a_wrong_password_is_not_an_outage(private_redis: PrivateRedis) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("requirepass", "right")
    url = private_redis.url.replace("redis://", "redis://:wrong@")
    client = redis.Redis.from_url(url)
    ride_out(client, 600)  # an authentication error retried would hang here for ten minutes
    try:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    finally:
        client.close()
        redis.Redis.from_url(private_redis.url.replace("redis://", "redis://:right@")).config_set("requirepass", "")
        admin.close()


def test_the_outage_budget_is_a_setting_of_a_minute_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DMAP_REDIS_OUTAGE_SECONDS", raising=False)
    assert Settings().redis_outage_seconds == 60.0
    monkeypatch.setenv("DMAP_REDIS_OUTAGE_SECONDS", "7.5")
    assert Settings().redis_outage_seconds == 7.5


@pytest.mark.parametrize("server", ["store and broker", "broker of its own"])
def test_children_whose_messages_died_with_redis_are_sent_again_without_waiting_for_the_dispatch_lease(
    fault_cluster: FaultCluster, durable_redis: PrivateRedis, server: str
) -> None:
    # A worker blocked in BRPOP when Redis is SIGKILLed can lose the message Redis just popped for it: the
    # reply dies with the connection and nothing puts the message back. Found by a CI run in which the
    # restart tests above hung: the child waited for the dispatch lease, 10 minutes by default. The loss is
    # made deterministic here: the queued messages are deleted, then Redis is restarted, then a worker starts.
    # On a broker of its own (DMAP_BROKER_URL on another server) the run store never goes away: only the
    # broker's new run_id tells the coordinator.
    cluster = fault_cluster
    if server == "broker of its own":
        cluster.broker_url = durable_redis.url
    else:
        cluster.store_url = durable_redis.url
    backend = cluster.celery()
    name = f"lost-{cluster.ns}"
    run_id = tools.run_id_of(name)
    broker = redis.Redis.from_url(durable_redis.url)
    run = tools.Background(
        lambda: dmap.run(
            iflows.work_map(max_concurrency=3), input=iflows.work_input(cluster.ns, 3), backend=backend, name=name
        )
    )
    try:
        cluster.wait_for(
            lambda: broker.llen(cluster.queue) > 0 and backend.store.counts(run_id).leases == 3,
            "the three children's messages in the queue",
        )
        lost, _ = broker.pipeline().llen(cluster.queue).delete(cluster.queue).execute()  # one MULTI: exact
        assert lost > 0
        durable_redis.kill()
        time.sleep(1.0)
        durable_redis.start()
        cluster.start_workers(1, concurrency=1)
        execution = run.result(timeout=60)  # the dispatch lease is 600 s
    finally:
        broker.close()
        if not run.done():
            backend.store.abort(run_id, "stopped")
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == iflows.expected_output(3)
    assert cluster.calls() == {0: 1, 1: 1, 2: 1}


def test_a_restart_watch_skips_a_server_that_is_down_and_tells_its_restart_once_it_answers(
    private_redis: PrivateRedis,
) -> None:
    other = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1)
    private_redis.kill()
    watch = RestartWatch(other, every=0, owns=(other,))  # down at the start: its first answer is the baseline
    try:
        private_redis.start()
        assert watch.lost_since_last_look() is False
        private_redis.kill()
        assert watch.lost_since_last_look() is False  # no answer: no news, and no exception in the coordinator
        private_redis.start()
        assert watch.lost_since_last_look() is True
        assert watch.lost_since_last_look() is False
    finally:
        watch.close()


def test_a_restart_watch_tells_a_restarted_redis_once_and_a_quiet_one_never(private_redis: PrivateRedis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    ride_out(client, 30)
    watch = RestartWatch(client, every=0)
    try:
        assert watch.lost_since_last_look() is False
        private_redis.kill()
        private_redis.start()
        client.connection_pool.disconnect()  # an idle pooled connection: replaced without an error
        assert watch.lost_since_last_look() is True  # a new run_id, though no call of this client failed
        assert watch.lost_since_last_look() is False
    finally:
        client.close()

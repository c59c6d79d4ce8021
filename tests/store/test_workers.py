"""The worker registry's records and code hash, and what a submitter makes of them (no worker processes).

The same records run on fakeredis and a real redis-server (``any_redis``); the real-worker behaviour
is in ``tests/control/test_front_door.py``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from dmap.admission import ClusterRegistry, check_source, cluster_warnings
from dmap.errors import SourceNotReadable
from dmap.interpreter.tasks import Registry
from dmap.store.workers import WorkerBeacon, WorkerInfo, advertise, code_hash, read_workers, withdraw
from tests.definitions import distributed_map

PREFIX = "wtest"
FAN = distributed_map({"Work": {"Type": "Task", "Resource": "Work", "End": True}}, name="Fan")


def worker(pid: int, handlers: dict[str, str], *, queue: str = "dmap", concurrency: int = 2) -> WorkerInfo:
    return WorkerInfo(
        id=f"celery@h/{pid}",
        node="celery@h",
        host="h",
        pid=pid,
        queues=(queue,),
        concurrency=concurrency,
        version="0.1.0",
        started="2026-12-06T00:00:00.000Z",
        handlers=handlers,
    )


def _source(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


HANDLER = """
def handler(event, context):
    # a comment
    return {"v": event["v"] * 2, "ok": event.get("k") in {"a", "b", "c"}}
"""


def _hash_in_a_new_process(source: str) -> str:
    code = f"from dmap.store.workers import code_hash\n{source}\nprint(code_hash(handler))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_code_hash_is_the_same_in_another_process_and_ignores_comments_and_line_numbers() -> None:
    namespace: dict[str, Any] = {}
    exec(_source(HANDLER), namespace)
    here = code_hash(namespace["handler"])

    assert _hash_in_a_new_process(_source(HANDLER)) == here  # a fresh hash seed, same set constant
    assert _hash_in_a_new_process("\n\n" + _source(HANDLER).replace("# a comment", "# other")) == here
    assert _hash_in_a_new_process(_source(HANDLER).replace("* 2", "* 3")) != here
    assert len(here) == 12


def test_records_round_trip_and_expired_or_withdrawn_workers_drop_out(any_redis: Any) -> None:
    lasting, brief = worker(2, {"Work": "aaa"}), worker(1, {"Work": "bbb"})
    advertise(any_redis, PREFIX, lasting, ttl_seconds=60)
    advertise(any_redis, PREFIX, brief, ttl_seconds=60)

    assert read_workers(any_redis, PREFIX) == [brief, lasting]  # sorted by host and pid

    withdraw(any_redis, PREFIX, lasting.id)
    any_redis.delete(f"{PREFIX}:worker:{brief.id}")  # what an expired TTL leaves: an index entry alone
    assert read_workers(any_redis, PREFIX) == []
    assert any_redis.scard(f"{PREFIX}:workers") == 0  # pruned on read


def test_a_beacon_advertises_at_start_and_withdraws_at_stop(any_redis: Any) -> None:
    info = worker(3, {"Work": "ccc"})
    beacon = WorkerBeacon(any_redis, PREFIX, info, interval=0.05, ttl=5)

    beacon.start()
    try:
        assert read_workers(any_redis, PREFIX) == [info]
        time.sleep(0.2)  # several renewals; the record is still the one advertised
        assert read_workers(any_redis, PREFIX) == [info]
        assert 0 < any_redis.pttl(f"{PREFIX}:worker:{info.id}") <= 5000
    finally:
        beacon.stop()
    assert read_workers(any_redis, PREFIX) == []


def test_no_worker_is_a_warning_only_when_workers_would_run_something() -> None:
    inline = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}

    assert cluster_warnings(FAN, [], "q") == ["no dmap worker is listening on queue 'q'; start one with: dmap worker"]
    assert cluster_warnings(inline, [], "q") == []  # runs here entirely
    assert cluster_warnings(inline, [], "q", detached=True) != []  # a worker runs the whole execution


def test_workers_that_disagree_or_lack_a_handler_are_named() -> None:
    workers = [worker(1, {"Work": "aaa"}), worker(2, {"Work": "bbb"}), worker(3, {})]

    messages = cluster_warnings(FAN, workers, "q")

    assert "workers disagree on handler code: Work has 2 versions across workers (aaa: h:1; bbb: h:2)" in messages
    assert any(m.startswith("handler Work is not registered on 1 of 3 workers (h:3)") for m in messages)


def test_one_slot_in_all_cannot_run_a_detached_execution() -> None:
    messages = cluster_warnings(FAN, [worker(1, {"Work": "aaa"}, concurrency=1)], "q", detached=True)

    assert any("1 slot in all" in m for m in messages)


def test_the_cluster_registry_resolves_worker_handlers_and_says_where_each_is_registered() -> None:
    local = Registry()
    local.register("Here", lambda event, context: event)
    local.register("Both", lambda event, context: event)
    cluster = ClusterRegistry(local, [worker(1, {"Remote": "aaa", "Both": "bbb"})])

    assert cluster.resolve("arn:aws:lambda:us-east-1:123456789012:function:Remote") is not None
    assert cluster.names() == ["Both (here and on workers)", "Here (here)", "Remote (on workers)"]


def test_a_missing_or_unreadable_local_manifest_is_refused_and_a_present_one_made_absolute(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "items.json").write_text("[]", "utf-8")

    assert check_source("items.json", None) == str(tmp_path / "items.json")
    with pytest.raises(SourceNotReadable, match="does not exist") as missing:
        check_source("gone.json", None)
    with pytest.raises(SourceNotReadable, match="is a folder"):
        check_source(".", None)
    assert missing.value.source == "gone.json" and missing.value.code == "NoSuchKey"


def test_a_submitter_checks_resources_against_live_workers_but_needs_here_what_runs_here(redis_url: str) -> None:
    from dmap.api import prepare
    from dmap.backends.celery import CeleryBackend
    from dmap.config import Settings
    from dmap.errors import DefinitionError

    engine = CeleryBackend(Settings(redis_url=redis_url, broker_url=redis_url, queue="q"))
    try:
        advertise(engine.redis.client, engine.redis.prefix, worker(7, {"Work": "aaa"}, queue="q"), ttl_seconds=60)
        top_level = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "Work", "End": True}}}

        assert prepare(FAN, engine) is not None  # only the workers have Work, and only they run it
        assert prepare(top_level, engine, detached=True) is not None  # a worker runs the whole execution
        with pytest.raises(DefinitionError, match="runs in this process") as here:
            prepare(top_level, engine)
        nobody = copy.deepcopy(FAN)
        nobody["States"]["Fan"]["ItemProcessor"]["States"]["Work"]["Resource"] = "Nobody"
        with pytest.raises(DefinitionError, match=r"registered: .*Work \(on workers\)"):
            prepare(nobody, engine)
        assert [d.location for d in here.value.diagnostics] == ["/States/Work/Resource"]
    finally:
        engine.close()

"""dmap workers accept JSON messages only: a pickled message is refused, never decoded, never run.

The test puts two pickled messages on a worker's queue — one sent by a separate Celery app that
allows pickle, one pushed raw onto the Redis list — whose arguments hold a :class:`Tripwire` (its
*unpickling* sets a Redis key) for a task that sets another key when it *runs*. The worker must log
the refusal, set neither key, and go on running JSON children. The same task sent as JSON does set
its key, so the absence of the keys means something.
"""

from __future__ import annotations

import base64
import json
import pickle
import uuid

import pytest
import redis
from celery import Celery

import dmap

from .conftest import HARD_REDIS_URL, HardCluster
from .flows import distributed_map
from .handlers import Tripwire

pytestmark = pytest.mark.timeout(120)

REFUSED = "ContentDisallowed"


def pickle_sender(url: str) -> Celery:
    """A Celery app on ``url`` that sends (and would accept) pickle: what an attacker on the broker could use."""
    app = Celery("hardening-sender", broker=url)
    app.conf.update(task_serializer="pickle", accept_content=["pickle", "json"], broker_connection_retry=False)
    return app


def raw_pickle_message(queue: str, task: str, args: tuple[object, ...]) -> str:
    """A Celery protocol-2 message with a pickle body, as kombu's Redis transport stores it."""
    task_id = str(uuid.uuid4())
    body = pickle.dumps((args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}))
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "binary",
            "content-type": "application/x-python-serialize",
            "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "argsrepr": "", "retries": 0},
            "properties": {
                "correlation_id": task_id,
                "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": queue},
                "delivery_mode": 2,
                "delivery_tag": str(uuid.uuid4()),
                "priority": 0,
            },
        }
    )


def test_a_worker_refuses_pickled_messages_and_keeps_serving_json_children(
    hard_cluster: HardCluster, hard_redis: redis.Redis
) -> None:
    (worker,) = hard_cluster.start_workers(1, concurrency=1)
    tag = uuid.uuid4().hex[:8]
    ran, unpickled, raw_ran, raw_unpickled, control = (f"hard:{tag}:{name}" for name in ("ran", "un", "rr", "ru", "ok"))
    sender = pickle_sender(HARD_REDIS_URL)
    try:
        sender.send_task(
            "hardening.set_key",
            args=(HARD_REDIS_URL, ran, Tripwire(HARD_REDIS_URL, unpickled)),
            queue=hard_cluster.queue,
            serializer="pickle",
        )
        hard_redis.lpush(
            hard_cluster.queue,
            raw_pickle_message(
                hard_cluster.queue,
                "hardening.set_key",
                (HARD_REDIS_URL, raw_ran, Tripwire(HARD_REDIS_URL, raw_unpickled)),
            ),
        )
        sender.send_task(
            "hardening.set_key", args=(HARD_REDIS_URL, control), queue=hard_cluster.queue, serializer="json"
        )
    finally:
        sender.close()

    hard_cluster.wait_for(lambda: hard_redis.exists(control) == 1, "the JSON message to run")
    hard_cluster.wait_for(lambda: hard_cluster.log_text().count(REFUSED) >= 2, "both refusals in the worker log")
    assert hard_redis.get(control) == b"ran"
    for key in (ran, unpickled, raw_ran, raw_unpickled):
        assert hard_redis.exists(key) == 0, f"{key} was set: a pickled message was decoded or run"
    assert "application/x-python-serialize" in hard_cluster.log_text()

    execution = dmap.run(distributed_map(), input=[{"i": i} for i in range(5)], backend=hard_cluster.celery())

    assert execution.status == "SUCCEEDED", (execution.cause, worker.tail())
    assert [entry["event"] for entry in execution.output] == [{"i": i} for i in range(5)]
    assert worker.proc.poll() is None
    for key in (ran, unpickled, raw_ran, raw_unpickled):
        assert hard_redis.exists(key) == 0

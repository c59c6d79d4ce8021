"""Top-level task tokens in a real Redis: a coordinator that restarts finds its task, and its answer, again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import dmap
from dmap.backends.celery import CeleryBackend
from dmap.callbacks import RedisTokens
from dmap.config import Settings
from dmap.interpreter.callbacks import TokenRequest


@pytest.fixture
def backend(redis_url: str) -> Iterator[CeleryBackend]:
    """A celery backend on the test database (no worker needed: top-level tasks wait in their thread)."""
    made = CeleryBackend(Settings(redis_url=redis_url, broker_url=redis_url))
    yield made
    made.close()


def _request() -> TokenRequest:
    return TokenRequest("arn:aws:states:local:0:execution:m:e", "Ask", "arn", timeout=None, heartbeat=None)


def test_a_restarted_coordinator_reaches_the_same_task_and_takes_the_answer_sent_meanwhile(
    backend: CeleryBackend,
) -> None:
    key = "arn:aws:states:local:0:execution:m:e|Ask|2||0"
    before = RedisTokens(backend)
    token = before.token_for(key, "arn:aws:states:local:0:execution:m:e", "Ask")
    assert before.open(token, _request())  # the first run: its handler is called

    dmap.send_task_success(token, '{"while": "down"}', backend=backend)  # the coordinator died; the answer comes

    after = RedisTokens(backend)  # the execution runs again from its start, in a new process
    assert after.token_for(key, "arn:aws:states:local:0:execution:m:e", "Ask") == token
    assert not after.open(token, _request())  # recorded before: the handler is not called again
    assert after.wait(token, _request(), lambda: None).result() == {"while": "down"}
    with pytest.raises(dmap.TaskTimedOut):
        dmap.send_task_success(token, "{}", backend=backend)

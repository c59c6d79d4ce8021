"""The callback pattern on the local backend: ``.waitForTaskToken``, the Send verbs, heartbeats and timeouts.

Handlers hand their ``$$.Task.Token`` to a queue the test reads, and the test answers with the
public verbs from its own thread — the way an external system answers on AWS.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.interpreter import registry
from dmap.interpreter.callbacks import new_token

CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    """A private local backend."""
    made = LocalBackend(Settings(), threads=8)
    yield made
    made.close()


@pytest.fixture
def inbox() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A handler (by name) that puts each event it gets, the token inside, on a queue."""
    name = f"Inbox{uuid.uuid4().hex[:8]}"
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    registry.register(name, lambda event, context: events.put(event))
    yield name, events
    registry.unregister(name)


def _waiting(function: str, **fields: Any) -> dict[str, Any]:
    state = {
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {"FunctionName": function, "Payload": {"token.$": "$$.Task.Token", "n.$": "$.n"}},
        "ResultPath": "$.answer",
        "End": True,
    }
    state.update(fields)
    return {"StartAt": "Ask", "States": {"Ask": state}}


def _in_background(definition: Any, backend: LocalBackend, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: box.setdefault("execution", dmap.run(definition, backend=backend, **kwargs)), daemon=True
    )
    thread.start()
    return thread, box


def test_send_task_success_completes_the_task_with_its_output(backend: LocalBackend, inbox: Any) -> None:
    name, events = inbox
    thread, box = _in_background(_waiting(name), backend, input={"n": 7})
    event = events.get(timeout=30)
    assert event["n"] == 7
    dmap.send_task_success(event["token"], json.dumps({"approved": True}))
    thread.join(30)
    execution = box["execution"]
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"n": 7, "answer": {"approved": True}}


def test_send_task_failure_is_an_error_catch_sees(backend: LocalBackend, inbox: Any) -> None:
    name, events = inbox
    definition = _waiting(name, Catch=[{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "Done"}])
    definition["States"]["Ask"].pop("End")
    definition["States"]["Ask"]["Next"] = "Done"
    definition["States"]["Done"] = {"Type": "Succeed"}
    thread, box = _in_background(definition, backend, input={"n": 1})
    dmap.send_task_failure(events.get(timeout=30)["token"], "Rejected", "the reviewer said no")
    thread.join(30)
    assert box["execution"].output == {"n": 1, "error": {"Error": "Rejected", "Cause": "the reviewer said no"}}


def test_a_missing_heartbeat_is_a_heartbeat_timeout_and_retry_gets_a_new_token(
    backend: LocalBackend, inbox: Any
) -> None:
    name, events = inbox
    retry = [{"ErrorEquals": ["States.HeartbeatTimeout"], "MaxAttempts": 1, "IntervalSeconds": 1}]
    thread, box = _in_background(_waiting(name, HeartbeatSeconds=1, Retry=retry), backend, input={"n": 2})
    first = events.get(timeout=30)["token"]
    second = events.get(timeout=30)["token"]  # the retry, after the first attempt's heartbeat ran out
    assert first != second
    with pytest.raises(dmap.TaskTimedOut):
        dmap.send_task_success(first, "{}")
    thread.join(30)
    execution = box["execution"]
    assert (execution.status, execution.error) == ("FAILED", "States.HeartbeatTimeout")


def test_a_heartbeat_keeps_the_task_alive_until_its_answer(backend: LocalBackend, inbox: Any) -> None:
    name, events = inbox
    thread, box = _in_background(_waiting(name, HeartbeatSeconds=1), backend, input={"n": 3})
    token = events.get(timeout=30)["token"]
    beats = threading.Event()
    for _ in range(8):  # ~1.6 s in all: past one HeartbeatSeconds, alive thanks to the beats (0.8 s to spare each)
        dmap.send_task_heartbeat(token)
        beats.wait(0.2)
    dmap.send_task_success(token, '"done"')
    thread.join(30)
    assert box["execution"].output == {"n": 3, "answer": "done"}


def test_timeout_seconds_bounds_the_whole_wait(backend: LocalBackend, inbox: Any) -> None:
    name, _ = inbox
    execution = dmap.run(_waiting(name, TimeoutSeconds=1), backend=backend, input={"n": 4})
    assert (execution.status, execution.error) == ("FAILED", "States.Timeout")


def test_the_verbs_say_what_is_wrong_with_a_token_or_an_output(backend: LocalBackend, inbox: Any) -> None:
    name, events = inbox
    with pytest.raises(dmap.InvalidToken):
        dmap.send_task_success("not-a-token", "{}")
    with pytest.raises(dmap.TaskDoesNotExist):
        dmap.send_task_success(new_token("m", "arn:x", "S"), "{}")
    thread, box = _in_background(_waiting(name), backend, input={"n": 5})
    token = events.get(timeout=30)["token"]
    with pytest.raises(dmap.InvalidOutput):
        dmap.send_task_success(token, "{not json")
    dmap.send_task_success(token, "[1]")
    with pytest.raises(dmap.TaskTimedOut):
        dmap.send_task_failure(token, "Late")
    thread.join(30)
    assert box["execution"].output["answer"] == [1]


def test_jsonata_reads_the_token_from_states_context(backend: LocalBackend, inbox: Any) -> None:
    name, events = inbox
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": CALLBACK,
                "Arguments": {"FunctionName": name, "Payload": {"token": "{% $states.context.Task.Token %}"}},
                "Output": "{% $states.result %}",
                "End": True,
            }
        },
    }
    thread, box = _in_background(definition, backend)
    dmap.send_task_success(events.get(timeout=30)["token"], {"via": "jsonata"})
    thread.join(30)
    assert box["execution"].output == {"via": "jsonata"}


def test_children_of_a_distributed_map_wait_for_their_tokens_and_the_counts_add_up(
    backend: LocalBackend, inbox: Any
) -> None:
    name, events = inbox
    processor = _waiting(name)
    processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {"Type": "Map", "ItemProcessor": processor, "ToleratedFailureCount": 5, "End": True},
        },
    }
    items = [{"n": i} for i in range(8)]
    thread, box = _in_background(definition, backend, input=items)
    for _ in items:
        event = events.get(timeout=30)
        if event["n"] % 4 == 3:
            dmap.send_task_failure(event["token"], "No", f"item {event['n']}")
        else:
            dmap.send_task_success(event["token"], {"double": event["n"] * 2})
    thread.join(60)
    execution = box["execution"]
    assert execution.status == "SUCCEEDED"
    [map_run] = execution.map_runs
    assert (map_run.item_counts["succeeded"], map_run.item_counts["failed"]) == (6, 2)
    assert [o["answer"]["double"] for o in execution.output if "answer" in o] == [0, 2, 4, 8, 10, 12]

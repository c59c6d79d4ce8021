"""SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat over the AWS JSON 1.0 protocol of ``dmap serve``.

The app runs on uvicorn in a thread of this process on a local backend (so the execution it answers
waits in this process too) and a real boto3 ``stepfunctions`` client calls it; every AWS error code
of the three operations is produced.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.exceptions import ClientError

import dmap
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.interpreter import registry
from dmap.interpreter.callbacks import new_token
from dmap.server.app import create_app


@pytest.fixture
def api(tmp_path: Any) -> Iterator[tuple[Any, LocalBackend]]:
    """A boto3 stepfunctions client of the app served on a private local backend."""
    backend = LocalBackend(Settings(home=str(tmp_path)), threads=4)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(backend=backend), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    client = boto3.client(
        "stepfunctions",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    yield client, backend
    server.should_exit = True
    thread.join(10)
    backend.close()


def _code(call: Any) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def test_the_three_operations_answer_a_waiting_task_and_say_aws_errors(api: tuple[Any, LocalBackend]) -> None:
    client, backend = api
    name = f"Api{uuid.uuid4().hex[:8]}"
    tokens: queue.Queue[str] = queue.Queue()
    registry.register(name, lambda event, context: tokens.put(event["token"]))
    try:
        definition = {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {"FunctionName": name, "Payload": {"token.$": "$$.Task.Token"}},
                    "HeartbeatSeconds": 60,
                    "End": True,
                }
            },
        }
        box: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: box.update(e=dmap.run(definition, backend=backend)), daemon=True)
        thread.start()
        token = tokens.get(timeout=30)
        client.send_task_heartbeat(taskToken=token)
        assert _code(lambda: client.send_task_success(taskToken=token, output="{oops")) == "InvalidOutput"
        client.send_task_success(taskToken=token, output='{"ok": 1}')
        thread.join(30)
        assert box["e"].output == {"ok": 1}
        assert _code(lambda: client.send_task_failure(taskToken=token, error="Late")) == "TaskTimedOut"
    finally:
        registry.unregister(name)
    assert _code(lambda: client.send_task_heartbeat(taskToken="garbage")) == "InvalidToken"
    unknown = new_token("m", "arn:x", "S")
    assert _code(lambda: client.send_task_success(taskToken=unknown, output="{}")) == "TaskDoesNotExist"

"""GetExecutionHistory over AWS's JSON 1.0 protocol: botocore's output shape, paging, errors.

The app runs in-process (httpx over its ASGI interface); every response body is checked
against botocore's ``GetExecutionHistoryOutput`` so any SDK can parse it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import botocore.loaders
import httpx
import pytest
from starlette.applications import Starlette

import dmap
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.server.app import create_app

MODEL = botocore.loaders.Loader().load_service_model("stepfunctions", "service-2")
SHAPES = MODEL["shapes"]
_SCALARS = {"string": str, "integer": int, "long": int, "boolean": bool, "timestamp": (int, float)}


def check_shape(value: Any, shape_name: str, where: str = "$") -> None:
    """Fail unless ``value`` fits botocore's shape: known members, required ones present, right JSON types."""
    shape = SHAPES[shape_name]
    kind = shape["type"]
    if kind == "structure":
        assert isinstance(value, dict), f"{where}: not an object"
        members = shape["members"]
        assert set(value) <= set(members), f"{where}: unknown members {set(value) - set(members)}"
        for name in shape.get("required", []):
            assert name in value, f"{where}: missing required {name}"
        for name, item in value.items():
            check_shape(item, members[name]["shape"], f"{where}.{name}")
    elif kind == "list":
        assert isinstance(value, list), f"{where}: not a list"
        for index, item in enumerate(value):
            check_shape(item, shape["member"]["shape"], f"{where}[{index}]")
    else:
        assert isinstance(value, _SCALARS[kind]) and not (kind != "boolean" and isinstance(value, bool)), where
        if "enum" in shape:
            assert value in shape["enum"], f"{where}: {value!r} not in the enum"


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    engine = LocalBackend(Settings())
    yield engine
    engine.close()


@pytest.fixture
def client(backend: LocalBackend) -> Starlette:
    return create_app(backend=backend, settings=Settings())


def call(client: Starlette, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {
        "X-Amz-Target": "AWSStepFunctions.GetExecutionHistory",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/states/aws4_request, ...",
    }

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client), base_url="http://dmap") as http:
            return await http.post("/", content=json.dumps(body), headers=headers)

    response = asyncio.run(post())
    return response.status_code, response.json()


def external(arn: str) -> str:
    return arn.replace("arn:aws:states:local:000000000000:", "arn:aws:states:eu-west-1:123456789012:")


def test_pages_of_a_distributed_map_history_fit_botocores_shape(client: Starlette, backend: LocalBackend) -> None:
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Next": "M"},
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "C",
                    "States": {"C": {"Type": "Pass", "End": True}},
                },
                "End": True,
            },
        },
    }
    execution = dmap.run(definition, input=[1, 2], backend=backend)
    arn = external(execution.execution_arn)
    events: list[dict[str, Any]] = []
    body: dict[str, Any] = {"executionArn": arn, "maxResults": 4, "reverseOrder": True}
    while True:
        status, page = call(client, body)
        assert status == 200, page
        check_shape(page, "GetExecutionHistoryOutput")
        events.extend(page["events"])
        if "nextToken" not in page:
            break
        body["nextToken"] = page["nextToken"]
    assert [e["id"] for e in events] == list(range(10, 0, -1))
    assert isinstance(events[0]["timestamp"], float)
    run = next(e for e in events if e["type"] == "MapRunStarted")["mapRunStartedEventDetails"]["mapRunArn"]
    assert run.startswith("arn:aws:states:eu-west-1:123456789012:mapRun:")

    status, bare = call(client, {"executionArn": arn, "includeExecutionData": False})
    check_shape(bare, "GetExecutionHistoryOutput")
    assert "input" not in bare["events"][0]["executionStartedEventDetails"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"executionArn": "arn:aws:states:eu-west-1:123456789012:execution:dmap:nope"}, "ExecutionDoesNotExist"),
        ({"executionArn": "not-an-arn"}, "InvalidArn"),
        ({"executionArn": "arn:aws:states:eu-west-1:123456789012:execution:dmap:x", "maxResults": 1001}, "Validation"),
        ({}, "ValidationException"),
    ],
)
def test_errors_carry_aws_codes(client: Starlette, body: dict[str, Any], code: str) -> None:
    status, error = call(client, body)
    assert status == 400
    assert error["__type"].startswith(f"com.amazonaws.sfn#{code}")


def test_a_token_of_another_order_is_an_invalid_token(client: Starlette, backend: LocalBackend) -> None:
    execution = dmap.run({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, backend=backend)
    arn = external(execution.execution_arn)
    _, page = call(client, {"executionArn": arn, "maxResults": 1})
    status, error = call(
        client, {"executionArn": arn, "maxResults": 1, "nextToken": page["nextToken"], "reverseOrder": True}
    )
    assert (status, error["__type"]) == (400, "com.amazonaws.sfn#InvalidToken")

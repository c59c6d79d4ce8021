"""``arn:aws:states:::http:invoke`` against a real HTTP server on 127.0.0.1, through ``dmap.run``."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

import dmap
from dmap.integrations import http_invoke

from .support import cause_of, chain, task

HTTP = "arn:aws:states:::http:invoke"
CONNECTION = {"ConnectionArn": "arn:aws:events:us-east-1:123456789012:connection/example/1"}


def call(parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return chain(("Call", task(HTTP, {"Authentication": CONNECTION, **parameters}, **fields)))


def test_a_get_sends_query_parameters_and_returns_the_parsed_json_response(http_server: str, enable: Any) -> None:
    enable("http")
    parameters = {
        "ApiEndpoint": f"{http_server}/items",
        "Method": "GET",
        "QueryParameters": {"currency": "usd", "tag": ["a", "b"], "q": "two words"},
        "Headers": {"X-Trace": "abc"},
    }

    execution = dmap.run(call(parameters))

    assert execution.status == "SUCCEEDED", execution.cause
    out = execution.output
    assert out["StatusCode"] == 200
    assert out["StatusText"] == "OK"
    assert out["ResponseBody"]["method"] == "GET"
    assert out["ResponseBody"]["path"] == "/items"
    assert out["ResponseBody"]["query"] == {"currency": ["usd"], "tag": ["a", "b"], "q": ["two words"]}
    assert out["ResponseBody"]["headers"]["x-trace"] == "abc"
    assert out["Headers"]["content-type"] == ["application/json"]
    assert out["Headers"]["x-echo"] == ["one", "two"]


def test_a_post_sends_the_request_body_as_compact_json(http_server: str, enable: Any) -> None:
    enable("http")
    parameters = {
        "ApiEndpoint": f"{http_server}/orders",
        "Method": "POST",
        "RequestBody": {"Card": {"Number.$": "$.card", "Name": "Jo"}},
    }

    execution = dmap.run(call(parameters), input={"card": "1234"})

    assert execution.status == "SUCCEEDED", execution.cause
    echoed = execution.output["ResponseBody"]
    assert echoed["method"] == "POST"
    assert echoed["body"] == '{"Card":{"Number":"1234","Name":"Jo"}}'
    assert echoed["headers"]["content-type"] == "application/json; charset=UTF-8"


def test_a_url_encoded_body_follows_the_array_format(http_server: str, enable: Any) -> None:
    enable("http")
    parameters = {
        "ApiEndpoint": f"{http_server}/form",
        "Method": "POST",
        "Headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "RequestBody": {"description": "Monthly subscription", "metadata": {"order": "x"}, "array": ["a", "b"]},
        "Transform": {"RequestBodyEncoding": "URL_ENCODED", "RequestEncodingOptions": {"ArrayFormat": "INDICES"}},
    }

    execution = dmap.run(call(parameters))

    assert execution.output["ResponseBody"]["body"] == (
        "description=Monthly%20subscription&metadata%5Border%5D=x&array%5B0%5D=a&array%5B1%5D=b"
    )


@pytest.mark.parametrize(
    ("array_format", "encoded"),
    [
        ("INDICES", "a%5B0%5D=x&a%5B1%5D=y"),
        ("REPEAT", "a=x&a=y"),
        ("COMMAS", "a=x,y"),
        ("BRACKETS", "a%5B%5D=x&a%5B%5D=y"),
    ],
)
def test_each_array_format_encodes_as_documented(array_format: str, encoded: str) -> None:
    assert http_invoke.form_encode({"a": ["x", "y"]}, array_format) == encoded


def test_a_text_response_is_kept_as_text(http_server: str, enable: Any) -> None:
    enable("http")

    execution = dmap.run(call({"ApiEndpoint": f"{http_server}/text", "Method": "GET"}))

    assert execution.output["ResponseBody"] == "plain words"


def test_a_server_error_fails_with_its_status_code_error_and_the_response_as_cause(
    http_server: str, enable: Any
) -> None:
    enable("http")

    execution = dmap.run(call({"ApiEndpoint": f"{http_server}/fail", "Method": "DELETE"}))

    assert execution.status == "FAILED"
    assert execution.error == "States.Http.StatusCode.500"
    response = json.loads(cause_of(execution))
    assert response["StatusCode"] == 500
    assert response["StatusText"] == "Internal Server Error"
    assert response["ResponseBody"]["method"] == "DELETE"


def test_a_status_error_can_be_caught_by_its_name(http_server: str, enable: Any) -> None:
    enable("http")
    catch = [{"ErrorEquals": ["States.Http.StatusCode.404"], "ResultPath": "$.error", "Next": "NotThere"}]
    definition = chain(
        ("Call", task(HTTP, {"ApiEndpoint": f"{http_server}/missing", "Method": "GET"}, Catch=catch, Next="Found")),
        ("Found", {"Type": "Fail", "Error": "Unexpected"}),
        ("NotThere", {"Type": "Pass"}),
    )

    execution = dmap.run(definition)

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["error"]["Error"] == "States.Http.StatusCode.404"


def test_a_closed_port_fails_with_states_http_socket(enable: Any) -> None:
    with socket.socket() as probe:  # bound then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    enable("http")

    execution = dmap.run(call({"ApiEndpoint": f"http://127.0.0.1:{port}/x", "Method": "GET"}))

    assert execution.status == "FAILED"
    assert execution.error == "States.Http.Socket"
    assert f"GET http://127.0.0.1:{port}/x failed" in cause_of(execution)


def test_no_response_within_the_limit_fails_with_states_http_socket(
    http_server: str, enable: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_invoke, "HTTP_TIMEOUT_SECONDS", 0.3)  # AWS's 60 s, shortened for the test
    enable("http")

    execution = dmap.run(call({"ApiEndpoint": f"{http_server}/slow", "Method": "GET"}))

    assert execution.error == "States.Http.Socket"
    assert "did not complete within 0.3 seconds" in cause_of(execution)


def test_a_header_aws_refuses_fails_with_states_runtime(http_server: str, enable: Any) -> None:
    enable("http")

    execution = dmap.run(call({"ApiEndpoint": http_server, "Method": "GET", "Headers": {"X-Amz-Date": "now"}}))

    assert execution.error == "States.Runtime"
    assert "the header 'X-Amz-Date' cannot be set in an HTTP Task" in cause_of(execution)


def test_a_binary_response_fails_with_states_runtime(http_server: str, enable: Any) -> None:
    enable("http")

    execution = dmap.run(call({"ApiEndpoint": f"{http_server}/image", "Method": "GET"}))

    assert execution.error == "States.Runtime"
    assert "unsupported content type 'image/png'" in cause_of(execution)


def test_timeout_seconds_shorter_than_the_http_limit_fails_with_states_timeout(http_server: str, enable: Any) -> None:
    enable("http")
    parameters = {"ApiEndpoint": f"{http_server}/slow", "Method": "GET"}

    execution = dmap.run(chain(("Call", task(HTTP, parameters, TimeoutSeconds=1))))

    assert execution.error == "States.Timeout"


def test_arguments_of_a_jsonata_task_are_the_request(http_server: str, enable: Any) -> None:
    enable("http")
    arguments = {"ApiEndpoint": "{% $states.input.url & '/j' %}", "Method": "PUT", "RequestBody": {"n": "{% 1 + 1 %}"}}
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": HTTP, "Arguments": arguments, "End": True}},
    }

    execution = dmap.run(definition, input={"url": http_server})

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["ResponseBody"]["method"] == "PUT"
    assert execution.output["ResponseBody"]["body"] == '{"n":2}'


def test_a_redirect_is_not_followed(http_server: str, enable: Any) -> None:
    enable("http")

    execution = dmap.run(call({"ApiEndpoint": f"{http_server}/moved", "Method": "GET"}))

    assert execution.error == "States.Http.StatusCode.302"
    assert json.loads(cause_of(execution))["Headers"]["location"] == ["/items"]

"""Integrations are off unless enabled: a definition that needs one fails before its run starts."""

from __future__ import annotations

from typing import Any

import pytest

import dmap
from dmap import integrations
from dmap.errors import DefinitionError

from .support import chain, task


def diagnostics(definition: dict[str, Any]) -> list[Any]:
    with pytest.raises(DefinitionError) as failure:
        dmap.run(definition)
    return failure.value.diagnostics


@pytest.mark.parametrize(
    ("resource", "parameters"),
    [
        ("arn:aws:states:::aws-sdk:s3:getObject", {"Bucket": "b", "Key": "k"}),
        ("arn:aws:states:::s3:putObject", {"Bucket": "b", "Key": "k", "Body": "x"}),
        ("arn:aws:states:::http:invoke", {"ApiEndpoint": "http://127.0.0.1:9/", "Method": "GET"}),
    ],
)
def test_a_disabled_integration_is_a_definition_error_before_the_run(
    resource: str, parameters: dict[str, Any], enable: Any
) -> None:
    enable("")

    [found] = diagnostics(chain(("Call", task(resource, parameters))))

    assert found.code == "INTEGRATION_NOT_ENABLED"
    assert found.location == "/States/Call/Resource"
    assert "DMAP_INTEGRATIONS=" in found.message and "not enabled" in found.message


def test_enabling_one_aws_service_leaves_the_others_off(enable: Any) -> None:
    enable("aws-sdk:s3")

    assert integrations.resolve("arn:aws:states:::aws-sdk:s3:listObjectsV2") is not None
    assert integrations.resolve("arn:aws:states:::aws-sdk:dynamodb:getItem") is None
    assert integrations.resolve("arn:aws:states:::s3:getObject") is None
    assert integrations.resolve("arn:aws:states:::http:invoke") is None


def test_the_setting_is_read_at_call_time(enable: Any) -> None:
    enable("http")
    assert integrations.resolve("arn:aws:states:::http:invoke") is not None

    enable("s3")
    assert integrations.resolve("arn:aws:states:::http:invoke") is None


def test_a_misspelled_setting_is_named_in_the_reason(enable: Any) -> None:
    enable("htpp")

    reason = integrations.disabled_reason("arn:aws:states:::http:invoke")

    assert "htpp is not an integration name" in reason


@pytest.mark.parametrize(
    ("resource", "explained"),
    [
        ("arn:aws:states:::aws-sdk:s3:listObjectsV3", "has no action 'listObjectsV3' (did you mean 'listObjectsV2'"),
        ("arn:aws:states:::aws-sdk:dynamodbb:getItem", "unknown AWS SDK service 'dynamodbb' (did you mean 'dynamodb'"),
        ("arn:aws:states:::aws-sdk:stepfunctions:startExecution", "(did you mean 'sfn'?)"),
        ("arn:aws:states:::aws-sdk:s3:getObject.waitForTaskToken", "request-response only"),
        ("arn:aws:states:::s3:listObjectsV2", "use arn:aws:states:::aws-sdk:s3:listObjectsV2"),
    ],
)
def test_an_unknown_or_unsupported_integration_is_reported_before_the_run(
    resource: str, explained: str, enable: Any
) -> None:
    enable("aws-sdk,s3,http")

    [found] = diagnostics(chain(("Call", task(resource, {}))))

    assert explained in found.message
    assert integrations.unavailable_code(resource) == "INTEGRATION_NOT_SUPPORTED"

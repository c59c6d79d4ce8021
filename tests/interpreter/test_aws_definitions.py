"""Definitions written for AWS behave as on AWS: Jayway JSONPath corner cases and ``lambda:invoke``'s result.

AWS Step Functions evaluates JSONPath with Jayway JsonPath: ``$.[0]`` is ``$[0]``, and a union of
fields that ends a path (``['bucket','key']``) is one object holding those fields, per element
after a wildcard. ``arn:aws:states:::lambda:invoke`` returns the Lambda Invoke response with the
SDK's HTTP metadata (``SdkHttpMetadata``, ``SdkResponseMetadata``) around the ``Payload``.
"""

from __future__ import annotations

from typing import Any

import dmap.asl
from dmap.interpreter import TaskContext

from .support import Harness, single

INVOKE = "arn:aws:states:::lambda:invoke"


def test_a_dot_before_an_index_validates_and_reads_the_element_as_on_aws(sfn: Harness) -> None:
    definition = single({"Type": "Pass", "Parameters": {"first.$": "$.[0]", "rest.$": "$.[1:]"}})
    assert [d for d in dmap.asl.validate(definition) if d.severity == "ERROR"] == []
    result = sfn.run(definition, [{"id": 1}, {"id": 2}, {"id": 3}])
    assert result.output == {"first": {"id": 1}, "rest": [{"id": 2}, {"id": 3}]}


def test_a_field_union_after_a_wildcard_gives_one_object_per_element_as_jayway_does(sfn: Harness) -> None:
    items = [{"bucket": "b1", "key": "k1", "size": 1}, {"bucket": "b2", "key": "k2"}, {"bucket": "b3"}]
    definition = single({"Type": "Pass", "Parameters": {"r.$": "$[*]['bucket','key']", "one.$": "$[0]['key','size']"}})
    result = sfn.run(definition, items)
    assert result.output == {
        "r": [{"bucket": "b1", "key": "k1"}, {"bucket": "b2", "key": "k2"}, {"bucket": "b3"}],
        "one": {"key": "k1", "size": 1},
    }


def _request_id(event: Any, context: TaskContext) -> Any:
    return {"seen": context.aws_request_id}


def test_lambda_invoke_returns_the_sdk_metadata_aws_returns(sfn: Harness) -> None:
    sfn.task("Fn")(_request_id)
    definition = single(
        {
            "Type": "Task",
            "Resource": INVOKE,
            "Parameters": {"FunctionName": "Fn", "Payload.$": "$"},
            "ResultSelector": {
                "code.$": "$.SdkHttpMetadata.HttpStatusCode",
                "request.$": "$.SdkResponseMetadata.RequestId",
                "header.$": "$.SdkHttpMetadata.HttpHeaders['x-amzn-RequestId']",
                "all.$": "$.SdkHttpMetadata.AllHttpHeaders['Content-Type']",
                "version.$": "$.ExecutedVersion",
                "status.$": "$.StatusCode",
                "payload.$": "$.Payload",
            },
        }
    )
    out = sfn.run(definition, {}).output
    seen = out["payload"]["seen"]
    assert out == {
        "code": 200,
        "request": seen,
        "header": seen,
        "all": ["application/json"],
        "version": "$LATEST",
        "status": 200,
        "payload": {"seen": seen},
    }


def test_lambda_invoke_in_jsonata_exposes_the_same_response_to_output(sfn: Harness) -> None:
    sfn.task("Fn")(_request_id)
    definition = single(
        {
            "Type": "Task",
            "QueryLanguage": "JSONata",
            "Resource": INVOKE,
            "Arguments": {"FunctionName": "Fn", "Payload": "{% $states.input %}"},
            "Output": "{% [$states.result.SdkHttpMetadata.HttpStatusCode, $states.result.SdkResponseMetadata.RequestId"
            " = $states.result.Payload.seen] %}",
        }
    )
    assert sfn.run(definition, {}).output == [200, True]


def test_a_numeric_qualifier_is_the_executed_version(sfn: Harness) -> None:
    sfn.task("Fn")(_request_id)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:Fn:7"
    definition = single({"Type": "Task", "Resource": INVOKE, "Parameters": {"FunctionName": arn}})
    out = sfn.run(definition, {}).output
    assert (out["ExecutedVersion"], out["SdkHttpMetadata"]["HttpHeaders"]["X-Amz-Executed-Version"]) == ("7", "7")


def test_a_lambda_arn_of_another_partition_resolves_to_the_function_name(sfn: Harness) -> None:
    sfn.task("Fn")(_request_id)
    arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:Fn"
    definition = single({"Type": "Task", "Resource": arn})
    assert dmap.asl.validate(definition) == []
    assert "seen" in sfn.run(definition, {}).output

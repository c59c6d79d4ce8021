"""``arn:aws:states:::aws-sdk:*`` through boto3, run by ``dmap.run`` against moto's S3 over HTTP."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

import dmap
from dmap.integrations import aws_sdk, naming

from .support import cause_of, chain, task

SDK = "arn:aws:states:::aws-sdk:"


def test_put_get_list_and_head_an_object_through_the_sdk_integration(s3_env: str, bucket: str, enable: Any) -> None:
    enable("aws-sdk")
    definition = chain(
        (
            "Put",
            task(SDK + "s3:putObject", {"Bucket.$": "$.bucket", "Key": "a/b.txt", "Body": "hello"}, ResultPath="$.put"),
        ),
        ("Get", task(SDK + "s3:getObject", {"Bucket.$": "$.bucket", "Key": "a/b.txt"}, ResultPath="$.get")),
        ("List", task(SDK + "s3:listObjectsV2", {"Bucket.$": "$.bucket", "Prefix": "a/"}, ResultPath="$.list")),
        ("Head", task(SDK + "s3:headObject", {"Bucket.$": "$.bucket", "Key": "a/b.txt"}, ResultPath="$.head")),
    )

    execution = dmap.run(definition, input={"bucket": bucket})

    assert execution.status == "SUCCEEDED", execution.cause
    out = execution.output
    etag = '"5d41402abc4b2a76b9719d911017c592"'  # MD5 of "hello"
    assert out["put"]["ETag"] == etag
    assert "ResponseMetadata" not in out["put"]
    assert out["get"]["Body"] == "hello"
    assert out["get"]["ContentLength"] == 5
    assert out["get"]["ETag"] == etag
    assert out["get"]["LastModified"].endswith("Z") and "T" in out["get"]["LastModified"]
    [listed] = out["list"]["Contents"]
    assert listed["Key"] == "a/b.txt" and listed["Size"] == 5 and listed["ETag"] == etag
    assert isinstance(listed["LastModified"], str)
    assert out["list"]["KeyCount"] == 1
    assert out["head"]["ContentLength"] == 5 and out["head"]["ETag"] == etag


def test_a_json_body_is_stored_as_compact_json(s3_env: str, bucket: str, s3_client: Any, enable: Any) -> None:
    enable("aws-sdk:s3")
    definition = chain(("Put", task(SDK + "s3:putObject", {"Bucket": bucket, "Key": "j", "Body": {"a": [1, 2]}})))

    execution = dmap.run(definition)

    assert execution.status == "SUCCEEDED", execution.cause
    assert s3_client.get_object(Bucket=bucket, Key="j")["Body"].read() == b'{"a":[1,2]}'


def test_a_missing_key_fails_with_the_aws_error_name_and_cause(s3_env: str, bucket: str, enable: Any) -> None:
    enable("aws-sdk")
    definition = chain(("Get", task(SDK + "s3:getObject", {"Bucket": bucket, "Key": "nope"})))

    execution = dmap.run(definition)

    assert execution.status == "FAILED"
    assert execution.error == "S3.NoSuchKeyException"
    assert cause_of(execution).startswith(
        "The specified key does not exist. (Service: S3, Status Code: 404, Request ID: "
    )


def test_the_aws_error_name_is_what_catch_matches(s3_env: str, bucket: str, enable: Any) -> None:
    enable("aws-sdk")
    catch = [{"ErrorEquals": ["S3.NoSuchKeyException"], "ResultPath": "$.error", "Next": "Missing"}]
    definition = chain(
        ("Head", task(SDK + "s3:headObject", {"Bucket": bucket, "Key": "nope"}, Catch=catch, Next="Found")),
        ("Found", {"Type": "Fail", "Error": "Unexpected"}),
        ("Missing", {"Type": "Pass"}),
    )

    execution = dmap.run(definition)

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["error"]["Error"] == "S3.NoSuchKeyException"


def test_a_missing_bucket_fails_with_no_such_bucket(s3_env: str, enable: Any) -> None:
    enable("aws-sdk")
    definition = chain(("List", task(SDK + "s3:listObjectsV2", {"Bucket": "no-such-bucket-here"})))

    execution = dmap.run(definition)

    assert execution.error == "S3.NoSuchBucketException"


def test_an_unknown_parameter_fails_like_aws_with_states_runtime(s3_env: str, bucket: str, enable: Any) -> None:
    enable("aws-sdk")
    definition = chain(("Get", task(SDK + "s3:getObject", {"Bucket": bucket, "Key": "k", "Colour": "red"})))

    execution = dmap.run(definition)

    assert execution.error == "States.Runtime"
    assert cause_of(execution).endswith(
        'could not be used to start the Task: [The field "Colour" is not supported by Step Functions]'
    )


def test_an_unreachable_endpoint_is_an_sdk_client_exception(monkeypatch: pytest.MonkeyPatch, enable: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    enable("aws-sdk")
    definition = chain(("List", task(SDK + "s3:listObjectsV2", {"Bucket": "b"})))

    execution = dmap.run(definition)

    assert execution.error == "S3.SdkClientException"
    assert f"127.0.0.1:{port}" in cause_of(execution)


def test_pascal_case_parameters_reach_camel_case_members() -> None:
    shape = aws_sdk.service_model("stepfunctions").operation_model("StartExecution").input_shape

    request = aws_sdk.to_request({"StateMachineArn": "arn:sm", "Input": {"a": 1}, "Name": "n"}, shape)

    # Input is a string member: a JSON value is sent as compact JSON, as Step Functions does.
    assert request == {"stateMachineArn": "arn:sm", "input": '{"a":1}', "name": "n"}


def test_map_keys_inside_parameters_and_results_are_left_alone() -> None:
    operation = aws_sdk.service_model("dynamodb").operation_model("GetItem")
    key = {"id": {"S": "1"}, "lowercase_name": {"N": "2"}}

    request = aws_sdk.to_request({"TableName": "t", "Key": key}, operation.input_shape)
    result = aws_sdk.from_response({"Item": key, "ResponseMetadata": {}}, operation.output_shape)

    assert request == {"TableName": "t", "Key": key}
    assert result == {"Item": key}


def test_results_get_pascal_case_keys_and_iso_timestamps() -> None:
    from datetime import UTC, datetime

    shape = aws_sdk.service_model("stepfunctions").operation_model("StartExecution").output_shape
    when = datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)

    result = aws_sdk.from_response({"executionArn": "arn:x", "startDate": when}, shape)

    assert result == {"ExecutionArn": "arn:x", "StartDate": "2024-01-02T03:04:05.120Z"}


@pytest.mark.parametrize(
    ("service_id", "expected"),
    [
        ("S3", "S3"),
        ("DynamoDB", "DynamoDb"),
        ("SFN", "Sfn"),
        ("ACM PCA", "AcmPca"),
        ("CloudWatch Logs", "CloudWatchLogs"),
    ],
)
def test_service_names_follow_the_java_sdk(service_id: str, expected: str) -> None:
    assert naming.service_name(service_id) == expected


@pytest.mark.parametrize(
    ("service", "code", "expected"),
    [
        ("s3", "NoSuchKey", "S3.NoSuchKeyException"),
        ("s3", "SlowDown", "S3.S3Exception"),
        ("dynamodb", "ConditionalCheckFailedException", "DynamoDb.ConditionalCheckFailedException"),
        ("stepfunctions", "ExecutionDoesNotExist", "Sfn.ExecutionDoesNotExistException"),
    ],
)
def test_error_names_follow_the_step_functions_convention(service: str, code: str, expected: str) -> None:
    assert naming.error_name(aws_sdk.service_model(service), code) == expected


def test_step_functions_service_names_map_to_boto3_names() -> None:
    assert [naming.boto_service(n) for n in ("s3", "sfn", "eventbridge", "cloudwatchlogs", "acmpca")] == [
        "s3",
        "stepfunctions",
        "events",
        "logs",
        "acm-pca",
    ]
    assert naming.boto_service("stepfunctions") is None  # AWS would refuse boto3's spelling


def test_a_result_is_json_text_all_the_way_down(s3_env: str, bucket: str, enable: Any) -> None:
    enable("aws-sdk")
    definition = chain(("List", task(SDK + "s3:listBuckets", {})))

    execution = dmap.run(definition)

    assert execution.status == "SUCCEEDED", execution.cause
    assert bucket in [b["Name"] for b in execution.output["Buckets"]]
    json.dumps(execution.output, allow_nan=False)  # raises if anything is not JSON

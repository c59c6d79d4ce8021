"""``arn:aws:states:::aws-sdk:<service>:<action>`` through boto3, shaped like Step Functions' integration.

This module owns one AWS SDK call: finding the boto3 operation of a Resource (``s3:listObjectsV2``
-> ``s3.list_objects_v2``, ``sfn:startExecution`` -> ``stepfunctions.start_execution``), turning
the Task's PascalCase parameters into the operation's members, and the response into what Step
Functions returns. It does not decide whether the integration is enabled (the package does).

Parameters are matched to the operation's input members case-insensitively, as Step Functions
accepts ``StateMachineArn`` for boto3's ``stateMachineArn``; an unknown field fails like AWS
(``States.Runtime``: ``The field "X" is not supported by Step Functions``). A JSON value given where
the model wants text is sent as compact JSON (an SQS ``MessageBody`` object), and where it wants
bytes as its UTF-8 (a ``Body`` string). Results drop ``ResponseMetadata`` and get PascalCase keys;
timestamps become ISO-8601 strings (``2024-01-02T03:04:05Z``, as Step Functions prints them),
streamed bodies become text (``GetObject``'s ``Body``; at most the payload limit is read), other
bytes become base64. Errors are named like AWS (``S3.NoSuchKeyException``, see :mod:`.naming`) with
the Java SDK's cause wording: ``<message> (Service: S3, Status Code: 404, Request ID: ...)``; a
client-side failure (no connection, no credentials) is ``<Service>.SdkClientException``.

Clients come from boto3's own environment (``AWS_ENDPOINT_URL_S3``, ``AWS_PROFILE``...; region
``us-east-1`` when none is configured), one per service and process, shared by threads (botocore
clients are thread-safe); a changed ``AWS_*`` environment makes a new one.
"""

from __future__ import annotations

import difflib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from ..errors import ErrorName
from .common import IntegrationError, compact_json, integration_error, iso_instant, json_safe, read_capped, text_of
from .naming import boto_service, error_name, service_name, suggestions

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError
    from botocore.model import ServiceModel, Shape

DEFAULT_REGION = "us-east-1"

_lock = threading.Lock()
_clients: dict[str, tuple[tuple[Any, ...], BaseClient]] = {}


def client(service: str) -> BaseClient:
    """The process's boto3 client of ``service`` (boto3's name), made from boto3's environment."""
    stamp = (os.getpid(), tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    found = _clients.get(service)
    if found is not None and found[0] == stamp:
        return found[1]
    with _lock:  # boto3 sessions are not thread-safe; clients are
        found = _clients.get(service)
        if found is None or found[0] != stamp:
            import boto3

            session = boto3.session.Session()
            found = (stamp, session.client(service, region_name=session.region_name or DEFAULT_REGION))  # type: ignore[call-overload]
            _clients[service] = found
        return found[1]


@lru_cache(maxsize=64)
def service_model(service: str) -> ServiceModel:
    """botocore's model of ``service`` (boto3's name), loaded once per process."""
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@dataclass(frozen=True, slots=True)
class AwsSdkCall:
    """A callable Task handler for one SDK operation.

    Attributes:
        boto_service: boto3's service name (``stepfunctions``).
        operation: The operation (``StartExecution``).
        service: The Java SDK's service name, which prefixes error names (``Sfn``).
    """

    boto_service: str
    operation: str
    service: str

    def __call__(self, payload: Any, context: Any) -> Any:
        """Call the operation with the Task's parameters; the result as Step Functions returns it."""
        from botocore import xform_name
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        sdk = client(self.boto_service)
        operation = sdk.meta.service_model.operation_model(self.operation)
        state = str(getattr(context, "state_name", ""))
        params = {} if payload is None else payload
        try:
            request = to_request(params, operation.input_shape) if operation.input_shape is not None else {}
            response = getattr(sdk, xform_name(self.operation))(**request)
            # Inside the try: a streamed body is read here, and reading it can fail like the call.
            return from_response(response, operation.output_shape, state)
        except _Unusable as exc:
            raise _runtime(params, str(exc)) from None
        except ClientError as exc:
            raise self._service_error(exc, sdk.meta.service_model) from None
        except ParamValidationError as exc:
            raise _runtime(params, str(exc).replace("\n", " ")) from None
        except BotoCoreError as exc:
            raise integration_error(f"{self.service}.SdkClientException", str(exc)) from None

    def _service_error(self, exc: ClientError, model: ServiceModel) -> IntegrationError:
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        code = str(error.get("Code") or status or "")
        name = error_name(model, code, operation=self.operation, status=status)
        details = [f"Service: {self.service}", f"Status Code: {status}", f"Request ID: {meta.get('RequestId') or ''}"]
        if meta.get("HostId"):
            details.append(f"Extended Request ID: {meta['HostId']}")
        return integration_error(name, f"{error.get('Message') or code} ({', '.join(details)})")


@lru_cache(maxsize=512)
def handler(service: str, action: str) -> AwsSdkCall:
    """The handler of ``aws-sdk:<service>:<action>``.

    Args:
        service: Step Functions' service name (``s3``, ``dynamodb``, ``sfn``, ``eventbridge``...).
        action: The API action in camelCase (``listObjectsV2``).

    Raises:
        LookupError: The service or action does not exist (the message says what would).
    """
    boto = boto_service(service)
    if boto is None:
        close = suggestions(service)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise LookupError(
            f"unknown AWS SDK service {service!r}{hint}; Step Functions names services like the modules of "
            "the AWS SDK for Java v2: s3, dynamodb, sqs, sns, sfn, eventbridge, cloudwatchlogs, secretsmanager..."
        )
    model = service_model(boto)
    operation = _operation(model, action)
    if operation is None:
        wanted = action[:1].upper() + action[1:]
        close = [c[:1].lower() + c[1:] for c in difflib.get_close_matches(wanted, model.operation_names, n=3)]
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise LookupError(f"the AWS SDK service {service!r} has no action {action!r}{hint}")
    return AwsSdkCall(boto, operation, service_name(model.service_id))


def _operation(model: ServiceModel, action: str) -> str | None:
    wanted = action[:1].upper() + action[1:]
    if wanted in model.operation_names:
        return wanted
    return next((op for op in model.operation_names if op.lower() == action.lower()), None)


class _Unusable(Exception):
    """Raised when a parameter cannot be given to the operation (an unknown field, a wrong shape)."""


def _runtime(params: Any, problem: str) -> IntegrationError:
    text = compact_json(params) if _is_json(params) else repr(params)
    return integration_error(
        ErrorName.RUNTIME, f"The Parameters '{text}' could not be used to start the Task: [{problem}]"
    )


def _is_json(value: Any) -> bool:
    try:
        compact_json(value)
    except (TypeError, ValueError):
        return False
    return True


def _fold(name: str) -> str:
    return name.replace("_", "").lower()


def to_request(value: Any, shape: Shape, path: str = "") -> Any:
    """Task parameters as the operation's members (botocore validates types and required fields).

    Raises:
        _Unusable: A field the operation does not have, or an object/array where the model wants another.
    """
    kind = shape.type_name
    if value is None or getattr(shape, "is_document_type", False):
        return value
    if kind == "structure":
        if not isinstance(value, dict):
            raise _Unusable(f'The field "{path or "Parameters"}" must be an object')
        members = cast(dict[str, Any], shape.members)  # type: ignore[attr-defined]
        folded = {_fold(name): name for name in members}
        request: dict[str, Any] = {}
        for key, item in value.items():
            name = key if key in members else folded.get(_fold(key))
            if name is None:
                raise _Unusable(f'The field "{key}" is not supported by Step Functions')
            request[name] = to_request(item, members[name], f"{path}.{key}" if path else key)
        return request
    if kind == "list":
        if not isinstance(value, list):
            raise _Unusable(f'The field "{path}" must be an array')
        return [to_request(item, shape.member, f"{path}[{i}]") for i, item in enumerate(value)]  # type: ignore[attr-defined]
    if kind == "map":
        if not isinstance(value, dict):
            raise _Unusable(f'The field "{path}" must be an object')
        return {k: to_request(v, shape.value, f"{path}.{k}") for k, v in value.items()}  # type: ignore[attr-defined]
    if kind == "string" and not isinstance(value, str):
        return compact_json(value)
    if kind == "blob" and not isinstance(value, bytes):
        return (value if isinstance(value, str) else compact_json(value)).encode("utf-8")
    return value


def from_response(value: Any, shape: Shape | None, state: str = "") -> Any:
    """A boto3 response as Step Functions returns it: PascalCase keys, JSON values, no ResponseMetadata."""
    if value is None:
        return None
    kind = shape.type_name if shape is not None else ""
    if kind == "structure" and isinstance(value, dict) and not getattr(shape, "is_document_type", False):
        members = cast(dict[str, Any], shape.members)  # type: ignore[union-attr]
        return {
            key[:1].upper() + key[1:]: from_response(item, members.get(key), state)
            for key, item in value.items()
            if key != "ResponseMetadata"
        }
    if kind == "list" and isinstance(value, list):
        return [from_response(item, shape.member, state) for item in value]  # type: ignore[union-attr]
    if kind == "map" and isinstance(value, dict):
        return {str(k): from_response(v, shape.value, state) for k, v in value.items()}  # type: ignore[union-attr]
    if hasattr(value, "read"):
        return text_of(read_capped(cast(BinaryIO, value), "the response body", state))
    if kind == "timestamp" and hasattr(value, "isoformat"):
        return iso_instant(value)
    return json_safe(value)

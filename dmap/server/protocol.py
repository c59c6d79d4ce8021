"""AWS's JSON 1.0 protocol: ``POST /`` with ``X-Amz-Target: AWSStepFunctions.<Operation>``.

Each operation is a plain function ``(Call, request body) -> response body`` registered with
:func:`operation`; this module turns HTTP into calls and errors into AWS's error documents
(``{"__type": "com.amazonaws.sfn#<Code>", "message": …}``), which every AWS SDK parses.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..errors import (
    ConfigurationError,
    DefinitionError,
    DmapError,
    ExecutionAlreadyExists,
    ExecutionNotRedrivable,
    InvalidName,
    InvalidStateError,
    NotFoundError,
)
from . import arns
from .shapes import check_error, check_response

log = logging.getLogger("dmap.server")

CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "AWSStepFunctions."
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/")


class ApiError(DmapError):
    """An error the API returns to its caller as AWS does: a code (``InvalidArn``...), a message, a status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True, slots=True)
class Call:
    """What an operation knows about its request: the backend it works on, the settings, the caller's region."""

    backend: Any
    settings: Settings
    region: str
    access_key: str | None

    @property
    def account(self) -> str:
        """The account id of the ARNs this call returns (``DMAP_ACCOUNT_ID``)."""
        return self.settings.account_id

    def external(self, arn: str) -> str:
        """An ARN of the journal as this caller sees it (its region, our account)."""
        return arn.replace(arns.INTERNAL_PREFIX, arns.external_prefix(self.region, self.account), 1)

    def arn(self, body: dict[str, Any], field: str, *resource_types: str) -> str:
        """The journal's ARN named by request field ``field``: any region and account, one of ``resource_types``.

        Raises:
            ApiError: ``ValidationException`` when the field is missing, ``InvalidArn`` when it is not
                an ARN of one of those resource types.
        """
        value = required(body, field)
        parsed = arns.parse(value) if isinstance(value, str) else None
        if parsed is None:
            raise ApiError("InvalidArn", f"Invalid Arn: 'Invalid ARN prefix: {value}'")
        kind, rest = parsed
        if kind not in resource_types:
            raise ApiError("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {kind}'")
        return arns.internal(kind, rest)


Operation = Callable[[Call, dict[str, Any]], dict[str, Any]]

#: Every operation the server answers, by AWS's name.
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    """Register a function as the handler of the AWS operation ``name``."""

    def register(function: Operation) -> Operation:
        OPERATIONS[name] = function
        return function

    return register


def required(body: dict[str, Any], field: str) -> Any:
    """A request member the model requires (an SDK checks it first; a hand-made request may not).

    Raises:
        ApiError: ``ValidationException`` in AWS's words when it is absent.
    """
    value = body.get(field)
    if value is None:
        raise ApiError(
            "ValidationException",
            f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: "
            "Member must not be null",
        )
    return value


def error_document(error: ApiError) -> Response:
    """The HTTP response AWS sends for an error."""
    body = {"__type": f"com.amazonaws.sfn#{error.code}", "message": error.message}
    return Response(json.dumps(body), status_code=error.status, media_type=CONTENT_TYPE)


def as_api_error(exc: DmapError) -> ApiError:
    """The AWS error a dmap error stands for (operations raise :class:`ApiError` where the code depends on them)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ExecutionAlreadyExists):
        # AWS's message: the CLI's advice (--name, dmap stop-execution) means nothing to an SDK caller.
        return ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{exc.execution_arn}'")
    if isinstance(exc, InvalidName):
        return ApiError("InvalidName", str(exc))
    if isinstance(exc, ExecutionNotRedrivable):
        return ApiError("ExecutionNotRedrivable", str(exc))
    if isinstance(exc, DefinitionError):
        return ApiError("InvalidDefinition", definition_message(exc))
    if isinstance(exc, NotFoundError):
        if exc.kind.startswith("map run"):
            return ApiError("ResourceNotFound", f"Resource not found: '{exc.arn}'")
        if exc.kind.startswith("execution"):
            return ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{exc.arn}'")
    if isinstance(exc, InvalidStateError):
        return ApiError("ValidationException", str(exc))
    if isinstance(exc, ConfigurationError):
        return ApiError("ValidationException", str(exc))
    return ApiError("ServiceUnavailable", str(exc), 503)  # infrastructure (Redis, storage): the SDK retries it


def definition_message(exc: DefinitionError) -> str:
    """AWS's InvalidDefinition message, with dmap's diagnostics (code, message, JSON-pointer location) inside."""
    errors = [d for d in exc.diagnostics if d.severity == "ERROR"]
    problems = "; ".join(f"{d.code}: {d.message} at {d.location or '/'}" for d in errors)
    return f"Invalid State Machine Definition: '{problems or exc}'"


def caller(request: Request, default_region: str) -> tuple[str, str | None]:
    """The region and access key id of a request, from its SigV4 ``Authorization`` header (never checked here)."""
    found = _CREDENTIAL.search(request.headers.get("authorization", ""))
    return (found.group(2), found.group(1)) if found else (default_region, None)


async def handle(request: Request, backend: Any, settings: Settings, default_region: str) -> Response:
    """Answer one API request."""
    target = request.headers.get("x-amz-target", "")
    name = target.removeprefix(TARGET_PREFIX)
    function = OPERATIONS.get(name) if target.startswith(TARGET_PREFIX) else None
    if function is None:
        return error_document(ApiError("UnknownOperationException", f"unknown operation {target!r}"))
    region, access_key = caller(request, default_region)
    keys = settings.api_key_list
    if keys and access_key not in keys:
        return error_document(
            ApiError("UnrecognizedClientException", "The security token included in the request is invalid.")
        )
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return error_document(ApiError("SerializationException", f"the request body is not JSON: {exc}"))
    if not isinstance(body, dict):
        return error_document(ApiError("SerializationException", "the request body must be a JSON object"))
    call = Call(backend=backend, settings=settings, region=region, access_key=access_key)
    try:
        # Operations talk to Redis and run executions: keep them off the event loop.
        result = await run_in_threadpool(function, call, body)
    except DmapError as exc:
        error = as_api_error(exc)
        error.message = error.message.replace(arns.INTERNAL_PREFIX, arns.external_prefix(region, settings.account_id))
        if settings.serve_check_shapes:
            _report(name, check_error(name, error.code))
        return error_document(error)
    except Exception:  # a bug: AWS's own 500 shape, the details in our log only
        log.exception("operation %s failed", name)
        return error_document(ApiError("InternalFailure", "the server failed to process the request", 500))
    # Every ARN of the journal, wherever it appears (an output naming a Map Run too), in the caller's region.
    outward = arns.external_prefix(region, settings.account_id)
    text = json.dumps(result, default=str).replace(arns.INTERNAL_PREFIX, outward)
    if settings.serve_check_shapes:
        _report(name, check_response(name, json.loads(text)))
    return Response(text, media_type=CONTENT_TYPE)


def _report(operation: str, problems: list[str]) -> None:
    """Log what a response got wrong (``DMAP_SERVE_CHECK_SHAPES``; the tests fail on these lines)."""
    for problem in problems:
        log.error("SHAPE MISMATCH in %s: %s", operation, problem)

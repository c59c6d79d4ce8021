"""Response bodies checked against botocore's ``stepfunctions`` service model.

The model shipped inside botocore is the single source of the API's shapes (DESIGN §14): this
module walks an operation's output shape over a response body — required members, unknown
members, types, enums, nested structures, lists and maps, timestamps as epoch-second numbers — and
says what does not match, so a response any AWS SDK parses is a response this check passes. Error
codes are checked against the operation's declared errors (plus the protocol's common ones).

Tests use it on every response; ``DMAP_SERVE_CHECK_SHAPES=1`` makes the server check its own.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

COMMON_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "IncompleteSignature",
        "InternalFailure",
        "InvalidAction",
        "MissingAction",
        "SerializationException",
        "ServiceUnavailable",
        "ThrottlingException",
        "UnknownOperationException",
        "UnrecognizedClientException",
        "ValidationError",
        # AWS's JSON services answer a request that breaks a member constraint ("1 validation error detected:
        # Value null at 'executionArn'...") with this on every operation, declared or not.
        "ValidationException",
    }
)
"""Errors any operation of an AWS JSON 1.0 service may answer (not listed per operation in the model)."""


@lru_cache(maxsize=1)
def service_model() -> Any:
    """botocore's ``stepfunctions`` service model (loaded once)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("stepfunctions")


def check_response(operation: str, body: Any) -> list[str]:
    """What in ``body`` does not match the output shape of ``operation`` (empty: it matches)."""
    shape = service_model().operation_model(operation).output_shape
    if shape is None:
        return [] if body in ({}, None) else [f"{operation} has no output, got {body!r}"]
    return list(_walk(shape, body, operation))


def conform(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the members the output shape of ``operation`` lacks (dmap's extras, such as
    ``effectiveConcurrency``, stay in dmap's own CLI and Python API; the wire carries AWS's shape only)."""
    shape = service_model().operation_model(operation).output_shape
    return _prune(shape, body) if shape is not None else body


def _prune(shape: Any, value: Any) -> Any:
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _prune(members[k], v) for k, v in value.items() if k in members}
    if shape.type_name == "list" and isinstance(value, list):
        return [_prune(shape.member, v) for v in value]
    return value


def check_error(operation: str, code: str) -> list[str]:
    """A problem if ``operation`` does not declare the error ``code`` (nor is it a common one)."""
    declared = {s.name for s in service_model().operation_model(operation).error_shapes}
    if code in declared or code in COMMON_ERRORS:
        return []
    return [f"{operation} does not declare the error {code} (it declares {', '.join(sorted(declared))})"]


_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (int, float),
}


def _walk(shape: Any, value: Any, where: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        yield from _structure(shape, value, where)
    elif kind == "list":
        if not isinstance(value, list):
            yield f"{where}: a list expected, got {type(value).__name__}"
            return
        for index, item in enumerate(value):
            yield from _walk(shape.member, item, f"{where}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            yield f"{where}: a map expected, got {type(value).__name__}"
            return
        for key, item in value.items():
            yield from _walk(shape.key, key, f"{where} key {key!r}")
            yield from _walk(shape.value, item, f"{where}[{key!r}]")
    else:
        yield from _scalar(shape, value, where)


def _structure(shape: Any, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        yield f"{where}: an object expected, got {type(value).__name__}"
        return
    for name in shape.required_members:
        if value.get(name) is None:
            yield f"{where}.{name}: required, missing"
    for name, item in value.items():
        member = shape.members.get(name)
        if member is None:
            yield f"{where}.{name}: not a member of {shape.name}"
        elif item is not None:
            yield from _walk(member, item, f"{where}.{name}")


def _scalar(shape: Any, value: Any, where: str) -> Any:
    allowed = _SCALARS.get(shape.type_name, (object,))
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        yield f"{where}: {shape.type_name} expected, got {type(value).__name__} {value!r:.60}"
        return
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        yield f"{where}: {value!r} is not one of {enum}"
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    size = len(value) if isinstance(value, str) else value if shape.type_name in ("integer", "long") else None
    if size is not None and ((low is not None and size < low) or (high is not None and size > high)):
        yield f"{where}: {value!r:.60} is outside {low}..{high}"

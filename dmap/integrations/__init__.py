"""Service integrations: ``aws-sdk:*``, the optimized ``s3:getObject``/``s3:putObject`` and ``http:invoke``.

This package owns turning an integration ``Resource`` into a handler the interpreter can call like
a registered task (``handler(payload, TaskContext)``, under TimeoutSeconds/HeartbeatSeconds), and
explaining why it cannot when it cannot. It does not evaluate Parameters/Arguments (the
interpreter passes the evaluated payload) nor apply ResultSelector/ResultPath.

Every integration is off unless the operator enables it with ``DMAP_INTEGRATIONS`` (read at call
time), on the coordinator and on every worker — a definition must not reach a service nobody allowed:

* ``aws-sdk`` — every ``arn:aws:states:::aws-sdk:<service>:<action>`` (through boto3);
* ``aws-sdk:<service>`` — only that service (``aws-sdk:s3,aws-sdk:dynamodb``);
* ``s3`` — ``arn:aws:states:::s3:getObject`` and ``arn:aws:states:::s3:putObject`` (through
  :func:`dmap.storage.get_storage`, so they also work on ``DMAP_S3_ROOT``);
* ``http`` — ``arn:aws:states:::http:invoke``.

Integrations run request-response only: ``.sync`` and ``.waitForTaskToken`` suffixes are refused
before the run, like unknown services and actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import get_settings

INTEGRATION_PREFIXES = (
    "arn:aws:states:::aws-sdk:",
    "arn:aws:states:::s3:",
    "arn:aws:states:::http:invoke",
)

#: Diagnostic codes: the integration exists but the operator did not enable it / dmap cannot call it.
NOT_ENABLED = "INTEGRATION_NOT_ENABLED"
NOT_SUPPORTED = "INTEGRATION_NOT_SUPPORTED"

FAMILIES = ("aws-sdk", "s3", "http")
_PATTERNS = (".sync", ".waitForTaskToken")
_S3_ACTIONS = ("getObject", "putObject")

Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a resource resolves to: a handler, or the diagnostic code and reason why there is none."""

    handler: Handler | None
    code: str = ""
    reason: str = ""


def is_integration(resource: str) -> bool:
    """True if ``resource`` names a service integration rather than a Lambda function."""
    return resource.startswith(INTEGRATION_PREFIXES)


def resolve(resource: str) -> Handler | None:
    """The handler of an enabled integration, or None when it is unknown or not enabled."""
    return lookup(resource).handler


def disabled_reason(resource: str) -> str:
    """Why ``resource`` cannot be called here, for diagnostics and errors."""
    return lookup(resource).reason or f"the service integration {resource!r} is available"


def unavailable_code(resource: str) -> str:
    """The diagnostic code for a resource without a handler: ``INTEGRATION_NOT_ENABLED`` or ``..._NOT_SUPPORTED``."""
    return lookup(resource).code


def enabled_tokens() -> frozenset[str]:
    """The entries of ``DMAP_INTEGRATIONS`` (lower-cased, blanks dropped), read now from the settings."""
    return frozenset(t.strip().lower() for t in get_settings().integrations.split(",") if t.strip())


def lookup(resource: str) -> Lookup:
    """Resolve ``resource`` to a handler, or say precisely why it has none.

    Args:
        resource: A Task ``Resource`` (``arn:aws:states:::aws-sdk:s3:getObject``...).

    Returns:
        A :class:`Lookup`; its ``handler`` is None when the integration is unknown, unsupported or
        not enabled, and then ``code``/``reason`` explain it.
    """
    body = resource.removeprefix("arn:aws:states:::")
    for pattern in _PATTERNS:
        if pattern in body:
            head = body.split(pattern, 1)[0]
            return Lookup(
                None,
                NOT_SUPPORTED,
                f"the integration pattern {pattern!r} of {resource!r} is not supported: dmap calls service "
                f"integrations request-response only (use {'arn:aws:states:::' + head!r})",
            )
    family, _, rest = body.partition(":")
    if family == "aws-sdk":
        return _aws_sdk(resource, rest)
    if family == "s3":
        return _s3(resource, rest)
    if family == "http" and rest == "invoke":
        return _gate(resource, "http", _http_handler)
    return Lookup(None, NOT_SUPPORTED, f"{resource!r} is not a service integration dmap knows: {_KNOWN}")


_KNOWN = (
    "dmap runs arn:aws:states:::aws-sdk:<service>:<action>, arn:aws:states:::s3:getObject, "
    "arn:aws:states:::s3:putObject and arn:aws:states:::http:invoke"
)


def _aws_sdk(resource: str, rest: str) -> Lookup:
    service, _, action = rest.partition(":")
    if not service or not action or ":" in action:
        return Lookup(
            None, NOT_SUPPORTED, f"{resource!r} is not of the form arn:aws:states:::aws-sdk:<service>:<action>"
        )
    tokens = enabled_tokens()
    if "aws-sdk" not in tokens and f"aws-sdk:{service.lower()}" not in tokens:
        return Lookup(None, NOT_ENABLED, _not_enabled(resource, f"aws-sdk (or aws-sdk:{service.lower()})", tokens))
    from .aws_sdk import handler

    try:
        return Lookup(handler(service, action))
    except LookupError as exc:
        return Lookup(None, NOT_SUPPORTED, f"{resource!r}: {exc.args[0]}")


def _s3(resource: str, action: str) -> Lookup:
    if action not in _S3_ACTIONS:
        return Lookup(
            None,
            NOT_SUPPORTED,
            f"{resource!r} is not an optimized S3 integration dmap knows (s3:getObject, s3:putObject); "
            f"use arn:aws:states:::aws-sdk:s3:{action or '<action>'} for other S3 actions",
        )

    def load() -> Handler:
        from .s3 import get_object, put_object

        return get_object if action == "getObject" else put_object

    return _gate(resource, "s3", load)


def _http_handler() -> Handler:
    from .http_invoke import invoke

    return invoke


def _gate(resource: str, family: str, load: Callable[[], Handler]) -> Lookup:
    tokens = enabled_tokens()
    if family not in tokens:
        return Lookup(None, NOT_ENABLED, _not_enabled(resource, family, tokens))
    return Lookup(load())


def _not_enabled(resource: str, family: str, tokens: frozenset[str]) -> str:
    current = ",".join(sorted(tokens)) or "empty"
    unknown = sorted(t for t in tokens if t not in FAMILIES and not t.startswith("aws-sdk:"))
    hint = f"; {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not an integration name" if unknown else ""
    return (
        f"the service integration {resource!r} is not enabled (DMAP_INTEGRATIONS is {current}{hint}); "
        f"enable it with DMAP_INTEGRATIONS={family} (comma-separated: aws-sdk, aws-sdk:<service>, s3, http) "
        "on the coordinator and the workers"
    )

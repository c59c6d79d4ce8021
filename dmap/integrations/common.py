"""What every integration shares: its error type, JSON-safe values, timestamps, bounded reads.

This module owns how an integration reports an ASL error and how service data becomes JSON the
way Step Functions shows it. It does not talk to any service.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, BinaryIO, cast

from ..config import get_settings
from ..errors import ErrorName, StatesError

_CHUNK = 64 * 1024


class IntegrationError(StatesError):
    """Raised by an integration handler for an ASL error (``S3.NoSuchKeyException``, ``States.Http.Socket``...).

    :func:`integration_error` makes one whose *class name* is the error name too: a caller that
    reports a handler's exception by its class name (as Lambda does) still reports the AWS name.
    """

    def __str__(self) -> str:
        return self.cause


@lru_cache(maxsize=512)
def _named(name: str) -> type[IntegrationError]:
    return cast(type[IntegrationError], type(name, (IntegrationError,), {"__module__": __name__, "__qualname__": name}))


def integration_error(name: ErrorName | str, cause: str) -> IntegrationError:
    """An :class:`IntegrationError` for ``name`` (an AWS error name) with the cause AWS would give."""
    text = name.value if isinstance(name, ErrorName) else name
    return _named(text)(text, cause)


def iso_instant(value: datetime | date) -> str:
    """A timestamp as Step Functions prints SDK timestamps (Java ``Instant``): ``2024-01-02T03:04:05.120Z``."""
    if not isinstance(value, datetime):
        return value.isoformat()
    moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros % 1000 == 0 and micros:
        text += f".{micros // 1000:03d}"
    elif micros:
        text += f".{micros:06d}"
    return text + "Z"


def json_safe(value: Any) -> Any:
    """``value`` with datetimes as ISO strings, Decimals as numbers, bytes as base64, streams read as text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return iso_instant(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "read"):
        return text_of(read_capped(cast(BinaryIO, value), "a streamed result"))
    return value


def compact_json(value: Any) -> str:
    """JSON without spaces, as Step Functions serializes a JSON value sent where text is expected."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def text_of(data: bytes) -> str:
    """Bytes as text: UTF-8, with undecodable bytes replaced (like Java's ``new String(bytes, UTF_8)``)."""
    return data.decode("utf-8", errors="replace")


def read_capped(stream: BinaryIO, what: str, state: str = "", *, deadline: float | None = None) -> bytes:
    """Read a whole stream, but never more than the payload limit (``DMAP_PAYLOAD_LIMIT``).

    Args:
        stream: The response stream (closed afterwards).
        what: What is being read, for the cause (``s3://bucket/key``).
        state: The Task state's name, for the cause.
        deadline: A ``time.monotonic()`` value after which reading stops with ``TimeoutError``.

    Raises:
        TimeoutError: The deadline passed before the end of the stream.
        IntegrationError: ``States.DataLimitExceeded`` when the stream is larger than the limit:
            the result could not be passed on anyway, and reading it all could exhaust memory.
    """
    limit = get_settings().payload_limit
    data = bytearray()
    try:
        # Some streams return short reads before the end, so read until EOF or one byte past the limit.
        while len(data) <= limit:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"reading {what} did not finish in time")
            chunk = stream.read(min(_CHUNK, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()
    if len(data) > limit:
        where = f"The state/task '{state}'" if state else "The task"
        raise integration_error(
            ErrorName.DATA_LIMIT_EXCEEDED,
            f"{where} returned a result with a size exceeding the maximum number of bytes service limit "
            f"({what} is larger than {limit} bytes).",
        )
    return bytes(data)

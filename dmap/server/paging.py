"""``nextToken`` and ``maxResults`` as every List operation of the API takes them.

A token is opaque to the caller: base64 of ``[operation, cursor]`` in JSON, so a token of one
List operation handed to another is refused (``InvalidToken``) rather than misread.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .protocol import ApiError

DEFAULT_PAGE = 100
"""``maxResults`` 0 or absent: AWS's default page size."""
MOST = 1000


def page_size(body: dict[str, Any]) -> int:
    """The page size a request asks for (``maxResults``: 0 or absent is the default, 1000 at most).

    Raises:
        ApiError: ``ValidationException`` for a value outside 0-1000.
    """
    value = body.get("maxResults") or 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MOST:
        raise ApiError(
            "ValidationException",
            f"1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value less than or equal to {MOST}",
        )
    return value or DEFAULT_PAGE


def token(operation: str, cursor: Any) -> str:
    """An opaque ``nextToken`` of ``operation`` carrying ``cursor`` (JSON)."""
    return base64.urlsafe_b64encode(json.dumps([operation, cursor]).encode()).decode()


def cursor(operation: str, body: dict[str, Any]) -> Any:
    """The cursor of the request's ``nextToken`` (None when there is none).

    Raises:
        ApiError: ``InvalidToken`` when it is not a token this server gave for ``operation``.
    """
    text = body.get("nextToken")
    if text is None:
        return None
    try:
        found, value = json.loads(base64.urlsafe_b64decode(str(text).encode()))
    except (ValueError, TypeError):
        found, value = None, None
    if found != operation:
        raise ApiError("InvalidToken", f"Invalid Token: '{text}'")
    return value

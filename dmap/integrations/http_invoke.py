"""``arn:aws:states:::http:invoke``: the HTTP Task, through the standard library's ``urllib``.

This module owns one HTTP call of a Task: building the request from ``ApiEndpoint``, ``Method``,
``Headers``, ``QueryParameters``, ``RequestBody`` and ``Transform`` as Step Functions does, and
returning ``{"Headers", "ResponseBody", "StatusCode", "StatusText"}``.

Like AWS: ``RequestBody`` is sent as compact JSON (``Content-Type: application/json; charset=UTF-8``
unless given), or form-encoded with ``Transform.RequestBodyEncoding: URL_ENCODED`` (arrays per
``RequestEncodingOptions.ArrayFormat``: ``INDICES`` by default, ``REPEAT``, ``COMMAS``,
``BRACKETS``; nested objects as ``key[sub]``); ``QueryParameters`` objects are URL-encoded and
appended; the headers AWS refuses fail with ``States.Runtime``; ``ResponseBody`` is parsed when the
response is JSON, else kept as text; ``Headers`` map each lower-cased name to its list of values; a
non-2xx status fails with ``States.Http.StatusCode.<code>``; a connection failure, or no complete
response within 60 seconds, fails with ``States.Http.Socket``; a binary response
(``application/octet-stream``, ``image/*``, ``audio/*``, ``video/*``, or not UTF-8) fails with
``States.Runtime``.

Where dmap differs, and why:

* AWS requires ``Authentication.ConnectionArn`` (or ``InvocationConfig``): an EventBridge connection
  that adds credentials. dmap has no connections: the field is accepted and ignored, and an
  ``Authorization`` header may be given in ``Headers`` (AWS refuses it there).
* ``http://`` endpoints are allowed (AWS calls HTTPS only), for services on a private network.
* Redirects are not followed: a 3xx fails with its ``States.Http.StatusCode.3xx``, so a Task never
  silently talks to another host.
* The cause of a status error is the response (as it would have been the result) in JSON, so a
  Catch can read it; AWS's exact cause text is not documented.
* Array values of ``QueryParameters`` repeat their key (``a=1&a=2``); a string is appended as is.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.client import HTTPException
from typing import Any, BinaryIO, cast
from urllib.parse import quote, urlsplit

from ..errors import ErrorName
from .common import IntegrationError, compact_json, integration_error, read_capped

logger = logging.getLogger(__name__)

#: AWS's hard limit on an HTTP Task's request (reference §5).
HTTP_TIMEOUT_SECONDS = 60.0
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"})
FIELDS = frozenset(
    {"ApiEndpoint", "Method", "Authentication", "InvocationConfig", "Headers", "QueryParameters", "RequestBody"}
    | {"Transform"}
)
ARRAY_FORMATS = frozenset({"INDICES", "REPEAT", "COMMAS", "BRACKETS"})
#: Headers an HTTP Task may not set (AWS fails them with States.Runtime); Authorization is allowed, see above.
FORBIDDEN_HEADERS = frozenset(
    "a-im accept-charset accept-datetime accept-encoding cache-control connection content-encoding content-md5 "
    "date expect forwarded from host http2-settings if-match if-modified-since if-none-match if-range "
    "if-unmodified-since max-forwards origin pragma proxy-authorization referer server te trailer "
    "transfer-encoding upgrade via warning".split()
)
FORBIDDEN_PREFIXES = ("x-forwarded-", "x-amz-", "x-amzn-")
BINARY_TYPES = ("application/octet-stream", "image/", "audio/", "video/")
USER_AGENT = "dmap|HttpInvoke"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def invoke(payload: Any, context: Any) -> dict[str, Any]:
    """Call the API described by the Task's parameters.

    Args:
        payload: The evaluated Parameters/Arguments (``ApiEndpoint``, ``Method``...).
        context: The TaskContext: its remaining time bounds the request.

    Returns:
        ``{"Headers", "ResponseBody", "StatusCode", "StatusText"}`` of a 2xx response.

    Raises:
        IntegrationError: ``States.Http.StatusCode.<code>``, ``States.Http.Socket``, ``States.Runtime``.
    """
    request, method, url = build_request(payload)
    limit = HTTP_TIMEOUT_SECONDS
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if getattr(context, "deadline", None) is not None and callable(remaining):
        # One second past TimeoutSeconds, so the interpreter reports States.Timeout, not a socket error.
        limit = min(limit, remaining() / 1000 + 1.0)
    deadline = time.monotonic() + limit
    state = str(getattr(context, "state_name", ""))
    try:
        try:
            response = _OPENER.open(request, timeout=max(limit, 0.001))
        except urllib.error.HTTPError as exc:
            response = exc  # a non-2xx answer is still an answer
        with response:
            body = read_capped(cast(BinaryIO, response), f"the response of {method} {url}", state, deadline=deadline)
            status = int(response.status or 0)
            reason = str(response.reason or "")
            headers = response.headers
    except TimeoutError:
        raise _socket(f"{method} {url} did not complete within {limit:g} seconds") from None
    except urllib.error.URLError as exc:
        raise _socket(f"{method} {url} failed: {exc.reason}") from None
    except (OSError, HTTPException) as exc:
        raise _socket(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None
    return _result(status, reason, headers, body, method, url)


def _socket(cause: str) -> IntegrationError:
    return integration_error(ErrorName.HTTP_SOCKET, cause)


def _runtime(problem: str) -> IntegrationError:
    return integration_error(ErrorName.RUNTIME, f"The HTTP Task could not be started: {problem}")


def build_request(payload: Any) -> tuple[urllib.request.Request, str, str]:
    """The request of an HTTP Task; ``(request, method, url)``.

    Raises:
        IntegrationError: ``States.Runtime`` for a missing or invalid field.
    """
    if not isinstance(payload, dict):
        raise _runtime("Parameters must be an object with ApiEndpoint and Method")
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise _runtime(f'The field "{unknown[0]}" is not supported by Step Functions')
    endpoint, method = payload.get("ApiEndpoint"), payload.get("Method")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
        raise _runtime(f"ApiEndpoint must be an http(s) URL, not {compact_json(endpoint)}")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _runtime(f"Method must be one of {', '.join(sorted(METHODS))}, not {compact_json(method)}")
    method = method.upper()
    if "Authentication" in payload or "InvocationConfig" in payload:
        logger.debug("http:invoke: ignoring the EventBridge connection (dmap has none)")
    headers = _headers(payload.get("Headers"))
    url = endpoint + _query(payload.get("QueryParameters"), endpoint)
    data = _body(payload, headers)
    headers.setdefault("user-agent", USER_AGENT)
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    return request, method, url


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _runtime(f"Headers must be an object, not {compact_json(value)}")
    headers: dict[str, str] = {}
    for name, item in value.items():
        lower = str(name).lower()
        if lower in FORBIDDEN_HEADERS or lower.startswith(FORBIDDEN_PREFIXES):
            raise _runtime(f"the header {name!r} cannot be set in an HTTP Task")
        headers[lower] = item if isinstance(item, str) else compact_json(item)
    return headers


def _query(value: Any, endpoint: str) -> str:
    if value is None or value == {} or value == "":
        return ""
    if isinstance(value, str):
        text = value.lstrip("?")
    elif isinstance(value, dict):
        text = form_encode(value, "REPEAT")
    else:
        raise _runtime(f"QueryParameters must be an object or a string, not {compact_json(value)}")
    return ("&" if "?" in endpoint else "?") + text


def _body(payload: dict[str, Any], headers: dict[str, str]) -> bytes | None:
    if "RequestBody" not in payload:
        return None
    body = payload["RequestBody"]
    transform = payload.get("Transform") or {}
    if not isinstance(transform, dict):
        raise _runtime(f"Transform must be an object, not {compact_json(transform)}")
    encoding = transform.get("RequestBodyEncoding", "NONE")
    options = transform.get("RequestEncodingOptions") or {}
    array_format = options.get("ArrayFormat", "INDICES") if isinstance(options, dict) else None
    if encoding not in ("NONE", "URL_ENCODED") or array_format not in ARRAY_FORMATS:
        raise _runtime(f"invalid Transform {compact_json(transform)}")
    if isinstance(body, str):
        headers.setdefault("content-type", "text/plain; charset=UTF-8")
        return body.encode("utf-8")
    if encoding == "URL_ENCODED":
        if not isinstance(body, dict):
            raise _runtime("a URL_ENCODED RequestBody must be an object")
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
        return form_encode(body, str(array_format)).encode("ascii")
    headers.setdefault("content-type", "application/json; charset=UTF-8")
    return compact_json(body).encode("utf-8")


def form_encode(value: dict[str, Any], array_format: str) -> str:
    """``application/x-www-form-urlencoded`` text of a JSON object, as Step Functions encodes it.

    Nested objects become ``key[sub]=...``; arrays follow ``array_format`` (``INDICES``:
    ``a[0]=x&a[1]=y``, ``REPEAT``: ``a=x&a=y``, ``COMMAS``: ``a=x,y``, ``BRACKETS``: ``a[]=x&a[]=y``).
    """
    pairs: list[str] = []

    def add(key: str, item: Any) -> None:
        if isinstance(item, dict):
            for sub, inner in item.items():
                add(f"{key}[{sub}]", inner)
        elif isinstance(item, list):
            if array_format == "COMMAS":
                pairs.append(f"{quote(key, safe='')}={','.join(quote(_scalar(x), safe='') for x in item)}")
                return
            for i, inner in enumerate(item):
                add({"INDICES": f"{key}[{i}]", "BRACKETS": f"{key}[]"}.get(array_format, key), inner)
        else:
            pairs.append(f"{quote(key, safe='')}={quote(_scalar(item), safe='')}")

    for key, item in value.items():
        add(str(key), item)
    return "&".join(pairs)


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else compact_json(value)


def _result(status: int, reason: str, headers: Any, body: bytes, method: str, url: str) -> dict[str, Any]:
    names: dict[str, list[str]] = {}
    for name, item in headers.items():
        names.setdefault(name.lower(), []).append(item)
    content_type = str(headers.get("content-type") or "").lower()
    ok = 200 <= status < 300
    if ok and content_type.startswith(BINARY_TYPES):
        raise _runtime(f"{method} {url} answered with the unsupported content type {content_type!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        if ok:
            raise _runtime(f"the response of {method} {url} cannot be read as a valid string") from None
        text = body.decode("utf-8", errors="replace")
    response_body: Any = text
    media = content_type.split(";", 1)[0].strip()
    if text and (media == "application/json" or media.endswith("+json")):
        try:
            response_body = json.loads(text)
        except ValueError:
            pass  # labelled JSON but is not: keep the text
    result = {
        "Headers": names,
        "ResponseBody": response_body,
        "StatusCode": status,
        "StatusText": reason or _phrase(status),
    }
    if not ok:
        raise integration_error(f"States.Http.StatusCode.{status}", compact_json(result))
    return result


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

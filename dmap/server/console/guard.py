"""Who may use the console and which POSTs are the user's own: access keys and cross-site request checks.

Owns the two cookies of the console: ``dmap_csrf`` (a random token; every form carries it back, and
a POST whose field does not match its cookie is refused) and ``dmap_key`` (the access key id the
user typed, when ``DMAP_API_KEYS`` is set; without one of those keys the console shows only the key
form). A POST must also come from this origin: an ``Origin`` header naming another host, or a
``Sec-Fetch-Site`` other than ``same-origin``, is refused before the token is looked at. Both
cookies are HttpOnly and SameSite=Strict. Nothing here renders a page or runs an action.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response

CSRF_COOKIE = "dmap_csrf"
KEY_COOKIE = "dmap_key"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 64 * 1024


class Refused(Exception):
    """Raised when a console request is not allowed: ``status`` is the HTTP status, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        self.status, self.reason = status, reason
        super().__init__(f"{status}: {reason}")


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: its cookie's, or a new one (set it with :func:`remember`)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if len(token) >= 32 else secrets.token_urlsafe(32)


def remember(response: Response, request: Request, token: str) -> None:
    """Set the CSRF cookie on ``response`` unless the browser already holds ``token``."""
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_https(request), path="/")


def key_required(keys: list[str]) -> bool:
    """Whether the console asks for an access key (``DMAP_API_KEYS`` is set)."""
    return bool(keys)


def has_key(request: Request, keys: list[str]) -> bool:
    """True when no key is configured, or the browser's key cookie holds one of ``keys``."""
    if not keys:
        return True
    given = request.cookies.get(KEY_COOKIE, "")
    return any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)


def set_key(response: Response, request: Request, key: str) -> None:
    """Remember the access key the user typed (HttpOnly, this site only)."""
    response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", secure=_https(request), path="/")


def valid_key(key: str, keys: list[str]) -> bool:
    """Whether ``key`` is one of the configured access keys (compared in constant time)."""
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in keys)


async def checked_form(request: Request) -> dict[str, str]:
    """The fields of a same-origin POST whose CSRF field matches its cookie (first value of each field).

    Raises:
        Refused: 403 for a cross-site request or a missing or wrong token; 413 for a body over 64 KiB;
            415 for a body that is not ``application/x-www-form-urlencoded``.
    """
    same_origin(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, "the console's forms post application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "form too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True).items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = fields.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
        raise Refused(403, "the form's token does not match this browser's (reload the page and try again)")
    return fields


def same_origin(request: Request) -> None:
    """Refuse a request a browser marked as coming from another site.

    Raises:
        Refused: 403 when ``Sec-Fetch-Site`` is present and not ``same-origin``, or ``Origin`` names
            another host than the one the request was sent to.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise Refused(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            raise Refused(403, "cross-site request refused (Origin does not match Host)")


def _https(request: Request) -> bool:
    return request.url.scheme == "https"

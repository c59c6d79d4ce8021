"""A fault-injecting HTTP proxy in front of moto's S3: some requests answer 503 SlowDown or 500 instead.

:class:`FaultProxy` listens on loopback in a thread of the test process and forwards every request
to the upstream endpoint unchanged (method, path, headers, body), except those its ``fault``
function picks: they get an S3-shaped XML error without reaching moto. boto3 sees a real S3 error
response and applies its own retry policy, as it would against AWS. It owns no dmap behaviour.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Fault = tuple[int, str, str]
"""``(HTTP status, S3 error code, message)`` of an injected error."""
SLOW_DOWN: Fault = (503, "SlowDown", "Please reduce your request rate.")
INTERNAL: Fault = (500, "InternalError", "We encountered an internal error. Please try again.")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class FaultProxy:
    """Forward to ``upstream`` (``http://host:port``); ``fault(method, path, n)`` may answer an error instead.

    ``n`` counts the requests the proxy received, from 1. ``injected`` lists the faults answered as
    ``(method, path, code)``; ``forwarded`` counts the requests that reached upstream.
    """

    def __init__(self, upstream: str, fault: Callable[[str, str, int], Fault | None]) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.fault = fault
        self.injected: list[tuple[str, str, str]] = []
        self.forwarded = 0
        self._count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        """The proxy's endpoint URL (for ``AWS_ENDPOINT_URL_S3``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def decide(self, method: str, path: str) -> Fault | None:
        """Count the request and ask ``fault`` whether it fails."""
        with self._lock:
            self._count += 1
            n = self._count
        found = self.fault(method, path, n)
        with self._lock:
            if found is None:
                self.forwarded += 1
            else:
                self.injected.append((method, path, found[1]))
        return found


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with a Content-Length or chunked."""
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    chunks: list[bytes] = []
    while True:
        size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()


def _answer_fault(handler: BaseHTTPRequestHandler, fault: Fault) -> None:
    """Answer an S3-shaped XML error, as S3 does when it throttles or fails."""
    status, code, message = fault
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>FAULTPROXY</RequestId></Error>"
    ).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/xml")
    handler.send_header("Content-Length", str(len(xml)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(xml)


def _forward(handler: BaseHTTPRequestHandler, upstream: tuple[str, int], body: bytes) -> None:
    """Send the request to ``upstream`` and relay its answer (a HEAD keeps upstream's Content-Length)."""
    head = handler.command == "HEAD"
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
    if body or handler.command in ("PUT", "POST"):
        headers["Content-Length"] = str(len(body))
    connection = http.client.HTTPConnection(*upstream, timeout=60)
    try:
        connection.request(handler.command, handler.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        handler.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP and (head or name.lower() != "content-length"):
                handler.send_header(name, value)
        if not head:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if not head:
            handler.wfile.write(data)
    finally:
        connection.close()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Quiet: the tests count requests instead."""

        def _serve(self) -> None:
            body = _read_body(self)
            fault = proxy.decide(self.command, self.path)
            if fault is None:
                _forward(self, proxy.upstream, body)
            else:
                _answer_fault(self, fault)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    return Handler

"""Fixtures of the integration tests: enabling integrations, and a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dmap.config import get_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of this folder that talk to moto's S3 over HTTP are ``integration`` tests."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and "moto_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def enable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set ``DMAP_INTEGRATIONS`` for this test (the settings cache is cleared before and after)."""

    def set_value(value: str) -> None:
        monkeypatch.setenv("DMAP_INTEGRATIONS", value)
        get_settings.cache_clear()

    yield set_value
    monkeypatch.delenv("DMAP_INTEGRATIONS", raising=False)
    get_settings.cache_clear()


class _Echo(BaseHTTPRequestHandler):
    """Answers what it was asked; a few paths misbehave on purpose."""

    release: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        if parts.path == "/slow":
            self.release.wait(30)  # until the test is over: the client must give up first
        if parts.path == "/text":
            self._send(200, "text/plain; charset=utf-8", b"plain words")
            return
        if parts.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/items")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == "/image":
            self._send(200, "image/png", b"\x89PNG\r\n")
            return
        echo = {
            "method": self.command,
            "path": parts.path,
            "query": parse_qs(parts.query),
            "rawQuery": parts.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        status = 500 if parts.path == "/fail" else 404 if parts.path == "/missing" else 200
        self._send(status, "application/json", json.dumps(echo).encode())

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Echo", "one")
        self.send_header("X-Echo", "two")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (an echo, plus /fail, /missing, /moved, /text, /image, /slow); yields its URL."""
    release = threading.Event()
    handler = type("Echo", (_Echo,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)

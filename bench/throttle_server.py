"""A test HTTP service that throttles like a real API: 429 above a rate (a token bucket), every call logged.

Shared by tests/flow and ``python -m bench.flow``: it stands for the service children call. Each
call is answered 200 while the bucket (``rate`` per second, ``capacity`` at once) has a token, else
429; ``latency`` seconds of service time follow the decision (so concurrency, not only rate, loads it).
"""

from __future__ import annotations

import bisect
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: hundreds of children connect at once


class ThrottlingServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is its endpoint.

    Args:
        rate: Calls per second it accepts on average.
        capacity: Calls it accepts at once after a pause (the bucket size).
        latency: Seconds each call takes (after the accept/reject decision).
    """

    def __init__(self, rate: float = 40.0, capacity: float = 1.0, latency: float = 0.0) -> None:
        self.rate, self.capacity, self.latency = rate, capacity, latency
        self._lock = threading.Lock()
        self._tokens, self._at = capacity, time.monotonic()
        self.accepted: list[float] = []
        self.rejected: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                ok = server._admit()
                if server.latency:
                    time.sleep(server.latency)
                body = b'{"ok":true}' if ok else b'{"message":"Too Many Requests"}'
                self.send_response(200 if ok else 429)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` (the rate-limit key of http:invoke calls to it)."""
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """The endpoint children call."""
        return f"http://{self.host}/work"

    def start(self) -> ThrottlingServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def _admit(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.accepted.append(now)
                return True
            self.rejected.append(now)
            return False

    def busiest_second(self) -> int:
        """The most calls (accepted or not) that arrived within any 1-second window."""
        with self._lock:
            times = sorted(self.accepted + self.rejected)
        return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)

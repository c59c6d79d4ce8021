"""A test HTTP service that throttles like a real API: 429 above a rate (a token bucket), every call logged.

Shared by tests/flow and ``python -m bench.flow``: it stands for the service children call. Each
call is answered 200 while the bucket (``rate`` per second, ``capacity`` at once) has a token, else
429; ``latency`` seconds of service time follow the decision (so concurrency, not only rate, loads it).
``concurrency`` adds an in-flight limit (as a Lambda's reserved concurrency: a call arriving while
that many are in service is refused), and ``hold_until_refused`` keeps the accepted calls in service
until the first refusal: then a burst of more callers than ``concurrency`` is throttled for certain,
however slowly the machine runs them (tests that must see throttling use it; no clock decides).
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
        concurrency: Calls it serves at once; one more is refused (0: no such limit).
        hold_until_refused: Keep accepted calls in service until a call was refused, at most this many
            seconds (0: don't).
    """

    def __init__(
        self,
        rate: float = 40.0,
        capacity: float = 1.0,
        latency: float = 0.0,
        *,
        concurrency: int = 0,
        hold_until_refused: float = 0.0,
    ) -> None:
        self.rate, self.capacity, self.latency = rate, capacity, latency
        self.concurrency, self.hold = concurrency, hold_until_refused
        self._lock = threading.Lock()
        self._in_flight = 0
        self._refused = threading.Event()
        self._tokens, self._at = capacity, time.monotonic()
        self.accepted: list[float] = []
        self.rejected: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                ok = server._admit()
                try:
                    if ok and server.hold:
                        server._refused.wait(server.hold)
                    if server.latency:
                        time.sleep(server.latency)
                finally:
                    if ok:
                        with server._lock:
                            server._in_flight -= 1
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
            busy = self.concurrency > 0 and self._in_flight >= self.concurrency
            if self._tokens >= 1 and not busy:
                self._tokens -= 1
                self._in_flight += 1
                self.accepted.append(now)
                return True
            self.rejected.append(now)
            self._refused.set()
            return False

    def busiest_second(self) -> int:
        """The most calls (accepted or not) that arrived within any 1-second window."""
        with self._lock:
            times = sorted(self.accepted + self.rejected)
        return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)

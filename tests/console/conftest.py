"""Fixtures of the console tests: ``dmap serve``'s app on a real port, and a real browser.

``serve`` starts the ASGI app of :func:`dmap.server.create_app` on uvicorn in a thread (a real
HTTP server on a free loopback port) for a given backend; ``browser`` is Playwright driving
Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it), skipped where it is missing
unless ``CI`` is set. The celery fixtures (real ``dmap worker`` processes) are those of the control
tests, imported here rather than copied.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dmap.config import Settings

from ..control.conftest import ctl, ctl_redis  # noqa: F401  (the celery fixtures, shared)

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = bool(os.environ.get("CI"))


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Start the server for a backend (and settings); returns its base URL. Stopped after the test."""
    import uvicorn

    from dmap.server import create_app

    servers: list[tuple[Any, threading.Thread]] = []

    def start(backend: Any, settings: Settings | None = None) -> str:
        app = create_app(backend, settings or Settings())
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, name="console-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the console server did not start")
            time.sleep(0.02)
        servers.append((server, thread))
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless chromium driven by Playwright (skipped without ``/usr/bin/chromium`` unless under CI)."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()

"""The console: server-rendered pages over the control functions, at ``GET /`` of ``dmap serve`` (DESIGN §12).

Pages: executions (filtered, newest first), an execution (states, history, actions), a Map Run
(live counts, progress, pace chart, run times, failures by error with each item). Every page has a
JSON twin that its small vanilla script (``static/console.js``) polls for live updates. Templates
and static files live beside this package and are served from it (no CDN: it works offline).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from ...config import Settings


def console_routes(backend: Any, settings: Settings) -> list[BaseRoute]:
    """The console's routes for an app serving ``backend`` (a Backend instance) with ``settings``."""
    from .routes import Console

    return Console(backend, settings).routes()


__all__ = ["console_routes"]

"""``dmap serve``: the Step Functions API (AWS JSON 1.0) and the console, as one ASGI app (DESIGN §12).

The server calls the same control functions the CLI calls (one journal, one set of verbs); it never
reaches into the store or the coordinator directly, and nothing below it imports it.
"""

from __future__ import annotations

from .app import create_app, serve

__all__ = ["create_app", "serve"]

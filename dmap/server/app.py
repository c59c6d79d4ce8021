"""The ASGI app of ``dmap serve`` and the function that runs it on uvicorn."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import Settings, get_settings
from ..interpreter.context import REGION
from . import operations  # noqa: F401  (registers the API operations)
from .console import console_routes
from .protocol import handle


def create_app(backend: Any = None, settings: Settings | None = None) -> Starlette:
    """The server: the Step Functions API at ``POST /``, health probes, and the console's pages.

    Args:
        backend: ``"local"``, ``"celery"`` or a Backend instance (default: ``DMAP_BACKEND``).
        settings: The settings to use (default: the environment's).
    """
    from ..backends import get_backend

    settings = settings or get_settings()
    engine = get_backend(backend, settings)

    async def api(request: Request) -> Response:
        return await handle(request, engine, settings, REGION)

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        return JSONResponse({"status": "ok", "backend": engine.name})

    routes: list[BaseRoute] = [
        Route("/", api, methods=["POST"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        *console_routes(engine, settings),
    ]
    app = Starlette(routes=routes)
    app.state.backend = engine
    app.state.settings = settings
    return app


def serve(host: str | None = None, port: int | None = None, backend: Any = None) -> None:
    """Run the server until interrupted (``dmap serve``)."""
    import uvicorn

    settings = get_settings()
    app = create_app(backend, settings)
    uvicorn.run(app, host=host or settings.serve_host, port=port if port is not None else settings.serve_port)

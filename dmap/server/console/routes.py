"""The console's HTTP routes: pages, their JSON twins, the failures download, and the guarded actions.

Each handler is one Request -> Response function: it checks access (:mod:`.guard`), runs a view
function of :mod:`.views` in a worker thread (they block on Redis) and renders a template or JSON.
Actions (stop, redrive, update a Map Run) are same-origin POSTs with a CSRF token; they call the
control functions and answer 303 to the page they came from, or show the error on a page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ... import control
from ...config import Settings
from ...errors import ConfigurationError, DmapError, NotFoundError
from . import guard, views

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[Request], Awaitable[Response]]


def _arn_url(kind: str, arn: str, suffix: str = "") -> str:
    return f"/{kind}/{quote(arn, safe=':/')}{suffix}"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.globals["execution_url"] = lambda arn, suffix="": _arn_url("executions", arn, suffix)
    env.globals["map_run_url"] = lambda arn, suffix="": _arn_url("map-runs", arn, suffix)
    env.filters["query"] = lambda params: urlencode({k: v for k, v in params.items() if v})
    return env


class Console:
    """The console of one server: its backend, settings and templates."""

    def __init__(self, engine: Any, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.env = _environment()

    @property
    def keys(self) -> list[str]:
        return self.settings.api_key_list

    def routes(self) -> list[BaseRoute]:
        """The console's routes; GET ``/`` is the executions page (the API keeps ``POST /``)."""
        return [
            Route("/", self.executions, methods=["GET"]),
            Route("/executions.json", self.executions_json, methods=["GET"]),
            Route("/console/key", self.key, methods=["POST"]),
            Route("/executions/{arn:path}/stop", self.stop, methods=["POST"]),
            Route("/executions/{arn:path}/redrive", self.redrive, methods=["POST"]),
            Route("/executions/{arn:path}/live.json", self.execution_json, methods=["GET"]),
            Route("/executions/{arn:path}", self.execution, methods=["GET"]),
            Route("/map-runs/{arn:path}/update", self.update, methods=["POST"]),
            Route("/map-runs/{arn:path}/live.json", self.map_run_json, methods=["GET"]),
            Route("/map-runs/{arn:path}/failures.jsonl", self.failures_download, methods=["GET"]),
            Route("/map-runs/{arn:path}", self.map_run, methods=["GET"]),
            Mount("/console-static", StaticFiles(directory=HERE / "static"), name="console-static"),
        ]

    # -- rendering ------------------------------------------------------------------------------

    def render(self, request: Request, template: str, *, code: int = 200, **context: Any) -> Response:
        """A page: the template with the CSRF token, security headers and the CSRF cookie."""
        token = guard.csrf_token(request)
        html = self.env.get_template(template).render(
            csrf=token, key_required=guard.key_required(self.keys), path=request.url.path, **context
        )
        response = HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)
        guard.remember(response, request, token)
        return response

    def problem(self, request: Request, status: int, message: str) -> Response:
        """An error page (or JSON for a ``.json`` route) saying what went wrong."""
        if request.url.path.endswith((".json", ".jsonl")):
            return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)
        return self.render(request, "problem.html", code=status, message=message)

    async def page(self, request: Request, build: Callable[[], dict[str, Any]], template: str) -> Response:
        """Check access, build the page's data in a thread, render it (errors become problem pages)."""
        if not guard.has_key(request, self.keys):
            return self.render(request, "key.html", code=401, next=str(request.url.path))
        try:
            data = await run_in_threadpool(build)
        except NotFoundError as exc:
            return self.problem(request, 404, str(exc))
        except DmapError as exc:
            return self.problem(request, 400, str(exc))
        if template.endswith(".json"):
            return JSONResponse(data, headers=SECURITY_HEADERS)
        return self.render(request, template, **data)

    # -- pages ----------------------------------------------------------------------------------

    def _list_args(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        return {"status": q.get("status", ""), "machine": q.get("machine", "").strip(), "token": q.get("token") or None}

    async def executions(self, request: Request) -> Response:
        args = self._list_args(request)
        return await self.page(request, lambda: views.executions_view(self.engine, **args), "executions.html")

    async def executions_json(self, request: Request) -> Response:
        args = self._list_args(request)
        return await self.page(request, lambda: views.executions_view(self.engine, **args), ".json")

    async def execution(self, request: Request) -> Response:
        arn, token = request.path_params["arn"], request.query_params.get("history") or None
        return await self.page(
            request, lambda: views.execution_view(self.engine, arn, history_token=token), "execution.html"
        )

    async def execution_json(self, request: Request) -> Response:
        arn = request.path_params["arn"]
        return await self.page(request, lambda: views.execution_live(self.engine, arn), ".json")

    async def map_run(self, request: Request) -> Response:
        arn, q = request.path_params["arn"], request.query_params
        error, token = q.get("error", ""), q.get("token") or None
        return await self.page(
            request, lambda: views.map_run_view(self.engine, arn, error=error, token=token), "map_run.html"
        )

    async def map_run_json(self, request: Request) -> Response:
        arn = request.path_params["arn"]
        return await self.page(request, lambda: views.map_run_live(self.engine, arn), ".json")

    async def failures_download(self, request: Request) -> Response:
        """Every failure record as JSON lines, streamed a store page at a time."""
        if not guard.has_key(request, self.keys):
            return self.problem(request, 401, "an access key is needed")
        arn, error = request.path_params["arn"], request.query_params.get("error", "")
        try:
            await run_in_threadpool(control.describe_map_run, arn, backend=self.engine)
        except NotFoundError as exc:
            return self.problem(request, 404, str(exc))
        lines: AsyncIterator[str] = iterate_in_threadpool(views.failures_jsonl(self.engine, arn, error=error))
        name = f"failures-{arn.rsplit(':', 1)[-1]}.jsonl"
        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
        return StreamingResponse(lines, media_type="application/x-ndjson", headers=headers)

    # -- actions --------------------------------------------------------------------------------

    async def act(self, request: Request, run: Callable[[dict[str, str]], Any], back: str) -> Response:
        """Check origin, token and key; run the action in a thread; 303 to ``back`` or show the error."""
        try:
            fields = await guard.checked_form(request)
        except guard.Refused as exc:
            return self.problem(request, exc.status, exc.reason)
        if not guard.has_key(request, self.keys):
            return self.problem(request, 401, "an access key is needed for this action")
        try:
            await run_in_threadpool(run, fields)
        except NotFoundError as exc:
            return self.problem(request, 404, str(exc))
        except (ConfigurationError, ValueError) as exc:  # a value in the form: the request is wrong, not the state
            return self.problem(request, 400, str(exc))
        except DmapError as exc:  # the execution or Map Run is not in a state that allows it (ended, redriving...)
            return self.problem(request, 409, str(exc))
        return RedirectResponse(back, status_code=303, headers=SECURITY_HEADERS)

    async def stop(self, request: Request) -> Response:
        arn = request.path_params["arn"]
        return await self.act(
            request,
            lambda _: control.stop_execution(arn, backend=self.engine),
            _back(request, _arn_url("executions", arn)),
        )

    async def redrive(self, request: Request) -> Response:
        arn = request.path_params["arn"]
        return await self.act(
            request,
            lambda _: control.redrive_execution(arn, backend=self.engine, wait=False),
            _back(request, _arn_url("executions", arn)),
        )

    async def update(self, request: Request) -> Response:
        arn = request.path_params["arn"]

        def run(fields: dict[str, str]) -> Any:
            return control.update_map_run(
                arn,
                max_concurrency=_number(fields, "max_concurrency", int),
                tolerated_failure_count=_number(fields, "tolerated_failure_count", int),
                tolerated_failure_percentage=_number(fields, "tolerated_failure_percentage", float),
                adaptive=_switch(fields, "adaptive"),
                min_concurrency=_number(fields, "min_concurrency", int),
                backend=self.engine,
            )

        return await self.act(request, run, _arn_url("map-runs", arn))

    async def key(self, request: Request) -> Response:
        """Remember an access key typed into the key form (checked against ``DMAP_API_KEYS``)."""
        try:
            fields = await guard.checked_form(request)
        except guard.Refused as exc:
            return self.problem(request, exc.status, exc.reason)
        given = fields.get("key", "").strip()
        if not guard.valid_key(given, self.keys):
            return self.render(request, "key.html", code=401, next=_local(fields.get("next", "/")), wrong=True)
        response = RedirectResponse(_local(fields.get("next", "/")), status_code=303, headers=SECURITY_HEADERS)
        guard.set_key(response, request, given)
        return response


def _number(fields: dict[str, str], name: str, kind: Callable[[str], Any]) -> Any:
    text = fields.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name.replace('_', ' ')} must be a number, got {text!r}") from None


def _switch(fields: dict[str, str], name: str) -> bool | None:
    """A select of ``unchanged`` (blank), ``on`` or ``off``: None, True or False."""
    text = fields.get(name, "").strip()
    if text not in ("", "on", "off"):
        raise ValueError(f"{name} must be on or off, got {text!r}")
    return None if not text else text == "on"


def _local(path: str) -> str:
    """``path`` if it is a path on this site, else ``/`` (no open redirect)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _back(request: Request, default: str) -> str:
    """Where an action returns to: the form's page (``?back=``) when it is on this site."""
    back = request.query_params.get("back")
    return _local(back) if back else default

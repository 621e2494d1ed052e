"""The FastAPI application: routes, Canvas-shaped errors, health probes, and the report runner's lifetime."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from consumer import __version__
from consumer.api import errors, metrics
from consumer.api.body_limit import LimitBody
from consumer.api.dashboard import router as dashboard_router
from consumer.api.hosts import AllowedHosts, host_patterns
from consumer.api.routes import router
from consumer.events.redact import redact_text
from consumer.readiness import database_ready
from consumer.reports.runner import ReportRunner

log = logging.getLogger("consumer.api")

DEFAULT_ALLOWED_HOSTS = "localhost,127.0.0.1,[::1]"
class RedactTokens(logging.Filter):
    """Canvas clients may pass `?access_token=`: keep it out of the access log.

    The same rule as for stored payloads and every log line (`events/redact.py`): a parameter
    whose name, %-decoded and in any case, is `access_token` or another credential name.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


class IgnoreTrailingSlash:
    """Answer `/reports/` as `/reports`, as Canvas (Rails) does.

    Canvas's own curl examples end some paths with a slash. Starlette would
    answer those with a 307 redirect, which curl does not follow by default,
    so the request is routed as if the slash were not there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = dict(scope)
            scope["path"] = scope["path"].rstrip("/") or "/"
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


DESCRIPTION = """\
Canvas-style Account Reports, Course Reports and Progress over the tables the
Live Events consumer keeps. Point a Canvas API client (for example `canvasapi`)
at this server's base URL with a token from `canvas-progress token create`.

Every error is answered in Canvas's shape, `{"errors": [{"message": "..."}]}`,
the message naming the parameter or header at fault. A token sees only its
accounts: anything outside them answers 404, as a resource that does not exist.
"""
# Where /docs and /redoc load Swagger UI's and ReDoc's files (and their favicon) from: the files the installed
# fastapi-offline package ships (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png), not a CDN.
DOCS_STATIC = "/static-offline-docs"
DOCS_FILES = resources.files("fastapi_offline") / "static"
# Swagger UI would send the document to validator.swagger.io (and show its badge) when served on a public host.
SWAGGER_UI = {"validatorUrl": None}
# The pages' policy: everything from this server. It also stops what the bundles themselves would fetch from
# elsewhere (ReDoc's sidebar shows Redocly's logo from cdn.redoc.ly) before any request is made. ReDoc runs its
# search in a worker made from a blob: URL, and both inject inline styles; the one inline script carries the nonce.
DOCS_POLICY = ("default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# FastAPI's own validation-error schemas: never answered here (RequestValidationError is a 400 or 404, errors.install).
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]


def operation_id(route: APIRoute) -> str:
    """Every operation's id is its function's name (`start_account_report`), for every route, later ones included."""
    return route.name


def without_422(document: dict[str, Any]) -> dict[str, Any]:
    """The document without FastAPI's 422 responses and their schemas: a request it cannot read is a 400 or 404 here."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return document


def with_policy(page: HTMLResponse) -> HTMLResponse:
    """The page with DOCS_POLICY, and its inline script allowed by a nonce of its own."""
    nonce = secrets.token_urlsafe(16)
    html = bytes(page.body).decode("utf-8").replace("<script>", f'<script nonce="{nonce}">')
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_POLICY.format(nonce=nonce),
                                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc), working offline: their files are served from DOCS_STATIC.

    As fastapi-offline's FastAPIOffline() does, with a Content-Security-Policy and no OAuth2 redirect page (the
    API takes bearer tokens, not OAuth2).
    """
    app.mount(DOCS_STATIC, StaticFiles(directory=str(DOCS_FILES)), name="docs-static")

    def static(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{DOCS_STATIC}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return with_policy(get_swagger_ui_html(
            openapi_url=openapi_url(request), title=f"{app.title} - Swagger UI", oauth2_redirect_url=None,
            swagger_js_url=static(request, "swagger-ui-bundle.js"), swagger_css_url=static(request, "swagger-ui.css"),
            swagger_favicon_url=static(request, "favicon.png"), swagger_ui_parameters=app.swagger_ui_parameters))

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return with_policy(get_redoc_html(
            openapi_url=openapi_url(request), title=f"{app.title} - ReDoc", redoc_js_url=static(request, "redoc.standalone.js"),
            redoc_favicon_url=static(request, "favicon.png"), with_google_fonts=False))


def install_openapi(app: FastAPI) -> None:
    """app.openapi() (and /openapi.json, /docs, /redoc) serve the document without 422.

    FastAPI caches the document, and builds it again when a route is added; the 422s are taken out of each build
    (taking them out again of a cached one changes nothing).
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return without_422(generate())

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(engine: Engine, runner: ReportRunner, public_url: str | None = None,
               allowed_hosts: str = DEFAULT_ALLOWED_HOSTS) -> FastAPI:
    """The app; ValueError naming a bad ALLOWED_HOSTS entry, or a PUBLIC_URL without a host."""
    patterns = host_patterns(allowed_hosts, public_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runner.start()
        log.info("report runner started with %d worker(s)", runner.workers)
        try:
            yield
        finally:
            runner.stop()
            log.info("report runner stopped")

    redact_access_log()
    app = FastAPI(title="canvas-progress Reports API", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  generate_unique_id_function=operation_id, swagger_ui_parameters=SWAGGER_UI, docs_url=None, redoc_url=None)
    # /docs and /redoc, with their JavaScript, CSS and favicon served from fastapi-offline's files under DOCS_STATIC
    # (ReDoc without Google Fonts): nothing they load leaves this server.
    install_docs(app)
    install_openapi(app)
    app.state.engine = engine
    app.state.runner = runner
    app.state.public_url = public_url.rstrip("/") + "/" if public_url else None
    # Innermost (added first): the route reads the body through it, so a 413 is raised in the route,
    # where the CanvasError handler answers it (the metrics middleware reads nothing itself).
    app.add_middleware(LimitBody)
    app.add_middleware(IgnoreTrailingSlash)
    errors.install(app)
    metrics.install(app, engine)
    # Outermost (added last): a Host not allowed is refused before anything else.
    app.add_middleware(AllowedHosts, patterns=patterns)
    app.include_router(router)
    app.include_router(dashboard_router)

    @app.get("/healthz", tags=["Health"], summary="The server is up", response_model=Health)
    def healthz() -> dict[str, str]:
        """The liveness probe: `{"status": "ok"}` while the server answers. No token; any Host."""
        return {"status": "ok"}

    last_failure: list[str | None] = [None]  # logged once per change, not at every probe

    @app.get("/readyz", tags=["Health"], summary="The database answers", response_model=Health,
             responses={503: {"model": Health, "description": "The database does not answer (the reason is logged)"}})
    def readyz() -> JSONResponse:
        """The readiness probe: 200 `{"status": "ok"}` when the database answers, else 503 `{"status": "unavailable"}`.

        No token; any Host. The database's error is logged, never answered.
        """
        # Unauthenticated: the answer is the status only; the database's error (host, port, name) goes to the log.
        detail = database_ready(engine)
        if detail is not None:  # logged, and answered 503
            if detail != last_failure[0]:
                log.warning("readiness check failed: %s", detail)
                last_failure[0] = detail
            return JSONResponse({"status": "unavailable"}, status_code=503)
        if last_failure[0] is not None:
            log.info("ready again: the database answers")
            last_failure[0] = None
        return JSONResponse({"status": "ok"})

    return app

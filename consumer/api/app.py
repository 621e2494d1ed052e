"""The FastAPI application: routes, Canvas-shaped errors, health probes, and the report runner's lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from consumer import __version__
from consumer.api import errors, metrics
from consumer.api.body_limit import LimitBody
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
"""


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
    app = FastAPI(title="canvas-progress Reports API", version=__version__, description=DESCRIPTION, lifespan=lifespan)
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

    @app.get("/healthz", tags=["Health"], summary="The server is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    last_failure: list[str | None] = [None]  # logged once per change, not at every probe

    @app.get("/readyz", tags=["Health"], summary="The database answers")
    def readyz() -> JSONResponse:
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

"""The FastAPI application: routes, Canvas-shaped errors, health probes, and the report runner's lifetime."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from starlette.types import ASGIApp, Receive, Scope, Send

from consumer import __version__
from consumer.api import errors, metrics
from consumer.api.routes import router
from consumer.reports.runner import ReportRunner

log = logging.getLogger("consumer.api")

_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&\s]*", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Canvas clients may pass `?access_token=`: keep it out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
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


def create_app(engine: Engine, runner: ReportRunner, public_url: str | None = None) -> FastAPI:
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
    app.add_middleware(IgnoreTrailingSlash)
    errors.install(app)
    metrics.install(app, engine)
    app.include_router(router)

    @app.get("/healthz", tags=["Health"], summary="The server is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["Health"], summary="The database answers")
    def readyz() -> JSONResponse:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - reported, and logged
            log.warning("readiness check failed: %s", error)
            return JSONResponse({"status": "unavailable", "database": str(error).splitlines()[0]}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app

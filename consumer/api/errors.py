"""Errors in Canvas's shape: `{"errors": [{"message": "..."}]}`."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from consumer.reports.catalogue import quoted
from consumer.store.engine import hide_password
from consumer.text import one_line, safe_text

log = logging.getLogger("consumer.api")

NOT_FOUND = "The specified resource does not exist."
# Every message quotes at most a bounded part of what the client sent (catalogue.quoted); this is the backstop.
MAX_ERROR_MESSAGE = 500
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class ErrorMessage(BaseModel):
    message: str


class Errors(BaseModel):
    errors: list[ErrorMessage]
    status: str | None = None


class CanvasError(Exception):
    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers
        self.status = status


def not_found(message: str = NOT_FOUND) -> CanvasError:
    return CanvasError(404, message)


def bad_request(message: str) -> CanvasError:
    return CanvasError(400, message)


def too_many_requests(message: str, retry_after: int) -> CanvasError:
    return CanvasError(429, message, {"Retry-After": str(retry_after)})


def error_message(message: str) -> str:
    """One line a client can print: control, invisible and lone-surrogate characters escaped, at most MAX_ERROR_MESSAGE long.

    (A lone surrogate would also make rendering the JSON fail with a 500.)
    """
    message = safe_text(message)
    if len(message) > MAX_ERROR_MESSAGE:
        message = f"{message[:MAX_ERROR_MESSAGE - 30]}... ({len(message)} characters)"
    return message


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None, status: str | None = None) -> JSONResponse:
    body: dict[str, object] = {"errors": [{"message": error_message(message)}]}
    if status is not None:
        body["status"] = status
    return JSONResponse(body, status_code=status_code, headers=headers)


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": Errors, "description": "A bad parameter, named in the message"},
    401: {"model": Errors, "description": "No token, or an unknown or revoked one"},
    404: {"model": Errors, "description": "No such resource, or one the token may not see"},
    413: {"model": Errors, "description": "The request body is over 1 MiB"},
    503: {"model": Errors, "description": "The database is unavailable; try again"},
}
# Where a report is started: the account's queued and running jobs are at REPORT_JOBS_PER_ACCOUNT.
LIMIT_RESPONSES: dict[int | str, dict[str, object]] = {
    429: {"model": Errors, "description": "The account has as many report jobs queued or running as it may; "
          "try again after Retry-After seconds",
          "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}},
}


def allowed_methods(request: Request) -> str:
    """Every method some route serves on this path.

    Starlette's 405 names only the first route that matched the path; each
    method here is a route of its own (GET and POST of .../reports/:report).
    """
    methods = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return ", ".join(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(CanvasError)
    async def _canvas(_request: Request, error: CanvasError) -> JSONResponse:
        return error_response(error.status_code, error.message, error.headers, error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = NOT_FOUND if error.status_code == 404 else str(error.detail)
        headers = getattr(error, "headers", None)
        if error.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return error_response(error.status_code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(problem.get("loc", ("",))[0] == "path" for problem in problems):
            return error_response(404, NOT_FOUND)  # /progress/abc is a resource that does not exist
        problem = problems[0]
        where = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "request"
        return error_response(400, f"{where}: {problem.get('msg')} (got {quoted(problem.get('input'))})")

    async def _database(request: Request, error: Exception) -> JSONResponse:
        # Unreachable, restarting, locked, or every pooled connection busy for pool_timeout:
        # the client should try again, not report a bug.
        detail = one_line(hide_password(str(getattr(error, "orig", None) or error),
                                        request.app.state.engine.url.render_as_string(False)))
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, detail)
        return error_response(503, "the database is unavailable; try again shortly", {"Retry-After": "5"})

    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(PoolTimeout, _database)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _error: ClientDisconnect) -> JSONResponse:
        # The client closed the connection before sending the whole body: nobody reads this answer.
        log.info("client disconnected before sending the whole body of %s %s", request.method, request.url.path)
        return error_response(400, "the request body ended early: the client disconnected")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        reference = uuid.uuid4().hex[:12]
        log.error("unhandled error %s on %s %s", reference, request.method, request.url.path, exc_info=error)
        return error_response(500, f"internal error (logged as {reference})")

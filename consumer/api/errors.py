"""Errors in Canvas's shape: `{"errors": [{"message": "..."}]}`."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.staticfiles import StaticFiles

from consumer.reports.catalogue import quoted
from consumer.store.engine import hide_password
from consumer.text import one_line, safe_text

log = logging.getLogger("consumer.api")

NOT_FOUND = "The specified resource does not exist."
# Every message quotes at most a bounded part of what the client sent (catalogue.quoted); this is the backstop.
MAX_ERROR_MESSAGE = 500
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class ErrorMessage(BaseModel):
    message: str = Field(description="What went wrong, naming the parameter or header and quoting (a bounded part of) its value.")


class Errors(BaseModel):
    """Canvas's error shape: `{"errors": [{"message": "..."}]}`, with `status` on some (as Canvas sends it)."""

    errors: list[ErrorMessage] = Field(min_length=1)
    status: str | None = Field(default=None, description="`unauthenticated` when no token was sent; absent otherwise.")


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


Responses = dict[int | str, dict[str, Any]]


def _documented(description: str, example: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"model": Errors, "description": description,
                                "content": {"application/json": {"example": {"errors": [{"message": example}]}}}}
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}
# Every error status an operation can answer, in Canvas's shape. Routes pick theirs (see documented()); the
# OpenAPI document never lists FastAPI's 422: a request FastAPI cannot read is answered 400 or 404 (install()).
ERROR_DOCS: dict[int, dict[str, Any]] = {
    400: _documented("A bad query parameter, form field or JSON body, or a Host header this server does not answer, "
                     "named in the message", "per_page: Input should be a valid integer, unable to parse string as an "
                     "integer (got 'ten')"),
    401: _documented("No token, or an unknown or revoked one (`WWW-Authenticate: Bearer`)", "Invalid access token.",
                     {"WWW-Authenticate": {"description": "Bearer realm=\"canvas-progress\"", "schema": {"type": "string"}}}),
    404: _documented("No such resource, or one the token may not see (the same answer, so ids do not leak between "
                     "accounts)", NOT_FOUND),
    413: _documented("The request body is over 1 MiB", "the request body is larger than 1048576 bytes, the most this API "
                     "accepts (Content-Length: 2000000)"),
    429: _documented("The account has as many report jobs queued or running as it may (REPORT_JOBS_PER_ACCOUNT); "
                     "try again after Retry-After seconds", "account 79 already has 10 report jobs queued or running, the "
                     "most it may have (REPORT_JOBS_PER_ACCOUNT=10); start this one after one of them has finished, "
                     "or abort one", _RETRY_AFTER),
    503: _documented("The database is unavailable; try again after Retry-After seconds",
                     "the database is unavailable; try again shortly", _RETRY_AFTER),
}


def documented(*statuses: int) -> Responses:
    """The OpenAPI `responses` of these error statuses (from ERROR_DOCS), for a route's or a router's `responses=`."""
    return {status: ERROR_DOCS[status] for status in statuses}


# Every authenticated route: a bad parameter or Host (400), the token (401), the database (503).
AUTHENTICATED_RESPONSES: Responses = documented(400, 401, 503)
# Where the path names a resource (an account, course, report type or job) the token may not see, or that is gone.
NOT_FOUND_RESPONSES: Responses = documented(404)
# An authenticated route whose path names a resource: a router's default (the dashboard's).
ERROR_RESPONSES: Responses = {**AUTHENTICATED_RESPONSES, **NOT_FOUND_RESPONSES}
# Where the route reads a request body.
BODY_RESPONSES: Responses = documented(413)
# Where a report is started: the account's queued and running jobs are at REPORT_JOBS_PER_ACCOUNT.
LIMIT_RESPONSES: Responses = documented(429)


def allowed_methods(request: Request) -> str:
    """Every method some route serves on this path.

    Starlette's 405 names only the first route that matched the path; each
    method here is a route of its own (GET and POST of .../reports/:report).
    """
    methods = []
    for method in _METHODS:
        # Inside a mount the scope's root_path has the mount's path added; match from the app's own.
        scope = {**request.scope, "method": method,
                 "root_path": request.scope.get("app_root_path", request.scope.get("root_path", ""))}
        if any(route.matches(scope)[0] is Match.FULL and _serves(route, method) for route in request.app.router.routes):
            methods.append(method)
    return ", ".join(methods)


def _serves(route: BaseRoute, method: str) -> bool:
    """A mount matches whatever the method; static files (/docs' and /redoc's) are served to GET and HEAD only."""
    return method in ("GET", "HEAD") if isinstance(getattr(route, "app", None), StaticFiles) else True


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

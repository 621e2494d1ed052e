"""Bearer-token authentication and the account scoping every route applies.

A token sees only its accounts. Anything outside them answers 404, exactly
as a resource that does not exist, so ids never leak between accounts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, select

from consumer.api.errors import CanvasError, not_found
from consumer.events.ids import parse_local_id
from consumer.store.tables import courses
from consumer.tokens import Caller, authenticate

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="canvas-progress"'}

_bearer = HTTPBearer(auto_error=False, description="a token from `canvas-progress token create`")


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    token = credentials.credentials if credentials is not None else request.query_params.get("access_token")
    if not token:
        raise CanvasError(401, "user authorization required", CHALLENGE, status="unauthenticated")
    caller = authenticate(engine_of(request), token)
    if caller is None:
        raise CanvasError(401, "Invalid access token.", CHALLENGE)
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]


def visible_account(caller: Caller, account: str) -> int:
    """The local account id the path names (local or global id, or `self` for a token with one account), if the caller may see it."""
    if account == "self" and len(caller.accounts) == 1:
        return next(iter(caller.accounts))
    try:
        local = parse_local_id(account)  # a global id names the same account
    except ValueError:
        raise not_found() from None
    if local not in caller.accounts:
        raise not_found()
    return local


def course_account(engine: Engine, course_id: int) -> int | None:
    """The account of a course, or None (no such course, or its account is not known yet)."""
    with engine.connect() as connection:
        return connection.execute(select(courses.c.account_id).where(courses.c.id == course_id)).scalar_one_or_none()


def visible_course(engine: Engine, caller: Caller, course_id: int) -> int:
    """The account of a course the caller may see."""
    account_id = course_account(engine, course_id)
    if account_id is None or account_id not in caller.accounts:
        raise not_found()
    return account_id

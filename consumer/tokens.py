"""API tokens: created by `canvas-progress token create`, shown once, stored only as a hash.

Tokens are 256 random bits, so one SHA-256 is enough to store them safely
(a slow password hash protects guessable secrets; these are not guessable).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, insert, select, update

from consumer.store.tables import api_token_accounts, api_tokens

PREFIX = "cpt_"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a valid token belongs to: its id and the accounts it may see."""

    token_id: int
    accounts: frozenset[int]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str | None
    accounts: tuple[int, ...]
    created_at: datetime
    revoked_at: datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(engine: Engine, accounts: list[int], name: str | None = None) -> tuple[int, str]:
    """A new token for these accounts: (its id, the token). The token is not kept anywhere."""
    if not accounts:
        raise ValueError("a token needs at least one account")
    token = PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as connection:
        token_id = connection.execute(
            insert(api_tokens)
            .values(token_hash=token_hash(token), name=name, created_at=datetime.now(timezone.utc))
            .returning(api_tokens.c.id)
        ).scalar_one()
        connection.execute(insert(api_token_accounts), [{"token_id": token_id, "account_id": a} for a in sorted(set(accounts))])
    return token_id, token


def authenticate(engine: Engine, token: str) -> Caller | None:
    """The caller a token stands for, or None when it is unknown or revoked."""
    with engine.connect() as connection:
        token_id = connection.execute(
            select(api_tokens.c.id).where(api_tokens.c.token_hash == token_hash(token), api_tokens.c.revoked_at.is_(None))
        ).scalar_one_or_none()
        if token_id is None:
            return None
        accounts = connection.execute(
            select(api_token_accounts.c.account_id).where(api_token_accounts.c.token_id == token_id)
        ).scalars().all()
    return Caller(token_id, frozenset(accounts))


def list_tokens(engine: Engine) -> list[TokenInfo]:
    with engine.connect() as connection:
        rows = connection.execute(select(api_tokens).order_by(api_tokens.c.id)).all()
        links = connection.execute(select(api_token_accounts).order_by(api_token_accounts.c.account_id)).all()
    accounts: dict[int, list[int]] = {}
    for token_id, account_id in links:
        accounts.setdefault(token_id, []).append(account_id)
    return [TokenInfo(row.id, row.name, tuple(accounts.get(row.id, ())), row.created_at, row.revoked_at) for row in rows]


def revoke_token(engine: Engine, token_id: int) -> bool:
    with engine.begin() as connection:
        return connection.execute(
            update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(timezone.utc))
        ).rowcount == 1

"""The read-only role BI tools connect as (Postgres)."""

from __future__ import annotations

from sqlalchemy import Engine

from consumer.store.tables import BI_VIEWS, STATE_TABLES

ROLE = "bi_reader"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def grant_bi_reader(engine: Engine, login: str | None = None, password: str | None = None) -> list[str]:
    """Create `bi_reader` (NOLOGIN) with SELECT on the tracked tables and the BI views, and
    optionally a LOGIN user that is a member of it. Returns the statements run (password hidden).

    The quarantine (`rejected_events`) is left out: its payloads may hold
    personal data and it is an operator's tool, not a dashboard's.
    """
    if engine.dialect.name != "postgresql":
        raise ValueError("roles exist on Postgres only; the embedded SQLite file has no access control")
    quote = engine.dialect.identifier_preparer.quote_identifier
    objects = ", ".join(quote(name) for name in [*(t.name for t in STATE_TABLES), *BI_VIEWS])
    steps = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN CREATE ROLE {ROLE} NOLOGIN; END IF; END $$",
        f"GRANT USAGE ON SCHEMA public TO {ROLE}",
        f"GRANT SELECT ON {objects} TO {ROLE}",
    ]
    shown = list(steps)
    if login:
        user = quote(login)
        create = (f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(login)}) "
                  f"THEN CREATE ROLE {user} LOGIN; END IF; END $$")
        steps += [create, f"ALTER ROLE {user} WITH LOGIN PASSWORD {'NULL' if password is None else _literal(password)}", f"GRANT {ROLE} TO {user}"]
        shown += [create, f"ALTER ROLE {user} WITH LOGIN PASSWORD {'NULL' if password is None else chr(39) + '***' + chr(39)}", f"GRANT {ROLE} TO {user}"]
    with engine.begin() as connection:
        for statement in steps:
            connection.exec_driver_sql(statement.replace("%", "%%"))
    return shown

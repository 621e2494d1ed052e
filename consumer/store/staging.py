"""Write transactions: the Postgres staging tables, created only on connections that write.

On Postgres, batches travel by binary COPY into session-local temporary
tables (`store/upsert.py`). Creating them needs the TEMP privilege on the
database, which read-only users (BI, `status`, `summary`, `serve`) need not
have, and which hardened databases often revoke from PUBLIC. So they are
created here, once per database connection and only on connections used
for writes, in a transaction of their own committed before the data
transaction begins: a data transaction that rolls back must never take
them with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

_READY = "canvas_progress_staging_tables"  # key in the pool's per-DBAPI-connection `info`
INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """Like `engine.begin()`, on a connection whose staging tables exist (Postgres).

    Raises DatabaseUnavailable naming the missing privilege when the user
    may not create temporary tables.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            ensure_staging_tables(connection)
        with connection.begin():
            yield connection


def session_tables() -> list[Table]:
    """The temporary tables a writing session needs: one per row kind, and the daily figures' work table."""
    from consumer.store.daily import touched
    from consumer.store.upsert import staging_tables

    return [*staging_tables(), touched]


def ensure_staging_tables(connection: Connection) -> None:
    """Create this session's staging tables unless this DBAPI connection already has them."""
    info = connection.connection.info  # lives as long as the DBAPI connection, across checkouts
    if info.get(_READY):
        return
    try:
        with connection.begin():
            for table in session_tables():
                connection.execute(CreateTable(table, if_not_exists=True))
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        from consumer.core import DatabaseUnavailable

        user, database, _ = who(connection)
        raise DatabaseUnavailable(
            f"the database user {user} lacks the TEMP privilege on database {database}, which writes need "
            f"(rows are staged in temporary tables): GRANT TEMP ON DATABASE {database} TO {user}"
        ) from error
    info[_READY] = True


def who(connection: Connection) -> tuple[str, str, str]:
    """(user, database, schema) of a Postgres session, quoted as a GRANT needs them, for messages naming a privilege."""
    try:
        names = connection.execute(
            text("SELECT quote_ident(current_user), quote_ident(current_database()), quote_ident(coalesce(current_schema(), 'public'))")
        ).one()
        connection.rollback()
        return tuple(names)
    except DBAPIError:
        return "(this user)", "(this database)", "public"

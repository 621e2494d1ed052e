"""The read-only role BI tools connect as (Postgres).

Role names are never spliced into SQL text: whether a role exists is asked
with a bound parameter, and CREATE / ALTER / GRANT get the name as a quoted
identifier and the password as a quoted literal (psycopg's `sql` module),
all in one transaction under an advisory lock, so two runs at once cannot
both try to create the same role.

The password itself never travels: the statement carries the verifier the
server would store (SCRAM-SHA-256, or md5 where the server's
password_encryption says so), made by libpq as psql's `\\password` does, so
a server that logs DDL (log_statement) or keeps statement texts
(pg_stat_statements) records no password.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from consumer.store.tables import BI_VIEWS, STATE_TABLES, bi_settings, calendar_days

ROLE = "bi_reader"
_MAX_NAME_BYTES = 63  # Postgres cuts longer names (NAMEDATALEN - 1): the role made would not be the one named
_LOCK = 0x62695F726F6C65  # "bi_role": serialises concurrent runs


class NoPassword(ValueError):
    """A new login was asked for without BI_PASSWORD."""


def grant_bi_reader(engine: Engine, login: str | None = None, password: str | None = None) -> list[str]:
    """Create `bi_reader` (NOLOGIN) with SELECT on the tracked tables (the history included), `bi_settings`
    and the BI views, and
    optionally a LOGIN user that is a member of it. Returns the statements run (password hidden).

    Safe to run again. Without `password` an existing login keeps the one it
    has; a login that does not exist yet needs one (NoPassword otherwise).

    The quarantine (`rejected_events`) is left out: its payloads may hold
    personal data and it is an operator's tool, not a dashboard's.
    """
    if engine.dialect.name != "postgresql":
        raise ValueError("roles exist on Postgres only; the embedded SQLite file has no access control")
    if login is not None:
        _check_name(login)
    if password == "":
        raise ValueError("BI_PASSWORD is empty (Postgres would clear the password): unset it to keep the login's password, or give one")
    from psycopg import sql

    objects = sql.SQL(", ").join(sql.Identifier(name) for name in [*(t.name for t in (*STATE_TABLES, bi_settings, calendar_days)), *BI_VIEWS])
    reader = sql.Identifier(ROLE)
    shown: list[str] = []
    with engine.begin() as connection:
        driver = connection.connection.driver_connection

        def run(statement: sql.Composable, display: sql.Composable | None = None) -> None:
            driver.execute(statement)
            shown.append((display or statement).as_string(driver))

        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        if not _role_exists(connection, ROLE):
            run(sql.SQL("CREATE ROLE {} NOLOGIN").format(reader))
        run(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(reader))
        run(sql.SQL("GRANT SELECT ON {} TO {}").format(objects, reader))
        if login is None:
            return shown
        user = sql.Identifier(login)
        exists = _role_exists(connection, login)
        if not exists and password is None:
            raise NoPassword(f"the login {login!r} does not exist yet: set BI_PASSWORD to its password and run again")
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        if password is None:  # an existing login keeps its password
            run(sql.SQL("{} {} WITH LOGIN").format(verb, user))
        else:
            run(sql.SQL("{} {} WITH LOGIN PASSWORD {}").format(verb, user, sql.Literal(_verifier(driver, login, password))),
                sql.SQL("{} {} WITH LOGIN PASSWORD {}").format(verb, user, sql.Literal("***")))
        run(sql.SQL("GRANT {} TO {}").format(reader, user))
    return shown


def _verifier(driver, login: str, password: str) -> str:  # psycopg's Connection
    """What the server stores for `password`, in the algorithm it is configured for (password_encryption)."""
    algorithm = driver.execute("SHOW password_encryption").fetchone()[0]
    return driver.pgconn.encrypt_password(password.encode(), login.encode(), algorithm.encode()).decode()


def _check_name(login: str) -> None:
    if not login:
        raise ValueError("--login: the name is empty")
    if "\x00" in login:
        raise ValueError(f"--login {login!r}: a role name cannot hold a NUL character")
    if len(login.encode()) > _MAX_NAME_BYTES:
        raise ValueError(f"--login {login!r}: longer than Postgres's {_MAX_NAME_BYTES} bytes (it would be cut short)")


def _role_exists(connection: Connection, name: str) -> bool:
    return connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}).first() is not None

"""Upgrade the schema to head, safely when several processes start at once."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from consumer.store.staging import INSUFFICIENT_PRIVILEGE, who
from consumer.text import one_line

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: importing it (with mako and pygments) costs every
# command about 0.15 s of start-up, and a command that fails on its settings never needs it.

# Any constant works; it only has to be the same in every process of this app.
_ADVISORY_LOCK_KEY = 7_340_215_906_113


def script_location() -> str:
    """Where the Alembic scripts are: inside the installed package, or the checkout's `migrations/`."""
    try:
        return str(resources.files("consumer.migrations"))
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / "migrations")


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location())
    return config


# Descriptors opened for the migration lock stay open for the life of the process: closing
# any descriptor of a file drops every POSIX lock the process holds on it, SQLite's own
# included, and SQLite then fails with "disk I/O error" (or worse) in other connections.
_LOCK_HANDLES: dict[str, BinaryIO] = {}
_LOCK_HANDLES_GUARD = threading.Lock()
_MIGRATING = threading.Lock()  # flock does not exclude threads sharing one descriptor


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive flock on the SQLite file while migrating.

    flock() locks are separate from the POSIX record locks SQLite itself
    uses (on Linux), so this serialises migrations without touching SQLite's
    own locking, and leaves no lock file behind.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # not on POSIX: no cross-process guard
        yield
        return
    if database.startswith("file:"):  # a SQLite URI filename (?uri=true): file:x.db, file:///abs/x.db
        database = database[len("file:") :]
        database = database[2:] if database.startswith("//") else database
    path = os.path.realpath(database)
    with _LOCK_HANDLES_GUARD:
        handle = _LOCK_HANDLES.get(path)
        if handle is None:
            try:
                handle = open(path, "a+b")  # kept open on purpose (see above)
            except PermissionError:  # a read-only file: flock works on a read-only descriptor too
                try:
                    handle = open(path, "rb")
                except OSError:
                    handle = None
            except OSError:
                handle = None
            if handle is not None:
                _LOCK_HANDLES[path] = handle
    if handle is None:  # SQLite itself reports why the file cannot be used
        yield
        return
    with _MIGRATING:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest revision.

    Concurrent starts are serialised: on Postgres by a session-level
    advisory lock, on SQLite by a lock on the database file. The second
    process waits, then finds nothing left to do.
    """
    with _sqlite_file_lock(engine):
        _upgrade(engine)


def _upgrade(engine: Engine) -> None:
    from alembic import command

    config = alembic_config()
    with engine.connect() as connection:
        locked = connection.dialect.name == "postgresql"
        if locked:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            connection.commit()
        try:
            problem = schema_problem(current_revision(connection))
            if problem and problem.newer:
                raise problem
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                    raise
                connection.rollback()
                raise _missing_privilege(connection, error) from error
            connection.commit()
        finally:
            if locked:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY})
                connection.commit()


def _missing_privilege(connection: Connection, error: DBAPIError) -> Exception:
    """DatabaseUnavailable naming the privilege the migration lacks (the worker waits for it; `migrate` exits 1)."""
    from consumer.core import DatabaseUnavailable
    detail = one_line(str(error.orig))
    user, database, schema = who(connection)
    if "permission denied for schema" in detail:
        return DatabaseUnavailable(
            f"the database user {user} lacks CREATE on schema {schema} of database {database}, which migrate needs to "
            f"create the tables (since Postgres 15 only the schema's owner has it): GRANT CREATE ON SCHEMA {schema} TO "
            f"{user}, or run `canvas-progress migrate` as the owner"
        )
    return DatabaseUnavailable(
        f"the database user {user} lacks a privilege migrate needs ({detail}): run `canvas-progress migrate` as the "
        f"owner of schema {schema} of database {database} and of its tables"
    )


class SchemaError(RuntimeError):
    """The database's schema revision is not the one this code works with; the message says what to do."""

    def __init__(self, message: str, newer: bool) -> None:
        super().__init__(message)
        self.newer = newer


def schema_problem(current: str | None) -> SchemaError | None:
    """What is wrong with a database at revision `current` for this code (None: it is at head)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if current == head:
        return None
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        return SchemaError(
            f"the database schema is at revision {current}, which this version of canvas-progress does not know "
            f"(it knows up to {head}): the database was migrated by a newer version; upgrade canvas-progress",
            newer=True,
        )
    return SchemaError(
        f"the database schema is at {current or 'nothing'}, not {head}: run `canvas-progress migrate` (or drop --no-migrate)",
        newer=False,
    )


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()

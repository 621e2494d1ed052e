"""Upgrade the schema to head, safely when several processes start at once."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

# Any constant works; it only has to be the same in every process of this app.
_ADVISORY_LOCK_KEY = 7_340_215_906_113


def script_location() -> str:
    """Where the Alembic scripts are: inside the installed package, or the checkout's `migrations/`."""
    try:
        return str(resources.files("consumer.migrations"))
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / "migrations")


def alembic_config() -> Config:
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
    path = os.path.realpath(database)
    with _LOCK_HANDLES_GUARD:
        handle = _LOCK_HANDLES.get(path)
        if handle is None:
            handle = _LOCK_HANDLES[path] = open(path, "a+b")  # noqa: SIM115 - kept open on purpose (see above)
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
    config = alembic_config()
    with engine.connect() as connection:
        locked = connection.dialect.name == "postgresql"
        if locked:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if locked:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY})
                connection.commit()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()

"""Engine creation, with the per-dialect settings the tracker relies on, and the URLs it accepts."""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from consumer.config import ConfigurationError

SUPPORTED_URLS = "postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
_DRIVERS = ("postgresql+psycopg", "sqlite", "sqlite+pysqlite")
_SQLITE_HEADER = b"SQLite format 3\x00"


def normalise_url(url: str) -> str:
    """`url` as the tracker uses it (postgres:// and postgresql:// mean psycopg 3).

    Raises ConfigurationError, saying why, for anything that cannot work:
    an empty or unparsable URL, another database, a driver that is not installed.
    """
    if not url.strip():
        raise ConfigurationError(f"it is empty: unset it for the default (sqlite:///./course_progress.db), or give {SUPPORTED_URLS}")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise ConfigurationError(f"not a database URL ({error}): expected {SUPPORTED_URLS}") from None
    if parsed.drivername not in _DRIVERS:
        backend, _, driver = parsed.drivername.partition("+")
        if backend in ("postgresql", "postgres"):
            raise ConfigurationError(f"the Postgres driver {driver!r} is not supported: use postgresql+psycopg:// (or postgresql://)")
        if backend == "sqlite":
            raise ConfigurationError(f"the SQLite driver {driver!r} is not supported: use sqlite:///path/to/file.db")
        raise ConfigurationError(f"{backend}:// is not a database the tracker supports: use {SUPPORTED_URLS}")
    return url


def database_setting(url: str) -> str:
    """`normalise_url` for DATABASE_URL / --database-url, which must also name a database that outlives the command."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigurationError("an in-memory SQLite database would vanish when the command ends: give a file, sqlite:///path/to/file.db")
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine for `url`; SQLite gets WAL and a busy timeout so readers never block the writer.

    Nothing here needs more than CONNECT (and SELECT for what the caller reads):
    the Postgres staging tables that writes need are created by
    `store.staging.write_transaction`, on connections that write.
    """
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_file(parsed)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if "connect_timeout" not in parsed.query:
        # An unreachable host (not a refused connection) would otherwise hang the writer.
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _check_sqlite_file(url: URL) -> None:
    """A SQLite path that can never work (missing directory, a directory, not a database) is a misconfiguration."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query.get("uri"):
        return
    path = os.path.abspath(database)
    where = f"DATABASE_URL (--database-url) {display_url(str(url))!r}:"
    if os.path.isdir(path):
        raise ConfigurationError(f"{where} {path} is a directory, not a SQLite database file")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ConfigurationError(f"{where} the SQLite file {path} cannot be created: the directory {folder} does not exist")
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return  # created on first use
    except OSError as error:
        raise ConfigurationError(f"{where} the SQLite file {path} cannot be read: {error.strerror}") from None
    if header and header != _SQLITE_HEADER:
        raise ConfigurationError(f"{where} {path} is not a SQLite database (the file holds something else)")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages (also when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^/@:]*:)[^@/]*@", r"\1***@", url)


def hide_password(text: str, url: str) -> str:
    """`text` with the password of `url` replaced by ***, wherever a driver may have echoed it."""
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        password = None
    return text.replace(password, "***") if password else text

"""Engine creation, with the per-dialect settings the tracker relies on, and the URLs it accepts."""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from consumer.core import ConfigurationError

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


def fold_case(text: str | None) -> str | None:
    """SQLite's `fold_case(x)`: lower case as Postgres's lower() gives it in a UTF-8 database, one character at a
    time (SQLite's own lower() folds ASCII letters only, so a search for "éco" would miss "École"). Per character,
    as Postgres does: Python's whole-string lower() makes a word-final "Σ" "ς", and "İ" two characters, "i̇";
    here they are "σ" and "i"."""
    if text is None:
        return None
    return "".join(_fold_char(char) for char in text) if not text.isascii() else text.lower()


def _fold_char(char: str) -> str:
    lowered = char.lower()
    return lowered[0] if lowered else char


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("fold_case", 1, fold_case, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# A query parameter (or libpq keyword) whose value is a credential: password, sslpassword, passfile, token...
_SECRET_KEY = re.compile(r"(?i)(?:^|(?<=[?&;\s]))[\w.-]*(?:pass|secret|token)[\w.-]*\s*=")
# Where a misparsed password splits into host, port, database and parameters.
_DELIMITERS = re.compile(r"[@:/?#&=;]")
_SHORTEST_FRAGMENT = 4  # shorter pieces would mask ordinary words; the URL itself is masked whatever their length
_HIDDEN = "***"


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages, whether or not it parses.

    Hidden: the userinfo password up to the last `@` (a password may hold an
    unescaped `@`, `:`, `/`, `?` or `#`), and everything after a credential
    query parameter (`?password=`, `sslpassword=`...: its value may hold an
    unescaped `&`).
    """
    secret_query = _SECRET_KEY.search(url, _after_scheme(url))
    shown = url if secret_query is None else url[: secret_query.end()] + _HIDDEN
    userinfo = _userinfo(url)
    if userinfo is not None:
        colon, at = userinfo
        shown = shown[: colon + 1] + _HIDDEN + shown[at:]
    return shown


def hide_password(text: str, url: str) -> str:
    """`text` with the password of `url` hidden, wherever a driver or parser may have echoed it (or a piece of it)."""
    if url and url in text:
        text = text.replace(url, display_url(url))
    for secret in url_secrets(url):
        if secret in text:
            text = text.replace(secret, _HIDDEN)
    return text


def url_secrets(url: str) -> list[str]:
    """Every text that may be a password of `url` or a piece of one, as written, decoded and encoded, longest first.

    A password holding an unescaped delimiter is parsed into pieces (SQLAlchemy
    splits `u:p@ss@host` into password `p` and host `ss@host`), and error
    messages quote those pieces: each run between delimiters counts. Only
    texts of `_SHORTEST_FRAGMENT` characters or more are listed: shorter ones
    would mask ordinary words (`display_url` hides a password of any length).
    """
    from urllib.parse import quote, quote_plus, unquote

    wholes = []
    userinfo = _userinfo(url)
    if userinfo is not None:
        wholes.append(url[userinfo[0] + 1 : userinfo[1]])
    wholes += [url[match.end() :] for match in _SECRET_KEY.finditer(url, _after_scheme(url))]
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is not None:
        wholes.append(parsed.password or "")
        wholes += [str(value) for key, value in parsed.query.items() if _SECRET_KEY.match(f"{key}=")]
    found = set()
    for whole in wholes:
        starts = [0, *(match.end() for match in _DELIMITERS.finditer(whole))]
        ends = [*(match.start() for match in _DELIMITERS.finditer(whole)), len(whole)]
        found.update(whole[start:end] for start in starts for end in ends if end - start >= _SHORTEST_FRAGMENT)
        found.add(whole)
    # As written, decoded, and encoded the ways SQLAlchemy renders a URL (userinfo and query).
    found |= {variant for piece in found for variant in (unquote(piece), quote(piece, safe=""), quote(piece, safe=" +"), quote_plus(piece))}
    return sorted((piece for piece in found if len(piece) >= _SHORTEST_FRAGMENT), key=len, reverse=True)


def _after_scheme(url: str) -> int:
    scheme = url.find("://")
    return scheme + 3 if scheme >= 0 else 0


def _userinfo(url: str) -> tuple[int, int] | None:
    """(colon, at): the userinfo password of `url` is url[colon + 1 : at].

    `at` is the first `@`, where SQLAlchemy splits, when no other `@` follows
    but in a query parameter's value (`?application_name=a@b`); otherwise the
    password held an unescaped `@` and `at` is the last one before any
    credential query parameter.
    """
    start = _after_scheme(url)
    at = url.find("@", start)
    if at < 0:
        return None
    location, _, query = url[at + 1 :].partition("?")
    if "@" in location or any("@" in pair.partition("=")[0] for pair in re.split("[&;]", query)):
        secret_query = _SECRET_KEY.search(url, start)
        at = url.rfind("@", start, secret_query.start() if secret_query else len(url))
    colon = url.find(":", start, at) if at >= 0 else -1
    return (colon, at) if colon >= 0 else None

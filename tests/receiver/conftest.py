"""Fixtures of the receiver's tests: Canvas's signing keys and JWKS, signed events, and the replay to compare with.

Every scenario ends the same way: the receiver's tables must equal what
replaying the events it answered 200 for produces (`replayed`), through the
same Pipeline that replay uses, into another database. The replayed inputs
are the exact bytes the receiver was given to store: a JWT's payload
segment (what was signed), or the body of an unsigned POST.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text

from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.store.tables import metadata
from tests.helpers import apply_events, dump_tables, rejected_rows
from tests.jwks_keys import CANVAS_ISSUER, JwksServer, SigningKey, canvas_claims, jwks, new_key, segments, sign
from tests.receiver.server import Receiver


@dataclass(frozen=True)
class Signed:
    """One event as Canvas POSTs it signed: the body, and the payload the receiver hands to the pipeline."""

    token: bytes
    payload: bytes


@dataclass
class Canvas:
    """Two published keys (Canvas publishes previous, current and next: events arrive under more than one),
    one it never published, the JWKS served over HTTP and the same JWKS as a file."""

    keys: tuple[SigningKey, SigningKey]
    unpublished: SigningKey
    server: JwksServer
    file: Path

    def sign(self, event: dict, key: int = 0, issuer: str | None = CANVAS_ISSUER, **claims) -> Signed:
        """`event` signed with published key number `key` (0 or 1), with Canvas's claims (and `claims` over them)."""
        signing_key = self.keys[key]
        token = sign({**canvas_claims(event, issuer=issuer), **claims}, signing_key, signing_key.kid)
        return Signed(token, segments(token)[1])


@pytest.fixture(scope="session")
def canvas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canvas]:
    keys = (new_key("canvas-2026-10"), new_key("canvas-2026-11"))
    document = jwks(*keys)
    file = tmp_path_factory.mktemp("jwks") / "jwks.json"
    file.write_bytes(orjson.dumps(document))
    with JwksServer(document) as server:
        yield Canvas(keys, new_key("canvas-never-published"), server, file)


@dataclass
class Replayed:
    tables: dict[str, list[tuple]]
    rejected: list[dict]  # rejected_events rows; `source` "test:N" is the N-th input (from 1)


@pytest.fixture
def replayed(pg_engine: Engine, tmp_path: Path):
    """`replayed(inputs)`: the tables and quarantine that replaying `inputs` (bytes) gives, on an emptied Postgres
    database (`pg_engine`); `replayed(inputs, sqlite=True)` on a new SQLite file."""
    count = 0

    def replay(inputs: Sequence[bytes], sqlite: bool = False) -> Replayed:
        nonlocal count
        count += 1
        engine = pg_engine
        if sqlite:
            engine = make_engine(f"sqlite:///{tmp_path / f'replayed-{count}.db'}")
            upgrade(engine)
        elif count > 1:  # pg_engine came empty; a second replay in the same test empties it again
            empty(engine)
        try:
            apply_events(engine, list(inputs))
            return Replayed(dump_tables(engine), rejected_rows(engine))
        finally:
            if sqlite:
                engine.dispose()

    return replay


@pytest.fixture
def emptied() -> Iterator:
    """`emptied(url)`: an engine on the database at `url` with every table emptied (a module's receiver keeps its
    database between tests; each test starts from empty tables while the receiver is idle)."""
    engines: list[Engine] = []

    def open_emptied(url: str) -> Engine:
        engine = make_engine(url)
        engines.append(engine)
        empty(engine)
        return engine

    yield open_emptied
    for engine in engines:
        engine.dispose()


@pytest.fixture
def receivers(canvas: Canvas, tmp_path: Path) -> Iterator:
    """`receivers(database_url, *flags, spool_dir=..., name=...)`: a started `receive` process, verifying with the
    JWKS file and Canvas's issuer; every one still running at the end is killed."""
    started: list[Receiver] = []

    def start(database_url: str, *flags: str, spool_dir: Path | None = None, name: str = "receiver") -> Receiver:
        receiver = Receiver(database_url, spool_dir or tmp_path / "spool", tmp_path / f"{name}-{len(started)}.log",
                            "--jwks-file", str(canvas.file), "--issuer", CANVAS_ISSUER, *flags)
        started.append(receiver)
        return receiver.start()

    yield start
    for receiver in started:
        receiver.kill()


def empty(engine: Engine) -> None:
    """Every table of `engine` emptied: as `pg_engine` hands a database out."""
    tables = [table.name for table in metadata.sorted_tables]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY"))
        else:
            for name in reversed(tables):
                connection.execute(text(f"DELETE FROM {name}"))

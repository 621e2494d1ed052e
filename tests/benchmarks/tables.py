"""The tracker's tables as the benchmarks' scratch-database guard sees them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from consumer.store.engine import make_engine
from consumer.store.tables import metadata

SECRET = "s3cret-pw"


def row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one() for t in metadata.sorted_tables}
    finally:
        engine.dispose()


def with_password(url: str) -> str:
    """The same database, with a password in the URL (the test server trusts local connections): it must never be printed."""
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)

"""store/staging.py on Postgres: staging tables are created where writes need them, never by the engine.

Reading needs no TEMP privilege (serve, status, summary, BI); writing without
it fails with one message naming the privilege and the GRANT that gives it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import make_url

from consumer.core import DatabaseUnavailable, Input
from consumer.pipeline import Pipeline
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.store.staging import session_tables, write_transaction
from tests.factory import encode, progress_event
from tests.helpers import dump_tables

EVENT = Input("test:1", encode(progress_event("2019-11-01T00:00:00Z")))


def my_temporary_tables(connection: Connection) -> set[str]:
    """The temporary tables of this session (other sessions' are in pg_class too, in their own schemas)."""
    query = text("SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r'")
    return set(connection.execute(query).scalars())


@pytest.fixture(scope="module")
def no_temp_url(new_pg_database, postgres_server_url) -> Iterator[str]:
    """A migrated database, and the URL of a login role with every table privilege but TEMP."""
    role = f"canvas_progress_no_temp_{uuid.uuid4().hex[:8]}"
    url = new_pg_database()
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    owner = make_engine(url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            connection.execute(text(f'REVOKE TEMP ON DATABASE "{make_url(url).database}" FROM PUBLIC'))
        upgrade(owner)
        with owner.begin() as connection:
            connection.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
            connection.execute(text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
        yield make_url(url).set(username=role).render_as_string(hide_password=False)
    finally:  # the role outlives the database: drop it with its grants
        with owner.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"), {"role": role})
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.commit()
        owner.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_a_role_without_temp_reads_through_make_engine(no_temp_url):
    engine = make_engine(no_temp_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM courses")).scalar_one() == 0
            assert my_temporary_tables(connection) == set()
    finally:
        engine.dispose()


def test_a_role_without_temp_cannot_write_and_is_told_which_grant_is_missing(no_temp_url):
    engine = make_engine(no_temp_url)
    url = make_url(no_temp_url)
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            Pipeline(engine).process([EVENT])
        assert dump_tables(engine)["course_progress"] == []
    finally:
        engine.dispose()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"the database user {url.username} lacks the TEMP privilege on database {url.database}"), message
    assert message.endswith(f"GRANT TEMP ON DATABASE {url.database} TO {url.username}"), message


def test_reading_creates_no_staging_tables_and_the_first_write_does(pg_engine):
    with pg_engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM courses"))
        assert my_temporary_tables(connection) == set()
    with write_transaction(pg_engine) as connection:
        assert my_temporary_tables(connection) == {table.name for table in session_tables()}


def test_staging_tables_are_created_once_per_connection_and_survive_a_rolled_back_write(pg_engine):
    created: list[str] = []

    @event.listens_for(pg_engine, "before_cursor_execute")
    def record(_connection, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("CREATE TEMPORARY TABLE"):
            created.append(statement)

    with pytest.raises(RuntimeError), write_transaction(pg_engine) as connection:
        raise RuntimeError("the data transaction fails")
    assert len(created) == len(session_tables())
    for _ in range(2):  # the pool hands the same connection back: nothing to create
        with write_transaction(pg_engine) as connection:
            assert my_temporary_tables(connection) == {table.name for table in session_tables()}
    assert len(created) == len(session_tables())
    assert Pipeline(pg_engine).process([EVENT]).applied == 1

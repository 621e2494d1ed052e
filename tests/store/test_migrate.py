"""Migrations build exactly the tables the code declares, on both databases, without races."""

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from consumer.store.engine import make_engine
from consumer.store.migrate import current_revision, head_revision, upgrade
from consumer.store.tables import metadata, reference_metadata


def assert_schema_matches_models(engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, [metadata, reference_metadata]) == []
        assert current_revision(connection) == head_revision()


def test_sqlite_schema_matches_models(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    upgrade(engine)  # a second run finds nothing to do
    assert_schema_matches_models(engine)


def test_postgres_schema_matches_models(new_pg_database):
    engine = make_engine(new_pg_database())
    upgrade(engine)
    assert_schema_matches_models(engine)
    columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("course_progress")}
    assert str(columns["last_event_time"]) == "TIMESTAMP"  # with time zone, see next line
    assert columns["last_event_time"].timezone is True


def migrate_concurrently(url: str, processes: int = 4) -> None:
    """Start `migrate` in several processes at once; all must succeed and leave the schema at head."""
    started = [
        subprocess.Popen([sys.executable, "-m", "consumer", "migrate", "--database-url", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(processes)
    ]
    results = [process.communicate(timeout=120) + (process.returncode,) for process in started]
    assert [code for _, _, code in results] == [0] * processes, [err for _, err, _ in results]
    assert_schema_matches_models(make_engine(url))


def test_concurrent_migrations_do_not_race(new_pg_database):
    migrate_concurrently(new_pg_database())


def test_concurrent_sqlite_migrations_do_not_race(sqlite_url, tmp_path):
    migrate_concurrently(sqlite_url)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["course_progress.db"]  # no lock file left


def test_tie_ranks_downgrade_and_upgrade_again(engine):
    """0006 goes down and up again on a database holding ranked rows (the views over the tables survive)."""
    from alembic import command

    from consumer.store.migrate import alembic_config
    from tests.factory import course_event
    from tests.helpers import apply_events, dump_tables

    apply_events(engine, [course_event("2019-11-02T00:00:00Z", name="A")])
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    assert "course_event_rank" not in {column["name"] for column in inspect(engine).get_columns("courses")}
    upgrade(engine)
    assert_schema_matches_models(engine)
    apply_events(engine, [course_event("2019-11-02T00:00:00Z", name="B")])  # a tie with an unranked row: ranked wins
    assert [row[3] for row in dump_tables(engine)["courses"]] == ["B"]


def test_progress_history_downgrade_and_upgrade_again(engine):
    """0008 goes down and up again on a database holding history: its tables and views go, and come back filled
    from the current rows (one history row per student), matching the models."""
    from alembic import command
    from sqlalchemy import text

    from consumer.store.migrate import alembic_config
    from tests.factory import progress_event
    from tests.helpers import apply_events, dump_tables

    apply_events(engine, [progress_event("2019-11-01T10:00:00Z"), progress_event("2019-11-03T10:00:00-06:00", done=4),
                          progress_event("2019-11-02T10:00:00Z", user_id="124")])
    assert len(dump_tables(engine)["course_progress_history"]) == 3
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0007")
        names = set(inspect(engine).get_table_names()) | set(inspect(engine).get_view_names())
        assert not names & {"course_progress_history", "course_progress_daily_changes", "bi_settings", "course_progress_daily",
                            "stalled_students"}
    finally:
        upgrade(engine)
    assert_schema_matches_models(engine)
    tables = dump_tables(engine)
    current = [(row[0], row[1], row[9]) for row in tables["course_progress"]]  # course, student, last_event_time
    assert [row[:3] for row in tables["course_progress_history"]] == current and len(current) == 2
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM course_progress_daily")).scalar_one() == 2  # 11-02 and 11-03
        assert connection.execute(text("SELECT stalled_after_days FROM bi_settings")).scalar_one() == 14

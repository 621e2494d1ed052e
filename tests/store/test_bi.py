"""The BI views give the right figures on both databases; bi_reader can read and nothing more."""

import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from consumer.replay import replay
from consumer.store.bi import grant_bi_reader
from tests.factory import SAMPLE_EVENTS


def rows(engine, query):
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(query))]


def test_course_and_account_completion(engine):
    replay([str(SAMPLE_EVENTS)], engine, batch_size=100)
    courses = rows(engine, "SELECT course_id, course_name, account_id, students, completed, completion_rate, mean_share_done "
                           "FROM course_completion ORDER BY course_id")
    assert [r[:5] for r in courses] == [(565, "Computer Science I", 79, 1, 1), (777, "Calculus II (Fall 2019)", 79, 4, 1)]
    assert courses[0][5] == pytest.approx(1.0) and courses[1][5] == pytest.approx(0.25)
    assert courses[1][6] == pytest.approx((3 / 5 + 5 / 5 + 5 / 6 + 4 / 5) / 4)  # Ada, Alan, Emmy, Grace; the error body is left out
    accounts = rows(engine, "SELECT account_id, courses, students, completed, completion_rate FROM account_completion")
    assert [r[:4] for r in accounts] == [(79, 2, 5, 2)] and accounts[0][4] == pytest.approx(0.4)


def test_progress_distribution(engine):
    replay([str(SAMPLE_EVENTS)], engine, batch_size=100)
    buckets = dict((b, int(n)) for c, b, n in rows(engine, "SELECT course_id, bucket, students FROM progress_distribution WHERE course_id = 777"))
    assert buckets == {"completed": 1, "error": 1, "50-74%": 1, "75-100%": 2}


def test_data_freshness(engine):
    replay([str(SAMPLE_EVENTS)], engine, batch_size=100)
    fresh = {table: (newest, lag) for table, newest, lag in rows(engine, "SELECT table_name, newest_event_time, lag_seconds FROM data_freshness")}
    assert set(fresh) == {"courses", "course_sections", "course_progress", "users"}
    newest, lag = fresh["course_progress"]
    assert str(newest).startswith("2019-11-01")
    expected = (datetime.now(timezone.utc) - datetime(2019, 11, 1, 19, 11, 26, 615000, tzinfo=timezone.utc)).total_seconds()
    assert float(lag) == pytest.approx(expected, abs=120)


def test_bi_reader_reads_tables_and_views_and_cannot_write(pg_engine, sample_expectations):
    replay([str(SAMPLE_EVENTS)], pg_engine, batch_size=100)
    login = f"bi_test_{uuid.uuid4().hex[:8]}"
    shown = grant_bi_reader(pg_engine, login=login, password="pa:ss'word")
    assert "pa:ss" not in " ".join(shown)
    try:
        with pg_engine.connect() as connection:
            connection.execute(text(f'SET ROLE "{login}"'))
            assert connection.execute(text("SELECT count(*) FROM course_completion")).scalar_one() == 2
            assert connection.execute(text("SELECT count(*) FROM course_progress")).scalar_one() == sample_expectations.rows["course_progress"]
            for forbidden in ("INSERT INTO users (id, last_event_time) VALUES (1, now())", "SELECT * FROM rejected_events"):
                with pytest.raises(ProgrammingError, match="permission denied"):
                    with connection.begin_nested():
                        connection.execute(text(forbidden))
            connection.rollback()
        grant_bi_reader(pg_engine)  # running it again is fine
    finally:
        with pg_engine.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{login}"'))
            connection.execute(text(f'DROP ROLE "{login}"'))


def test_bi_role_refuses_sqlite(sqlite_engine):
    with pytest.raises(ValueError, match="Postgres only"):
        grant_bi_reader(sqlite_engine)


DIRECT = """
SELECT p.course_id,
       SUM(CASE WHEN p.progress_error IS NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN p.progress_error IS NULL AND p.is_completed THEN 1 ELSE 0 END),
       AVG(CASE WHEN p.progress_error IS NULL AND p.requirement_count > 0
                THEN CAST(p.requirement_completed_count AS REAL) / p.requirement_count END),
       MAX(p.last_event_time)
FROM course_progress p GROUP BY p.course_id ORDER BY p.course_id
"""
FROM_VIEW = ("SELECT s.course_id, c.students, c.completed, c.mean_share_done, c.last_activity FROM course_progress_stats s "
             "JOIN course_completion c ON c.course_id = s.course_id ORDER BY s.course_id")


def _same(engine) -> None:
    direct, counted = rows(engine, DIRECT), rows(engine, FROM_VIEW)
    assert [r[:3] for r in counted] == [r[:3] for r in direct]
    for got, want in zip(counted, direct, strict=True):
        assert (got[3] is None) == (want[3] is None) and (got[3] is None or got[3] == pytest.approx(want[3]))
        assert str(got[4])[:19] == str(want[4])[:19]
    buckets = rows(engine, "SELECT course_id, bucket, students FROM progress_distribution ORDER BY 1, 2")
    assert sum(int(n) for _, _, n in buckets) == rows(engine, "SELECT count(*) FROM course_progress")[0][0]


def test_the_counters_behind_the_views_follow_every_kind_of_change(engine):
    """Inserts, updates that move rows between buckets and into and out of errors, deletes: the counters
    kept by triggers always equal an aggregate over the rows themselves."""
    import random

    from tests.factory import progress_event
    from tests.helpers import apply_events

    generator = random.Random(7)
    events = []
    for n in range(600):
        total = generator.choice([0, 1, 4, 5, 6])
        events.append(progress_event(
            f"2019-09-{1 + n % 28:02d}T{n % 24:02d}:00:00Z", course_id=str(generator.choice([1, 2, 3])),
            user_id=str(generator.randrange(40)), total=total, done=generator.randint(0, total),
            event_name=generator.choice(["course_progress", "course_progress", "course_completed"]),
            error="not module based" if generator.random() < 0.15 else None,
        ))
    for start in range(0, len(events), 150):
        apply_events(engine, events[start : start + 150], batch_size=generator.choice([1, 7, 150]))
        _same(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM course_progress WHERE user_id < 10"))
    _same(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE course_progress SET requirement_completed_count = 0 WHERE user_id % 3 = 0"))
    _same(engine)


def _insert_as_0003(engine, events):
    """Progress rows as the 0003 schema held them (no rank column), inserted directly."""
    from sqlalchemy import insert

    from consumer.events.merge import newest_per_key
    from consumer.events.parse import parse_event
    from consumer.store.tables import metadata
    from tests.factory import encode

    merged = newest_per_key(row for event in events for row in parse_event(encode(event)).rows)
    with engine.begin() as connection:
        for kind, rows in merged.items():
            if kind.TABLE == "course_progress_history":  # not in the 0003 schema
                continue
            table = metadata.tables[kind.TABLE]
            connection.execute(insert(table), [{k: v for k, v in row._asdict().items() if k != kind.RANK} for row in rows])


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_upgrading_a_database_with_progress_fills_the_counters(dialect, sqlite_url, new_pg_database):
    """Migration 0004 on a database that already holds progress: the counters start out right, then follow."""
    from alembic import command

    from consumer.store.engine import make_engine
    from consumer.store.migrate import alembic_config, upgrade
    from tests.factory import progress_event
    from tests.helpers import apply_events

    engine = make_engine(sqlite_url if dialect == "sqlite" else new_pg_database())
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    events = [progress_event(f"2019-09-0{1 + n % 9}T00:00:00Z", course_id=str(1 + n % 3), user_id=str(n % 17),
                             done=n % 5, total=4 + n % 2, error="x" if n % 11 == 0 else None) for n in range(80)]
    _insert_as_0003(engine, events[:60])  # no counters, no triggers yet
    upgrade(engine)
    _same(engine)
    apply_events(engine, events[60:])
    _same(engine)
    engine.dispose()

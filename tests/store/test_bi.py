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


def test_bi_reader_reads_tables_and_views_and_cannot_write(pg_engine):
    replay([str(SAMPLE_EVENTS)], pg_engine, batch_size=100)
    login = f"bi_test_{uuid.uuid4().hex[:8]}"
    shown = grant_bi_reader(pg_engine, login=login, password="pa:ss'word")
    assert "pa:ss" not in " ".join(shown)
    try:
        with pg_engine.connect() as connection:
            connection.execute(text(f'SET ROLE "{login}"'))
            assert connection.execute(text("SELECT count(*) FROM course_completion")).scalar_one() == 2
            assert connection.execute(text("SELECT count(*) FROM course_progress")).scalar_one() == 6
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

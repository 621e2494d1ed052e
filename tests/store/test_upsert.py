"""store/upsert.py on SQLite and Postgres: the merge rules as upserts, and the exact count of rows changed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from consumer.events.course import CourseRow
from consumer.events.progress import CourseMentionRow, UserRow
from consumer.store.staging import write_transaction
from consumer.store.tables import courses, users
from consumer.store.upsert import DIALECTS, staging_table, upsert_for, upsert_rows

T0 = datetime(2019, 11, 1, tzinfo=timezone.utc)


def user(user_id: int, name: str, seconds: int = 0, rank: int = 1) -> UserRow:
    return UserRow(user_id, name, f"{name.lower()}@example.edu", T0 + timedelta(seconds=seconds), rank)


def course(course_id: int, name: str, seconds: int = 0, rank: int = 1) -> CourseRow:
    return CourseRow(course_id, 21070000000000000 + course_id, 79, name, "uuid", "available", T0, T0,
                     T0 + timedelta(seconds=seconds), rank)


def mention(course_id: int, name: str, seconds: int = 0, rank: int = 1) -> CourseMentionRow:
    return CourseMentionRow(course_id, 80, name, f"sis-{name}", T0 + timedelta(seconds=seconds), rank)


def write(engine, kind: type, rows: list[tuple]) -> int:
    with write_transaction(engine) as connection:
        return upsert_rows(connection, kind, rows)


def names(engine) -> dict[int, str]:
    with engine.connect() as connection:
        return dict(connection.execute(select(users.c.id, users.c.name)).all())


def test_new_rows_are_inserted_and_counted(engine):
    assert write(engine, UserRow, [user(1, "Ada"), user(2, "Grace")]) == 2
    assert names(engine) == {1: "Ada", 2: "Grace"}


def test_the_same_rows_again_change_nothing_and_count_zero(engine):
    write(engine, UserRow, [user(1, "Ada"), user(2, "Grace")])
    assert write(engine, UserRow, [user(1, "Ada"), user(2, "Grace")]) == 0


def test_a_newer_row_replaces_an_older_one_never_the_reverse(engine):
    write(engine, UserRow, [user(1, "Middle", seconds=10), user(2, "Middle", seconds=10)])
    assert write(engine, UserRow, [user(1, "Newer", seconds=20), user(2, "Older", seconds=5)]) == 1
    assert names(engine) == {1: "Newer", 2: "Middle"}


def test_at_the_same_time_the_higher_rank_wins(engine):
    write(engine, UserRow, [user(1, "Low", rank=1), user(2, "High", rank=9)])
    assert write(engine, UserRow, [user(1, "High", rank=9), user(2, "Low", rank=1)]) == 1
    assert names(engine) == {1: "High", 2: "High"}


def test_a_row_stored_before_ranks_existed_loses_every_tie(engine):
    write(engine, UserRow, [user(1, "Unranked")])
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET last_event_rank = NULL"))
    assert write(engine, UserRow, [user(1, "Ranked", rank=0)]) == 1
    assert names(engine) == {1: "Ranked"}


def test_nothing_to_write_is_zero_without_a_statement(engine):
    assert write(engine, UserRow, []) == 0


def test_a_course_mention_fills_a_course_but_never_overrides_what_a_course_event_set(engine):
    assert write(engine, CourseMentionRow, [mention(565, "From progress", seconds=1)]) == 1
    assert write(engine, CourseRow, [course(565, "From course event")]) == 1
    assert write(engine, CourseMentionRow, [mention(565, "Later progress", seconds=2)]) == 1
    with engine.connect() as connection:
        stored = connection.execute(select(courses).where(courses.c.id == 565)).mappings().one()
    # The course event owns name and account; the newer mention still moves its own columns on.
    assert (stored["name"], stored["account_id"], stored["sis_source_id"]) == ("From course event", 79, "sis-Later progress")
    assert stored["progress_event_time"] == T0 + timedelta(seconds=2)


def test_statements_are_built_for_the_two_databases_only():
    assert set(DIALECTS) == {"postgresql", "sqlite"}
    with pytest.raises(ValueError, match="unsupported database dialect 'mysql'"):
        upsert_for("mysql", UserRow)


def test_the_postgres_staging_table_is_empty_after_each_commit(pg_engine):
    with write_transaction(pg_engine) as connection:
        upsert_rows(connection, UserRow, [user(1, "Ada"), user(2, "Grace")])
        staged = connection.execute(text(f'SELECT count(*) FROM "{staging_table(UserRow).name}"')).scalar_one()
        assert staged == 2
    with write_transaction(pg_engine) as connection:  # the pool hands the same connection back: same session
        assert connection.execute(text(f'SELECT count(*) FROM "{staging_table(UserRow).name}"')).scalar_one() == 0
        assert upsert_rows(connection, UserRow, [user(3, "Katherine")]) == 1
    assert names(pg_engine) == {1: "Ada", 2: "Grace", 3: "Katherine"}

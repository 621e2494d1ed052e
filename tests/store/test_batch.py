"""store/batch.py on SQLite and Postgres: it writes the rows and quarantine rows it is given, and says what changed."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from consumer.events.progress import CourseMentionRow, UserRow
from consumer.events.redact import REDACTED
from consumer.store.batch import write_batch
from consumer.store.quarantine_rows import Rejection
from consumer.store.staging import write_transaction
from consumer.store.tables import courses, rejected_events, users
from tests.helpers import rejected_rows

T0 = datetime(2019, 11, 1, tzinfo=timezone.utc)


def user(user_id: int, name: str, seconds: int = 0) -> UserRow:
    return UserRow(user_id, name, None, T0 + timedelta(seconds=seconds), 1)


def mention(course_id: int, seconds: int = 0) -> CourseMentionRow:
    return CourseMentionRow(course_id, 79, "Computer Science I", None, T0 + timedelta(seconds=seconds), 1)


def write(engine, rows_by_kind, rejections=()) -> dict[type, int]:
    with write_transaction(engine) as connection:
        return write_batch(connection, rows_by_kind, rejections)


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_every_kind_given_is_written_and_its_changed_rows_counted(engine):
    changed = write(engine, {UserRow: [user(1, "Ada"), user(2, "Grace")], CourseMentionRow: [mention(565)]})
    assert changed == {UserRow: 2, CourseMentionRow: 1}  # side kinds too: what counts as applied is the pipeline's
    assert (count(engine, users), count(engine, courses)) == (2, 1)


def test_rows_that_change_nothing_count_zero_and_a_kind_with_no_rows_is_zero(engine):
    write(engine, {UserRow: [user(1, "Ada", seconds=5)]})
    assert write(engine, {UserRow: [user(1, "Older", seconds=1)], CourseMentionRow: []}) == {UserRow: 0, CourseMentionRow: 0}


def test_an_empty_batch_writes_nothing(engine):
    assert write(engine, {}, []) == {}
    assert (count(engine, users), count(engine, rejected_events)) == (0, 0)


def test_rejections_given_are_stored_one_row_per_distinct_payload(engine):
    rejections = [
        Rejection("file:1", b"not json", "invalid JSON", None, None),
        Rejection("msg-2", b"{}", "metadata: required object is missing", "course_progress", 1),
        Rejection("msg-3", b"not json", "invalid JSON again", "course_progress", 4),
    ]
    assert write(engine, {}, rejections) == {}
    first, second = rejected_rows(engine)
    assert (first["payload"], first["first_source"], first["source"], first["reason"], first["times_seen"]) == (
        b"not json", "file:1", "msg-3", "invalid JSON again", 2)
    assert (first["event_name"], first["receive_count"]) == ("course_progress", 4)
    assert (second["payload"], second["source"], second["times_seen"], second["receive_count"]) == (b"{}", "msg-2", 1, 1)
    assert first["payload_sha256"] == hashlib.sha256(b"not json").digest()


def test_credentials_in_a_rejected_payload_are_redacted_before_it_is_stored(engine):
    payload = b'{"metadata": {"url": "https://canvas.example/x?access_token=secret123&a=1"}}'
    write(engine, {}, [Rejection("msg-1", payload, "a reason")])
    (stored,) = rejected_rows(engine)
    assert b"secret123" not in stored["payload"] and REDACTED.encode() in stored["payload"]


def test_rows_and_rejections_commit_together_or_not_at_all(engine):
    with pytest.raises(RuntimeError), write_transaction(engine) as connection:
        write_batch(connection, {UserRow: [user(1, "Ada")]}, [Rejection("file:1", b"x", "a reason")])
        raise RuntimeError("the caller's transaction fails after the write")
    assert (count(engine, users), count(engine, rejected_events)) == (0, 0)


def test_a_writer_waits_its_turn_whatever_lock_timeout_the_database_sets(pg_engine):
    """Writers take turns on an advisory lock (another worker's commit may take a while): a `lock_timeout` the
    database or role sets (against DDL queueing, say) does not cancel that wait, and holds again right after it."""
    import threading
    import time

    from sqlalchemy import create_engine, text

    from consumer.store.batch import _WRITE_LOCK_KEY

    holder = pg_engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _WRITE_LOCK_KEY})  # another writer's turn
    outcome: dict[str, object] = {}

    # The session's own lock_timeout, as a role's or database's setting gives it.
    timed_out = create_engine(pg_engine.url, connect_args={"options": "-c lock_timeout=20ms"})

    def writer() -> None:
        try:
            with write_transaction(timed_out) as connection:
                outcome["changed"] = write_batch(connection, {UserRow: [tuple(user(1, "Ann"))]})
                outcome["after"] = connection.execute(text("SHOW lock_timeout")).scalar_one()
        except Exception as error:  # the assertion below names it
            outcome["error"] = error

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)  # 25 times the timeout: the writer is still waiting for its turn
    assert thread.is_alive() and not outcome, outcome
    holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _WRITE_LOCK_KEY})
    holder.close()
    thread.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["changed"] == {UserRow: 1} and count(pg_engine, users) == 1
    assert outcome["after"] == "20ms"  # lifted for the wait only
    timed_out.dispose()

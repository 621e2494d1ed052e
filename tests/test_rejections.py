"""Nothing is lost: every bad input kind lands in rejected_events with its reason and raw bytes."""

import json

import pytest
from sqlalchemy import text

from consumer.pipeline import DatabaseUnavailable, Pipeline
from consumer.sources import Input
from consumer.store.engine import make_engine
from tests.factory import course_event, encode, progress_event, section_event
from tests.helpers import apply_events, dump_tables, rejected_rows

BAD_INPUTS = [
    (b'{"metadata": {"event_name": "course_progress", "event_time": "2019-11-01T00:00:00Z"}, "body": {"progress": {', "invalid JSON"),
    (b'{"metadata": {"event_name": "course_progress"}, "body": {"user": {"name": "\xff\xfe"}}}', "invalid JSON"),
    (b'{"dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1", "data": [], "sensor": "s"}', "Caliper envelope"),
    (b'{"Type": "Notification", "Message": "{broken"}', "SNS notification field Message"),
    (b"[]", "expected a JSON object"),
    (encode(course_event("noon-ish")), "metadata.event_time"),
    (encode(course_event("2019-11-01T00:00:00Z", course_id=21070000000000565.0)), "body.course_id"),
    (encode(section_event("2019-11-01T00:00:00Z", start_at="first day of term")), "body.start_at"),
    (encode(progress_event("2019-11-01T00:00:00Z", user_id="not-a-number")), "body.user.id"),
    (encode(progress_event("2019-11-01T00:00:00Z", course_name="nul\u0000byte")), "body.course.name"),
    (encode(progress_event("2019-11-01T00:00:00Z", total=2**40)), "body.progress.requirement_count"),
    (encode(progress_event("2019-11-01T00:00:00Z", done=-1)), "body.progress.requirement_completed_count"),
]


def test_each_bad_input_is_stored_with_reason_and_exact_bytes(engine):
    good = progress_event("2019-11-01T00:00:00Z")
    payloads = [payload for payload, _ in BAD_INPUTS]
    counts = apply_events(engine, [*payloads, good])
    assert (counts.read, counts.rejected, counts.applied) == (len(BAD_INPUTS) + 1, len(BAD_INPUTS), 1)
    stored = rejected_rows(engine)
    assert [row["payload"] for row in stored] == payloads
    for row, (_, reason) in zip(stored, BAD_INPUTS, strict=True):
        assert reason in row["reason"]
        assert row["source"].startswith("test:")
        assert row["received_at"] is not None
    assert len(dump_tables(engine)["course_progress"]) == 1


def test_rejected_event_name_is_recorded_when_known(engine):
    apply_events(engine, [encode(progress_event("2019-11-01T00:00:00Z", user_id="x"))])
    assert rejected_rows(engine)[0]["event_name"] == "course_progress"


def refuse_user_666(engine) -> None:
    """Make the database itself refuse one row (the way a constraint or a trigger would)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE course_progress ADD CONSTRAINT no_666 CHECK (user_id <> 666)"))
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER no_666 BEFORE INSERT ON course_progress WHEN NEW.user_id = 666 "
                    "BEGIN SELECT RAISE(ABORT, 'user 666 is refused'); END"
                )
            )


def undo_refusal(engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE course_progress DROP CONSTRAINT no_666"))
        else:
            connection.execute(text("DROP TRIGGER no_666"))


def test_a_row_the_database_refuses_is_isolated_and_the_rest_committed(engine):
    refuse_user_666(engine)
    poison = progress_event("2019-11-01T00:00:00Z", user_id="666")
    events = [progress_event("2019-11-01T00:00:00Z", user_id=str(n)) for n in range(1, 8)]
    events.insert(4, poison)
    try:
        counts = apply_events(engine, events)
    finally:
        undo_refusal(engine)
    assert (counts.applied, counts.rejected) == (7, 1)
    (stored,) = rejected_rows(engine)
    assert stored["reason"].startswith("the database refused this event:")
    assert json.loads(stored["payload"])["body"]["user"]["id"] == "666"
    assert len(dump_tables(engine)["course_progress"]) == 7


def test_unreachable_database_raises_and_commits_nothing():
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable):
        Pipeline(engine).process([Input("test:1", encode(progress_event("2019-11-01T00:00:00Z")))])


def test_statement_failing_for_everything_is_not_bisected_into_rejections(pg_engine):
    # A dropped table is the database's fault, not the events': nothing may be quarantined.
    with pg_engine.begin() as connection:
        connection.execute(text("ALTER TABLE users RENAME TO users_away"))
    try:
        with pytest.raises(DatabaseUnavailable, match='users'):
            apply_events(pg_engine, [progress_event("2019-11-01T00:00:00Z")])
    finally:
        with pg_engine.begin() as connection:
            connection.execute(text("ALTER TABLE users_away RENAME TO users"))
    assert rejected_rows(pg_engine) == []

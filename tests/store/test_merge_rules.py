"""CONTRACT section 4 against real databases (every test runs on SQLite and Postgres)."""

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from consumer.events.parse import parse_event
from consumer.store.tables import course_progress, course_sections, courses, users
from tests.factory import course_event, encode, progress_event, section_event
from tests.helpers import apply_events, dump_tables


def row(engine, table, **key):
    with engine.connect() as connection:
        query = select(table)
        for name, value in key.items():
            query = query.where(table.c[name] == value)
        return connection.execute(query).mappings().one()


@pytest.fixture(params=[1, 1000], ids=["batch-per-event", "one-batch"])
def batch_size(request):
    return request.param


def test_newer_event_wins_older_changes_nothing(engine, batch_size):
    counts = apply_events(
        engine,
        [
            course_event("2019-11-02T00:00:00Z", name="Newer"),
            course_event("2019-11-01T00:00:00Z", name="Older"),
            course_event("2019-11-02T00:00:00Z", name="Newer"),
        ],
        batch_size,
    )
    assert row(engine, courses, id=565)["name"] == "Newer"
    assert (counts.applied, counts.stale_or_duplicate) == (1, 2)


def _rank(event) -> int:
    return parse_event(encode(event)).rows[0][-1]


@pytest.mark.parametrize("higher_first", [True, False])
def test_equal_event_time_is_decided_by_the_events_not_their_arrival(engine, batch_size, higher_first):
    pair = [course_event("2019-11-02T00:00:00Z", name="First"), course_event("2019-11-02T00:00:00Z", name="Second")]
    assert _rank(pair[0]) != _rank(pair[1])  # different content, different ranks: else arrival would decide
    higher = max(pair, key=_rank)
    apply_events(engine, sorted(pair, key=_rank, reverse=higher_first), batch_size)
    assert row(engine, courses, id=565)["name"] == higher["body"]["name"]


@pytest.mark.parametrize("completed_first", [True, False])
def test_course_completed_wins_a_tie_with_course_progress(engine, batch_size, completed_first):
    completed = progress_event("2019-11-02T00:00:00Z", event_name="course_completed", done=6, total=6)
    progress = progress_event("2019-11-02T00:00:00Z", done=5, total=6)
    apply_events(engine, [completed, progress] if completed_first else [progress, completed], batch_size)
    stored = row(engine, course_progress, course_id=565, user_id=123)
    assert (stored["is_completed"], stored["requirement_completed_count"]) == (True, 6)


def test_equal_event_time_and_content_is_a_duplicate(engine, batch_size):
    event = course_event("2019-11-02T00:00:00Z", name="Same")
    counts = apply_events(engine, [event, event, event], batch_size)
    assert (counts.applied, counts.stale_or_duplicate) == (1, 2)
    assert row(engine, courses, id=565)["name"] == "Same"


def test_offsets_compare_as_instants(engine, batch_size):
    # 01:00-06:00 is 07:00Z: later than 06:00Z although it reads earlier.
    apply_events(engine, [course_event("2019-11-02T01:00:00-06:00", name="Later"), course_event("2019-11-02T06:00:00Z", name="Earlier")], batch_size)
    stored = row(engine, courses, id=565)
    assert stored["name"] == "Later"
    assert stored["course_event_time"] == datetime(2019, 11, 2, 7, 0, tzinfo=timezone.utc)


def test_course_row_keeps_global_id_and_millisecond_times(engine):
    apply_events(engine, [course_event("2019-11-02T00:00:00.123Z", created_at="2019-10-28 14:02:11 -0800")])
    stored = row(engine, courses, id=565)
    assert stored["global_id"] == 21070000000000565
    assert stored["account_id"] == 79
    assert stored["created_at"] == datetime(2019, 10, 28, 22, 2, 11, tzinfo=timezone.utc)
    assert stored["course_event_time"] == datetime(2019, 11, 2, 0, 0, 0, 123000, tzinfo=timezone.utc)


@pytest.mark.parametrize("course_first", [True, False])
def test_progress_names_course_only_until_a_course_event_is_seen(engine, batch_size, course_first):
    course = course_event("2019-11-01T00:00:00Z", course_id="565", name="From course_updated", account_id="21070000000000080")
    progress = progress_event("2019-11-05T00:00:00Z", course_name="From progress", sis_source_id="SIS-NEW")
    events = [course, progress] if course_first else [progress, course]
    apply_events(engine, events, batch_size)
    stored = row(engine, courses, id=565)
    assert (stored["name"], stored["account_id"], stored["sis_source_id"]) == ("From course_updated", 80, "SIS-NEW")


def test_course_first_met_through_progress_gets_a_row(engine):
    apply_events(engine, [progress_event("2019-11-05T00:00:00Z", course_id="777", course_name="Calculus", sis_source_id="M1")])
    stored = row(engine, courses, id=777)
    assert (stored["name"], stored["account_id"], stored["sis_source_id"], stored["global_id"]) == ("Calculus", 79, "M1", None)


def test_sis_source_id_comes_from_the_newest_progress_event(engine, batch_size):
    apply_events(
        engine,
        [progress_event("2019-11-05T00:00:00Z", sis_source_id="NEW"), progress_event("2019-11-04T00:00:00Z", user_id="7", sis_source_id="OLD")],
        batch_size,
    )
    assert row(engine, courses, id=565)["sis_source_id"] == "NEW"


def test_cross_listing_moves_the_section(engine, batch_size):
    apply_events(
        engine,
        [
            section_event("2019-09-02T00:00:00Z", course_id="565", nonxlist_course_id="777", stuck_sis_fields=["name"]),
            section_event("2019-08-21T00:00:00Z", course_id="777", event_name="course_section_created"),
        ],
        batch_size,
    )
    stored = row(engine, course_sections, id=1021)
    assert (stored["course_id"], stored["nonxlist_course_id"], stored["stuck_sis_fields"]) == (565, 777, ["name"])
    assert stored["last_event_name"] == "course_section_updated"


def test_section_events_never_touch_courses_and_course_events_never_make_sections(engine):
    apply_events(engine, [section_event("2019-09-02T00:00:00Z"), course_event("2019-09-02T00:00:00Z", course_id="21070000000000999")])
    tables = dump_tables(engine)
    assert [r[0] for r in tables["courses"]] == [999]
    assert [r[0] for r in tables["course_sections"]] == [1021]


def test_completion_can_go_back_to_false(engine, batch_size):
    apply_events(
        engine,
        [
            progress_event("2019-09-25T00:00:00Z", done=5, total=6),
            progress_event("2019-09-18T00:00:00Z", done=5, total=5, event_name="course_completed", completed_at="2019-09-17T23:59:58.412Z"),
        ],
        batch_size,
    )
    stored = row(engine, course_progress, course_id=565, user_id=123)
    assert (stored["is_completed"], stored["requirement_count"], stored["last_event_name"]) == (False, 6, "course_progress")


def test_error_body_replaces_the_whole_progress_row(engine, batch_size):
    apply_events(engine, [progress_event("2019-09-01T00:00:00Z", done=2), progress_event("2019-09-02T00:00:00Z", error="not module based")], batch_size)
    stored = row(engine, course_progress, course_id=565, user_id=123)
    assert stored["progress_error"] == "not module based"
    assert stored["requirement_count"] is None and stored["completed_at"] is None


def test_users_come_from_the_newest_progress_event_not_the_actor(engine, batch_size):
    newer = progress_event("2019-09-02T00:00:00Z", user_id="21070000000000123", user_name="Isaac Newton")
    newer["metadata"]["user_id"] = "21070000000000999"  # the actor: never a user row
    apply_events(engine, [newer, progress_event("2019-09-01T00:00:00Z", user_name="Old Name")], batch_size)
    assert [r[:2] for r in dump_tables(engine)["users"]] == [(123, "Isaac Newton")]
    assert row(engine, users, id=123)["last_event_time"] == datetime(2019, 9, 2, tzinfo=timezone.utc)

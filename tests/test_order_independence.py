"""Property: the same events in any order, with duplicates, leave identical tables.

Hypothesis draws a set of events over a few courses, sections and students
(ids beyond 2**53, offset timestamps, error bodies, cross-shard users and
cross-listings included), then replays shuffled copies with duplicates and
random batch sizes. Every replay must produce the tables that applying the
events in time order produces. Half the sets crowd their events onto a few
instants, so ties (equal event_time, different content) are exercised too.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.store.tables import metadata
from tests.factory import course_event, progress_event, section_event
from tests.helpers import apply_events, dump_tables

BASE = datetime(2019, 9, 1, tzinfo=timezone.utc)
OFFSETS = ["Z", "-06:00", "+05:30", " -0800"]


def stamp(seconds: int, offset: str) -> str:
    """The instant BASE+seconds, written with the given offset (so text order != time order)."""
    if offset == "Z":
        return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    sign = -1 if offset.strip()[0] == "-" else 1
    digits = offset.strip()[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:])) * sign
    local = BASE + timedelta(seconds=seconds) + delta
    separator = " " if offset.startswith(" ") else "T"
    return local.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + offset


@st.composite
def event_sets(draw) -> list[dict]:
    # Either spread-out times, or a handful shared by many events: equal event times with
    # different content must also give the same tables in any order (the rank decides).
    spread = draw(st.sampled_from([10**7, 3]))
    times = iter(draw(st.lists(st.integers(0, spread), min_size=30, max_size=30)))
    events = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["course", "section", "progress", "completed", "error"]))
        when = stamp(next(times), draw(st.sampled_from(OFFSETS)))
        course = draw(st.sampled_from(["565", "777"]))
        if kind == "course":
            events.append(
                course_event(when, course_id="2107000000000" + course.rjust(4, "0"), name=draw(st.sampled_from(["A", "B", None])),
                             workflow_state=draw(st.sampled_from(["created", "available", "deleted"])))
            )
        elif kind == "section":
            events.append(section_event(when, section_id=draw(st.sampled_from(["1", "2"])), course_id=course,
                                        nonxlist_course_id=draw(st.sampled_from([None, "565"])), name=draw(st.sampled_from(["S", "T"]))))
        else:
            user = draw(st.sampled_from(["123", "21070000000000123", "124"]))
            done = draw(st.integers(0, 6))
            events.append(
                progress_event(when, course_id=course, user_id=user, done=done, total=6,
                               event_name="course_completed" if kind == "completed" else "course_progress",
                               course_name=draw(st.sampled_from(["P", "Q"])), sis_source_id=draw(st.sampled_from(["X", None])),
                               user_name=draw(st.sampled_from(["Ada L", "Alan T"])),
                               error="not module based" if kind == "error" else None)
            )
    return events


def _event_instant(event: dict) -> datetime:
    from consumer.events.timestamps import parse_timestamp

    return parse_timestamp(event["metadata"]["event_time"])


def reset(engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


def _check(engine, events: list[dict], seed: int) -> None:
    reset(engine)
    apply_events(engine, sorted(events, key=_event_instant), batch_size=1)
    expected = dump_tables(engine)
    rng = random.Random(seed)
    for _ in range(3):
        delivered = events + [rng.choice(events) for _ in range(rng.randint(0, len(events)))]
        rng.shuffle(delivered)
        reset(engine)
        apply_events(engine, delivered, batch_size=rng.choice([1, 2, 3, 1000]))
        assert dump_tables(engine) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_sets(), seed=st.integers(0, 2**32))
def test_any_order_with_duplicates_gives_identical_tables_sqlite(sqlite_engine, events, seed):
    _check(sqlite_engine, events, seed)


@pytest.mark.postgres
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_sets(), seed=st.integers(0, 2**32))
def test_any_order_with_duplicates_gives_identical_tables_postgres(pg_engine, events, seed):
    _check(pg_engine, events, seed)

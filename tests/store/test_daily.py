"""consumer/store/daily.py case by case: which students a batch touches, `rebuild` after a bulk load, exact shares,
and day boundaries at the millisecond. Expected figures are worked out by hand here (the property tests of
tests/test_history.py compare with tests/history_oracle.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import insert, select

from consumer.store.daily import rebuild, touched_students
from consumer.store.tables import course_progress_daily, course_progress_daily_changes, course_progress_history
from tests.factory import progress_event
from tests.helpers import apply_events
from tests.history_oracle import History, as_daily, assert_daily_equal, expected_daily, expected_history

UTC = timezone.utc


def daily(engine) -> list:
    with engine.connect() as connection:
        return as_daily(connection.execute(select(course_progress_daily)))


def figures(engine) -> list[tuple]:
    """(day, students, completed, mean share done) per day, course by course."""
    return [(row.day, row.students, row.completed, row.mean_share_done) for row in daily(engine)]


def test_a_batch_touches_each_student_from_the_utc_day_of_their_earliest_event():
    minus_six = timezone(timedelta(hours=-6))
    rows = [
        (1, 7, datetime(2019, 11, 2, 20, 0, tzinfo=minus_six)),  # 2019-11-03 02:00 UTC
        (1, 7, datetime(2019, 11, 3, 23, 0, tzinfo=UTC)),
        (1, 8, datetime(2019, 11, 1, 23, 59, 59, 999000, tzinfo=UTC)),
        (2, 7, datetime(2019, 11, 5, tzinfo=UTC)),
        (1, 7, datetime(2019, 11, 4, tzinfo=UTC)),
    ]
    assert touched_students(rows) == [
        (1, 7, date(2019, 11, 3), datetime(2019, 11, 3, tzinfo=UTC)),
        (1, 8, date(2019, 11, 1), datetime(2019, 11, 1, tzinfo=UTC)),
        (2, 7, date(2019, 11, 5), datetime(2019, 11, 5, tzinfo=UTC)),
    ]
    assert touched_students([]) == []


def test_a_completion_one_millisecond_before_midnight_counts_that_day_only(engine):
    events = [
        progress_event("2019-11-02T08:00:00Z", done=1, total=2),
        progress_event("2019-11-02T17:59:59.999-06:00", event_name="course_completed", done=2, total=2),  # 23:59:59.999 UTC
        progress_event("2019-11-03 00:00:00 +0000", done=1, total=2),  # reverted at midnight
        progress_event("2019-11-05T05:29:59.999+05:30", user_id="124", done=0, total=2),  # 2019-11-04 23:59:59.999 UTC
    ]
    apply_events(engine, list(reversed(events)), batch_size=1)
    assert figures(engine) == [
        (date(2019, 11, 2), 1, 1, 1.0),
        (date(2019, 11, 3), 1, 0, 0.5),
        (date(2019, 11, 4), 2, 0, 0.25),
    ]


def test_shares_are_exact_and_leave_nothing_behind_when_students_move_on(engine):
    """300 students a third done: the mean is a third (within 1e-9); once all of them are back to none done
    it is exactly 0 (integer sums: a float sum of +1/3 and -1/3 would leave a residue)."""
    thirds = [progress_event("2019-11-02T10:00:00Z", user_id=str(n), done=1, total=3) for n in range(300)]
    sevenths = [progress_event("2019-11-03T10:00:00Z", user_id=str(n), done=n % 8, total=7) for n in range(300)]
    none_done = [progress_event("2019-11-04T10:00:00Z", user_id=str(n), done=0, total=7) for n in range(300)]
    apply_events(engine, thirds + sevenths + none_done, batch_size=37)
    (first, second, third) = daily(engine)
    assert abs(first.mean_share_done - 1 / 3) <= 1e-9
    # n % 8 done of 7: 0..7, 7 taken as 7 (done is capped at the count)
    exact = sum(min(n % 8, 7) / 7 for n in range(300)) / 300
    assert abs(second.mean_share_done - exact) <= 1e-9
    assert third.mean_share_done == 0.0 and (third.students, third.completed) == (300, 0)


def test_no_requirements_no_done_count_and_errors_leave_the_mean_empty(engine):
    apply_events(engine, [
        progress_event("2019-11-02T10:00:00Z", user_id="1", done=0, total=0),
        progress_event("2019-11-02T11:00:00Z", user_id="2", error="not module based"),
        progress_event("2019-11-02T12:00:00Z", user_id="3", event_name="course_completed", error="not a student"),
    ])
    assert figures(engine) == [(date(2019, 11, 2), 1, 0, None)]  # the errors are not students; the one student has no share


def test_rebuild_computes_the_figures_of_a_bulk_loaded_history(engine):
    """A history written without the pipeline (a restore, a bulk load): rebuild gives the figures its rows define."""
    events = [progress_event(f"2019-11-{1 + n % 9:02d}T{n % 24:02d}:{n % 60:02d}:00{('Z', '-06:00', '+05:30')[n % 3]}",
                             course_id=str(1 + n % 3), user_id=str(n % 11), done=n % 5, total=4,
                             event_name="course_completed" if n % 7 == 0 else "course_progress",
                             error="x" if n % 13 == 0 else None) for n in range(120)]
    history = expected_history(events)
    with engine.begin() as connection:
        connection.execute(insert(course_progress_history), [row._asdict() for row in history])
        assert connection.execute(select(course_progress_daily_changes)).all() == []  # nothing computed yet
        written = rebuild(connection)
    expected = expected_daily(history)
    assert_daily_equal(daily(engine), expected)
    with engine.connect() as connection:
        stored = connection.execute(select(course_progress_daily_changes.c.course_id, course_progress_daily_changes.c.day)).all()
    assert written == len(stored)
    assert set(stored) == {(row.course_id, row.event_time.date()) for row in history}  # a row for each day with an event
    apply_events(engine, [progress_event("2019-10-30T23:59:59.999-06:00", course_id="1", user_id="50", done=4, total=4)])
    assert_daily_equal(daily(engine), expected_daily([*history, History(1, 50, datetime(2019, 10, 31, 5, 59, 59, 999000, tzinfo=UTC),
                                                                        "course_progress", 4, 4, None, False, None, 0)]))


def test_rebuild_of_an_empty_history_writes_nothing(engine):
    with engine.begin() as connection:
        assert rebuild(connection) == 0
    assert daily(engine) == []

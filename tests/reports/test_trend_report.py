"""The course_progress_trend_csv report: its day parameters (consumer/reports/catalogue.py), its rows
(consumer/reports/queries.py) and its file (consumer/reports/runner.py), on both databases.

The events go through the real pipeline; the expected daily figures are worked out by hand below from
the definition (each student's newest progress event before the next midnight UTC; students: not an error
body; completed: a course_completed; mean share done over those with requirements), not read from the view.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text

from consumer.reports import jobs
from consumer.reports.catalogue import REPORTS, ParameterError, empty_window, validate_parameters
from consumer.reports.queries import QUERIES, Scope
from consumer.reports.runner import ReportRunner
from consumer.store.tables import course_progress_daily_changes
from tests.factory import course_event, progress_event
from tests.helpers import apply_events
from tests.reports.readings import formula_cells

TREND = REPORTS["course_progress_trend_csv"]
ACCOUNT, OTHER = 501, 502

# course id -> (account, workflow_state, name, SIS id)
COURSES = {
    5001: (ACCOUNT, "available", "Algebra", "SIS-5001"),
    5002: (ACCOUNT, "available", '=HYPERLINK("http://x","y")', "@SIS-5002"),  # cells a spreadsheet would run
    5003: (ACCOUNT, "deleted", "Old Algebra", "SIS-5003"),
    5005: (ACCOUNT, "available", "Errors Only", "SIS-5005"),
    5101: (OTHER, "available", "Other Account", "SIS-5101"),
}


def progress(course: int, user: int, at: str, done: int = 0, total: int = 4, *, completed: bool = False,
             error: str | None = None) -> dict:
    account, _, name, sis = COURSES[course]
    event = progress_event(at, course_id=str(course), user_id=str(user), done=done, total=total, course_name=name,
                           sis_source_id=sis, user_name=f"Student {user}", error=error,
                           event_name="course_completed" if completed else "course_progress",
                           completed_at=at if completed else None)
    event["body"]["course"]["account_id"] = str(account)
    return event


def trend_events() -> list[dict]:
    events = [course_event("2024-02-01T00:00:00Z", course_id=str(course), account_id=str(account), workflow_state=state,
                           name=name, sis_source_id=sis)
              for course, (account, state, name, sis) in COURSES.items()]
    events += [
        # 5001: student 1 moves on over three days and completes; student 2 starts at the last second of
        # 03-02 and becomes an error body at midnight 03-05; student 3's course has no requirements.
        progress(5001, 1, "2024-03-01T10:00:00Z", 1),
        progress(5001, 1, "2024-03-03T09:00:00Z", 3),
        progress(5001, 1, "2024-03-03T20:00:00Z", 4, completed=True),
        progress(5001, 2, "2024-03-02T23:59:59.999Z", 2),
        progress(5001, 2, "2024-03-05T00:00:00Z", error="not a student"),
        progress(5001, 3, "2024-03-04T12:00:00Z", 0, 0),
        # 5002: one student, completed two days later
        progress(5002, 4, "2024-03-10T08:00:00Z", 1, 2),
        progress(5002, 4, "2024-03-12T08:00:00Z", 2, 2, completed=True),
        progress(5003, 7, "2024-03-02T08:00:00Z", 1, 1, completed=True),  # a deleted course
        progress(5005, 9, "2024-03-07T08:00:00Z", error="not a student"),  # no students at all
        progress(5101, 8, "2024-03-01T08:00:00Z", 1, 3),  # another account's course
    ]
    # Student 1 of 5001 at 08:00 on 03-02, arriving last: it revises 03-02 only (the 03-03 events are newer).
    events.append(progress(5001, 1, "2024-03-02T08:00:00Z", 2))
    return events


# (course, day) -> (students, completed, completion rate, mean share done), worked out from trend_events() by hand.
EXPECTED = {
    (5001, "2024-03-01"): (1, 0, 0.0, 0.25),  # 1 at 1/4
    (5001, "2024-03-02"): (2, 0, 0.0, 0.5),  # 1 at 2/4 (the late event), 2 at 2/4
    (5001, "2024-03-03"): (2, 1, 0.5, 0.75),  # 1 completed 4/4, 2 at 2/4
    (5001, "2024-03-04"): (3, 1, 1 / 3, 0.75),  # and 3, with no requirements: a student, in no share
    (5001, "2024-03-05"): (2, 1, 0.5, 1.0),  # 2 is an error body now
    (5002, "2024-03-10"): (1, 0, 0.0, 0.5),
    (5002, "2024-03-11"): (1, 0, 0.0, 0.5),  # no event: the day before carries on
    (5002, "2024-03-12"): (1, 1, 1.0, 1.0),
    (5003, "2024-03-02"): (1, 1, 1.0, 1.0),
    (5005, "2024-03-07"): (0, 0, None, None),  # no student: no rate, no share
    (5101, "2024-03-01"): (1, 0, 0.0, 1 / 3),
}
LIVE = (5001, 5002, 5005)


def expected_rows(courses=LIVE, start: str | None = None, end: str | None = None) -> list[tuple]:
    """Full report rows: (course id, SIS id, name, account, day, students, completed, rate, mean share done)."""
    return [(course, COURSES[course][3], COURSES[course][2], COURSES[course][0], date.fromisoformat(day), *figures)
            for (course, day), figures in sorted(EXPECTED.items())
            if course in courses and (start is None or day >= start) and (end is None or day <= end)]


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    counts = apply_events(engine, trend_events(), batch_size=4)  # several batches: the late event comes alone
    assert counts.rejected == 0
    return engine


def run(engine: Engine, scope: Scope, **parameters) -> list[tuple]:
    """The report's rows (checked against its count, read in the same transaction as the runner does)."""
    query = QUERIES["course_progress_trend_csv"](scope, validate_parameters(TREND, parameters, scope.course_id))
    with engine.connect() as connection, connection.begin():
        rows = [tuple(row) for row in connection.execute(query.rows)]
        assert connection.execute(query.count).scalar_one() == len(rows)
    assert all(len(row) == len(query.header) for row in rows)
    return rows


def same(rows: list[tuple], wanted: list[tuple]) -> bool:
    """Rows equal, the floats (rate, share) to 1e-9."""
    def key(row: tuple) -> tuple:
        return (*row[:7], *(None if value is None else pytest.approx(value, abs=1e-9) for value in row[7:]))

    return len(rows) == len(wanted) and all(key(w) == tuple(r) for r, w in zip(rows, wanted, strict=True))


# --- parameters ------------------------------------------------------------------------------------------------


def test_the_trend_takes_days_and_the_usual_scope_parameters():
    assert [(p.name, p.kind) for p in TREND.accepts("account")] == [
        ("include_deleted", "bool"), ("course_id", "id"), ("start_at", "day"), ("end_at", "day")]
    assert [p.name for p in TREND.accepts("course")] == ["include_deleted", "start_at", "end_at"]
    described = {p.name: p.description for p in TREND.parameters}
    assert "first day included" in described["start_at"] and "last day included" in described["end_at"]


@pytest.mark.parametrize(("raw", "clean"), [
    ({"start_at": "2024-03-01"}, {"start_at": "2024-03-01"}),
    ({"start_at": " 2024-03-01 ", "end_at": "2024-03-31"}, {"start_at": "2024-03-01", "end_at": "2024-03-31"}),
    ({"end_at": "2024-02-29"}, {"end_at": "2024-02-29"}),  # a leap day
    ({"start_at": "2024-03-01T00:00:00Z"}, {"start_at": "2024-03-01"}),
    ({"start_at": "2024-03-01T23:59:59.999Z"}, {"start_at": "2024-03-01"}),
    ({"start_at": "2024-03-01T20:00:00-05:00"}, {"start_at": "2024-03-02"}),  # 01:00 UTC on the 2nd
    ({"end_at": "2024-03-01T03:00:00+05:00"}, {"end_at": "2024-02-29"}),  # 22:00 UTC on the 29th
    ({"start_at": "2024-03-01 08:00:00 -0400"}, {"start_at": "2024-03-01"}),  # Ruby's Time#to_s
    ({"start_at": "2024-03-01Z", "end_at": "2024-03-02 UTC"}, {"start_at": "2024-03-01", "end_at": "2024-03-02"}),
    ({"start_at": "2024-03-01+00:00"}, {"start_at": "2024-03-01"}),
    ({"start_at": "2024-03-05", "end_at": "2024-03-01"}, {"start_at": "2024-03-05", "end_at": "2024-03-01"}),
    ({"start_at": None, "end_at": None, "include_deleted": "true"}, {"include_deleted": True}),
])
def test_days_are_normalised_to_the_utc_calendar_day(raw, clean):
    assert validate_parameters(TREND, raw) == clean


@pytest.mark.parametrize(("raw", "reason"), [
    ({"start_at": "2024-02-30"}, "is not a day"),
    ({"start_at": "2024-13-01"}, "is not a day"),
    ({"end_at": "yesterday"}, "is not a day"),
    ({"end_at": ""}, "is not a day"),  # in JSON; an empty form field leaves the parameter out
    ({"start_at": 20240301}, "is not a day"),
    ({"start_at": ["2024-03-01"]}, "is not a day"),
    ({"end_at": "0000-01-01"}, "is not a day"),
    ({"start_at": "2024-03-01+05:00"}, "is a date with a UTC offset but no time"),  # midnight there is 19:00 UTC on 02-29
    ({"end_at": "2024-03-01 -0400"}, "is a date with a UTC offset but no time"),
    ({"start_at": "\u0662\u0660\u0662\u0664-03-01"}, "is not a day"),  # Arabic-Indic digits are not a day
])
def test_bad_days_are_refused_naming_the_parameter_and_the_value(raw, reason):
    (name, value), = raw.items()
    with pytest.raises(ParameterError) as refused:
        validate_parameters(TREND, raw)
    message = str(refused.value)
    assert message.startswith(f"parameters[{name}]: {reason}"), message
    assert f"(got {value!r})" in message


def test_a_course_report_refuses_another_course_and_unknown_parameters():
    with pytest.raises(ParameterError, match=r"^parameters\[course_id\]: a course report covers course 5001 only"):
        validate_parameters(TREND, {"course_id": 5002}, course_id=5001)
    with pytest.raises(ParameterError, match=r"^parameters\[days\]: not a parameter of course_progress_trend_csv"):
        validate_parameters(TREND, {"days": "7"})


@given(day=st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)),
       seconds=st.integers(0, 86_399), micros=st.integers(0, 999_999), offset=st.integers(-23 * 60 - 59, 23 * 60 + 59))
@settings(max_examples=60, deadline=None)
def test_a_time_stands_for_the_utc_day_it_falls_on(day, seconds, micros, offset):
    local = datetime.combine(day, datetime.min.time()) + timedelta(seconds=seconds, microseconds=micros)
    sign, minutes = ("+" if offset >= 0 else "-"), abs(offset)
    written = f"{local.isoformat(timespec='microseconds')}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    utc_day = (local - timedelta(minutes=offset)).date()  # what the local time is in UTC, worked out apart
    assert validate_parameters(TREND, {"start_at": written}) == {"start_at": utc_day.isoformat()}
    assert validate_parameters(TREND, {"end_at": day.isoformat()}) == {"end_at": day.isoformat()}


@given(value=st.text(max_size=40) | st.from_regex(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]{0,15})?\s*[-+Zz0-9:UTCGM]{0,7}\s*")
       | st.integers() | st.floats() | st.none() | st.lists(st.text(max_size=3), max_size=2))
@settings(max_examples=60, deadline=None)
def test_any_value_is_a_day_or_an_error_naming_it(value):
    try:
        clean = validate_parameters(TREND, {"end_at": value})
    except ParameterError as refused:
        assert str(refused).startswith("parameters[end_at]: ") and "(got " in str(refused)
    else:
        assert value is None and clean == {} or date.fromisoformat(clean["end_at"]).isoformat() == clean["end_at"]


@pytest.mark.parametrize(("window", "empty"), [
    ({}, False),
    ({"start_at": "2024-03-01"}, False),
    ({"start_at": "2024-03-01", "end_at": "2024-03-01"}, False),  # one day: both ends included
    ({"start_at": "2024-03-01", "end_at": "2024-03-02"}, False),
    ({"start_at": "2024-03-02", "end_at": "2024-03-01"}, True),
    ({"start_at": "2024-01-01", "end_at": "2023-12-31"}, True),
    # the instants of the other reports keep their half-open window
    ({"start_at": "2024-03-01T00:00:00Z", "end_at": "2024-03-01T00:00:00Z"}, True),
    ({"start_at": "2024-03-01T00:00:00Z", "end_at": "2024-03-01T00:00:01Z"}, False),
])
def test_a_day_window_is_empty_only_when_it_ends_before_it_starts(window, empty):
    assert empty_window(window) is empty


# --- rows ------------------------------------------------------------------------------------------------------


def test_an_account_trend_has_a_row_per_live_course_per_day_in_course_and_day_order(seeded):
    rows = run(seeded, Scope(ACCOUNT))
    assert same(rows, expected_rows()), rows
    assert all(isinstance(row[4], date) for row in rows)


def test_another_account_sees_only_its_own_courses(seeded):
    assert same(run(seeded, Scope(OTHER)), expected_rows((5101,)))
    assert run(seeded, Scope(503)) == []  # an account with no courses
    assert run(seeded, Scope(OTHER, 5001)) == []  # a course of another account, even named


def test_include_deleted_adds_the_deleted_courses(seeded):
    assert same(run(seeded, Scope(ACCOUNT), include_deleted=True), expected_rows((*LIVE, 5003)))
    assert run(seeded, Scope(ACCOUNT, 5003)) == []
    assert same(run(seeded, Scope(ACCOUNT, 5003), include_deleted="true"), expected_rows((5003,)))


def test_a_course_scope_or_a_course_id_parameter_narrows_to_that_course(seeded):
    assert same(run(seeded, Scope(ACCOUNT, 5002)), expected_rows((5002,)))
    assert same(run(seeded, Scope(ACCOUNT), course_id=5001), expected_rows((5001,)))
    assert same(run(seeded, Scope(ACCOUNT), course_id="20000000005001"), expected_rows((5001,)))  # a global id
    assert run(seeded, Scope(ACCOUNT), course_id=5101) == []


def test_start_at_and_end_at_are_the_first_and_last_days_included(seeded):
    assert same(run(seeded, Scope(ACCOUNT), start_at="2024-03-02", end_at="2024-03-04"),
                expected_rows(start="2024-03-02", end="2024-03-04"))
    assert [row[4] for row in run(seeded, Scope(ACCOUNT), start_at="2024-03-02", end_at="2024-03-04")] == [
        date(2024, 3, 2), date(2024, 3, 3), date(2024, 3, 4)]
    one_day = run(seeded, Scope(ACCOUNT), start_at="2024-03-11", end_at="2024-03-11")
    assert same(one_day, expected_rows(start="2024-03-11", end="2024-03-11")) and len(one_day) == 1
    # a time stands for its UTC day: 23:30 on 03-10 at -01:00 is 00:30 on 03-11
    assert same(run(seeded, Scope(ACCOUNT), start_at="2024-03-10T23:30:00-01:00"), expected_rows(start="2024-03-11"))
    assert same(run(seeded, Scope(ACCOUNT), end_at="2024-03-03"), expected_rows(end="2024-03-03"))


def test_a_window_ending_before_it_starts_has_no_rows(seeded):
    assert run(seeded, Scope(ACCOUNT), start_at="2024-03-05", end_at="2024-03-04") == []
    assert run(seeded, Scope(ACCOUNT), start_at="2024-04-01") == []  # after every course's last day


DAYS = st.one_of(st.none(), st.dates(min_value=date(2024, 2, 27), max_value=date(2024, 3, 14)).map(date.isoformat))


@given(start=DAYS, end=DAYS, include_deleted=st.booleans())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_window_keeps_exactly_the_days_from_start_to_end(seeded, start, end, include_deleted):
    parameters = {k: v for k, v in (("start_at", start), ("end_at", end)) if v is not None}
    courses = (*LIVE, 5003) if include_deleted else LIVE
    assert same(run(seeded, Scope(ACCOUNT), include_deleted=include_deleted, **parameters),
                expected_rows(courses, start, end))


def test_the_file_has_the_header_the_days_and_safe_cells(seeded):
    job = jobs.create(seeded, report="course_progress_trend_csv", account_id=ACCOUNT, course_id=None, token_id=1,
                      parameters=validate_parameters(TREND, {"start_at": "2024-03-05", "end_at": "2024-03-11"}))
    claimed = jobs.claim(seeded)
    assert claimed is not None and claimed.id == job.id
    ReportRunner(seeded).run(claimed)
    done = jobs.get(seeded, job.id)
    data = b"".join(jobs.file_chunks(seeded, job.id)).decode("utf-8")
    lines = list(csv.reader(io.StringIO(data, newline="")))
    assert lines[0] == ["course id", "course sis id", "course name", "account id", "day", "students", "completed",
                        "completion rate", "mean share done"]
    assert lines[1:] == [
        ["5001", "SIS-5001", "Algebra", "501", "2024-03-05", "2", "1", "0.5", "1.0"],
        ["5002", "'@SIS-5002", '\'=HYPERLINK("http://x","y")', "501", "2024-03-10", "1", "0", "0.0", "0.5"],
        ["5002", "'@SIS-5002", '\'=HYPERLINK("http://x","y")', "501", "2024-03-11", "1", "0", "0.0", "0.5"],
        ["5005", "SIS-5005", "Errors Only", "501", "2024-03-07", "0", "0", "", ""],
    ]
    assert formula_cells(data) == []
    assert (done.status, done.current_line, done.message) == ("complete", 4, "4 rows written")
    assert done.parameters == {"start_at": "2024-03-05", "end_at": "2024-03-11"}


def test_an_empty_day_window_is_an_empty_file_whose_message_says_why(seeded):
    job = jobs.create(seeded, report="course_progress_trend_csv", account_id=ACCOUNT, course_id=5001, token_id=1,
                      parameters=validate_parameters(TREND, {"start_at": "2024-03-03", "end_at": "2024-03-02"}, 5001))
    claimed = jobs.claim(seeded)
    assert claimed is not None and claimed.id == job.id
    ReportRunner(seeded).run(claimed)
    done = jobs.get(seeded, job.id)
    assert (done.status, done.current_line) == ("complete", 0)
    assert done.message == "0 rows written (end_at is not after start_at, so no row can match)"


# --- the plan on Postgres ----------------------------------------------------------------------------------------


def scans_of(plan: dict, relation: str) -> list[dict]:
    found = [plan] if plan.get("Relation Name") == relation else []
    for child in plan.get("Plans", []):
        found += scans_of(child, relation)
    return found


@pytest.mark.parametrize(("scope", "parameters", "courses"), [
    (Scope(ACCOUNT), {"start_at": "2024-03-03", "end_at": "2024-03-03"}, LIVE),
    (Scope(ACCOUNT, 5002), {}, (5002,)),
    (Scope(ACCOUNT), {"course_id": 5001, "end_at": "2024-03-02"}, (5001,)),
    (Scope(OTHER), {}, (5101,)),
])
def test_on_postgres_the_view_reads_the_daily_changes_of_the_courses_in_scope_only(pg_engine, scope, parameters, courses):
    """Joined with courses, Postgres would sum every course's days before keeping the account's; the scope reaches
    the view as a condition instead, so the changes table is read for the courses in scope only."""
    assert apply_events(pg_engine, trend_events()).rejected == 0
    # Many more days for courses out of scope, so reading them would show.
    with pg_engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO course_progress_daily_changes (course_id, day, students) "
            "SELECT c, DATE '2023-01-01' + d, 1 FROM generate_series(6001, 6050) c, generate_series(0, 99) d"))
        connection.execute(text("ANALYZE"))
        changes = course_progress_daily_changes.c
        in_scope = connection.execute(select(func.count()).where(changes.course_id.in_(courses))).scalar_one()
        everything = connection.execute(select(func.count()).select_from(course_progress_daily_changes)).scalar_one()
        query = QUERIES["course_progress_trend_csv"](scope, validate_parameters(TREND, parameters, scope.course_id))
        for statement in (query.rows, query.count):
            sql = str(statement.compile(pg_engine, compile_kwargs={"literal_binds": True}))
            [plan] = connection.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) {sql}")).scalar_one()
            scans = scans_of(plan["Plan"], "course_progress_daily_changes")
            assert scans and sum(scan["Actual Rows"] * scan["Actual Loops"] for scan in scans) == in_scope, plan
    assert in_scope < everything // 100

"""consumer/reports/queries.py: which rows each report holds (scope, deleted courses and sections, the time
window), in what order, with a count over the same rows; on both databases.

The data is the API tests' seed (tests/api/seed.py): account 79 has courses 565 and 777 (available) and 778
(deleted); account 80 has course 900; course 999 is known from a progress event only (its course.account_id
is 79, its state unknown: not deleted).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine

from consumer.reports.queries import QUERIES, Scope
from tests.api.seed import seed_events
from tests.factory import progress_event
from tests.helpers import apply_events

ALL_79 = [(565, 1), (565, 2), (565, 3), (565, 4), (565, 5), (777, 10), (777, 11), (777, 12), (999, 40)]


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    # and a student of 565 whose course has no requirements: no percentage to show
    counts = apply_events(engine, [*seed_events(), progress_event("2019-09-02T10:00:00Z", course_id="565", user_id="5",
                                                                  done=0, total=0)])
    assert counts.rejected == 0
    return engine


def run(engine: Engine, report: str, scope: Scope, **parameters) -> tuple[list[tuple], int]:
    """The report's rows and its count, read in one transaction as the runner does."""
    query = QUERIES[report](scope, parameters)
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(query.rows)]
        count = connection.execute(query.count).scalar_one()
    assert all(len(row) == len(query.header) for row in rows)
    return rows, count


def progress_keys(engine: Engine, scope: Scope, **parameters) -> list[tuple[int, int]]:
    rows, count = run(engine, "course_progress_csv", scope, **parameters)
    assert count == len(rows)
    return [(row[0], row[4]) for row in rows]


def test_an_account_report_holds_its_live_courses_in_course_and_user_order(seeded):
    assert progress_keys(seeded, Scope(79)) == ALL_79  # not 778 (deleted), not 900 (account 80)
    assert progress_keys(seeded, Scope(80)) == [(900, 30), (900, 31)]
    assert progress_keys(seeded, Scope(81)) == []


def test_include_deleted_adds_the_deleted_courses(seeded):
    assert progress_keys(seeded, Scope(79), include_deleted=True) == sorted([*ALL_79, (778, 20)])


def test_a_course_scope_or_a_course_id_parameter_narrows_to_that_course_of_the_account(seeded):
    assert progress_keys(seeded, Scope(79, 777)) == [(777, 10), (777, 11), (777, 12)]
    assert progress_keys(seeded, Scope(79), course_id=565) == [(565, 1), (565, 2), (565, 3), (565, 4), (565, 5)]
    assert progress_keys(seeded, Scope(79, 900)) == []  # another account's course
    assert progress_keys(seeded, Scope(79, 778)) == []  # deleted
    assert progress_keys(seeded, Scope(79, 778), include_deleted=True) == [(778, 20)]


def test_the_window_starts_at_start_at_and_ends_before_end_at(seeded):
    # 565: users 1 to 4 last active 09-01, 09-15, 10-01, 10-20 (5: 09-02); 777: 09-20 and 09-21; 999: 09-24
    window = {"start_at": "2019-09-15T10:00:00Z", "end_at": "2019-10-20T10:00:00Z"}
    assert progress_keys(seeded, Scope(79), **window) == [(565, 2), (565, 3), (777, 10), (777, 11), (777, 12), (999, 40)]
    assert progress_keys(seeded, Scope(79), start_at="2019-10-20T10:00:00Z") == [(565, 4)]
    assert progress_keys(seeded, Scope(79), end_at="2019-09-02T10:00:00Z") == [(565, 1)]
    assert progress_keys(seeded, Scope(79), start_at="2019-10-01T00:00:00Z", end_at="2019-10-01T00:00:00Z") == []


def test_progress_rows_carry_the_share_done_to_one_decimal_and_none_without_requirements(seeded):
    rows, _ = run(seeded, "course_progress_csv", Scope(79, 565))
    share = {row[4]: row[8] for row in rows}
    assert {user: (None if value is None else Decimal(str(value))) for user, value in share.items()} == {
        1: Decimal("25.0"), 2: Decimal("50.0"), 3: Decimal("75.0"), 4: Decimal("100.0"), 5: None}
    names = {row[4]: row[5] for row in rows}
    assert names[1] == "Student 1"  # the user's name, from users
    (error,) = [row for row in run(seeded, "course_progress_csv", Scope(79, 777))[0] if row[4] == 12]
    assert error[12] == "not a student" and error[8] is None


def test_completion_has_one_row_per_live_course_of_the_account(seeded):
    rows, count = run(seeded, "course_completion_csv", Scope(79))
    assert [row[0] for row in rows] == [565, 777, 999] and count == 3
    by_course = {row[0]: row for row in rows}
    assert (by_course[565][5], by_course[565][6]) == (5, 1)  # students, completed
    assert [row[0] for row in run(seeded, "course_completion_csv", Scope(79), include_deleted=True)[0]] == [565, 777, 778, 999]
    assert [row[0] for row in run(seeded, "course_completion_csv", Scope(79, 777))[0]] == [777]
    assert run(seeded, "course_completion_csv", Scope(79), start_at="2019-10-21T00:00:00Z") == ([], 0)


def test_sections_leave_out_deleted_sections_and_courses_unless_asked(seeded):
    rows, count = run(seeded, "course_sections_csv", Scope(79))
    assert [(row[1], row[0]) for row in rows] == [(565, 1021), (777, 2001)] and count == 2
    rows, _ = run(seeded, "course_sections_csv", Scope(79), include_deleted=True)
    assert [(row[1], row[0]) for row in rows] == [(565, 1021), (565, 1022), (777, 2001)]
    assert [row[0] for row in run(seeded, "course_sections_csv", Scope(80))[0]] == [9001]
    assert run(seeded, "course_sections_csv", Scope(79), start_at="2019-09-03T00:00:00Z") == ([], 0)


@pytest.mark.parametrize("report", sorted(QUERIES))
def test_each_query_counts_exactly_its_rows(seeded, report):
    for scope, parameters in ((Scope(79), {}), (Scope(79), {"include_deleted": True}), (Scope(79, 565), {}),
                              (Scope(80), {"end_at": "2019-09-23T00:00:00Z"})):
        rows, count = run(seeded, report, scope, **parameters)
        assert count == len(rows), (scope, parameters)

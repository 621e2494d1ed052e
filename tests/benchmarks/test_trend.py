"""benchmarks/trend.py: `python -m benchmarks trend` loads a history of the shape it claims, and the daily figures
it times are the figures the definition gives (checked in Python over the loaded rows, not against the views)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta, timezone

import pytest
from sqlalchemy import text

from benchmarks import trend
from consumer.store.daily import rebuild
from consumer.store.engine import make_engine
from tests.benchmarks.tables import SECRET, row_counts, with_password

ROWS = 20_000


def expected_daily(history: list[tuple]) -> dict[tuple[int, date], tuple[int, int, float | None]]:
    """The definition of course_progress_daily, read literally: for each course and each UTC day from its first
    event's day to its last, every student's newest event before the next midnight; error bodies left out."""
    events = defaultdict(list)  # course -> [(time, user, row)]
    for row in history:
        events[row[0]].append((row[2], row[1], row))
    figures = {}
    for course, rows in events.items():
        rows.sort(key=lambda item: item[0])
        days = [when.astimezone(timezone.utc).date() for when, _, _ in rows]
        newest: dict[int, tuple] = {}
        position, day = 0, days[0]
        while day <= days[-1]:
            while position < len(rows) and days[position] <= day:
                newest[rows[position][1]] = rows[position][2]
                position += 1
            counted = [row for row in newest.values() if row[8] is None]
            shares = [min(row[5], row[4]) / row[4] for row in counted if row[4] and row[4] > 0 and row[5] is not None]
            figures[(course, day)] = (len(counted), sum(1 for row in counted if row[7]),
                                      sum(shares) / len(shares) if shares else None)
            day += timedelta(days=1)
    return figures


@pytest.fixture
def loaded(database):
    """A migrated database holding the benchmark's history (ROWS rows), its daily changes and the compared view."""
    engine = make_engine(database)
    trend.load(engine, ROWS, accounts=4, seed=3, say=lambda _: None)
    trend.rebuild_daily(engine)
    trend.create_compared_view(engine)
    yield engine
    engine.dispose()


def test_every_view_gives_the_figures_of_the_definition(loaded):
    with loaded.connect() as connection:
        history = connection.execute(text(
            "SELECT course_id, user_id, event_time, event_name, requirement_count, requirement_completed_count, "
            "completed_at, is_completed, progress_error FROM course_progress_history")).all()
        expected = expected_daily(history)
        for view in (trend.DAILY, trend.DIRECT):
            rows = connection.execute(text(f"SELECT course_id, day, students, completed, mean_share_done FROM {view}")).all()
            got = {(row[0], row[1]): row[2:] for row in rows}
            assert len(rows) == len(got) and got.keys() == expected.keys(), view
            for key, (students, completed, share) in expected.items():
                assert got[key][:2] == (students, completed), (view, key)
                assert (got[key][2] is None) == (share is None) and abs((got[key][2] or 0) - (share or 0)) < 1e-9, (view, key)


def test_the_history_has_the_shape_it_claims(loaded):
    with loaded.connect() as connection:
        shape = connection.execute(text("""
            SELECT COUNT(*), COUNT(DISTINCT course_id), COUNT(*) FILTER (WHERE is_completed),
                   COUNT(*) FILTER (WHERE progress_error IS NOT NULL),
                   COUNT(*) FILTER (WHERE requirement_completed_count > requirement_count)
            FROM course_progress_history""")).one()
        sizes = connection.execute(text(
            "SELECT COUNT(DISTINCT user_id) FROM course_progress_history GROUP BY course_id")).scalars().all()
        busy_days = connection.execute(text(
            "SELECT COUNT(*) FROM (SELECT 1 FROM course_progress_history "
            "GROUP BY course_id, user_id, CAST(timezone('UTC', event_time) AS date) HAVING COUNT(*) > 1) AS d")).scalar_one()
        # a completed student later below the count again (a requirement added): the completed flag reverts
        reverts = connection.execute(text("""
            SELECT COUNT(*) FROM (
                SELECT is_completed, LAG(is_completed) OVER (PARTITION BY course_id, user_id ORDER BY event_time) AS before
                FROM course_progress_history) AS t
            WHERE before AND NOT is_completed""")).scalar_one()
        unknown_courses = connection.execute(text(
            "SELECT COUNT(*) FROM course_progress_history h WHERE NOT EXISTS "
            "(SELECT 1 FROM courses c WHERE c.id = h.course_id AND c.account_id IS NOT NULL)")).scalar_one()
    rows, courses, completed, errors, impossible = shape
    assert rows == ROWS and courses == len(sizes) >= 2
    assert completed and errors and busy_days and reverts
    assert impossible == 0 and unknown_courses == 0


def test_course_sizes_have_a_long_tail():
    sizes = [course.students for course, _ in zip(trend.plan_courses(accounts=100, seed=0), range(5000), strict=False)]
    small, large = sum(20 <= n <= 200 for n in sizes) / len(sizes), sum(n >= 1000 for n in sizes) / len(sizes)
    assert 0.85 < small < 0.95 and 0.01 < large < 0.03 and max(sizes) <= 2000
    assert sorted(sizes)[len(sizes) // 2] < 100  # most courses are small


def test_trend_prints_every_figure(figures, new_pg_database):
    result = figures("trend", "--history-rows", str(ROWS), "--accounts", "4", "--repeats", "2", "--compare-view",
                     "--database-url", new_pg_database())
    assert result["history_rows"] == ROWS and result["daily_changes_rows"] > 0
    assert result["load_seconds"] > 0 and result["rebuild_seconds"] >= 0 and result["server"]["jit"] in ("on", "off")
    assert set(result["queries"]) == set(trend.queries(trend.Subjects(
        {"course_id": 1}, {"course_id": 1}, (date(2026, 1, 1), date(2026, 1, 28)), {"account_id": 1}, (date(2026, 1, 4), 3))))
    for views in result["queries"].values():
        assert set(views) == {trend.DAILY, trend.DIRECT}
        for measured in views.values():
            assert measured["rows"] > 0 and 0 < measured["median_ms"] <= measured["max_ms"] and measured["cost"] > 0
            assert measured["plan"] and ("median_ms_jit_off" in measured) == (measured["jit"] is not None)
    assert result["same_rows"] == dict.fromkeys(result["queries"], True)
    largest, typical = result["subjects"]["largest"], result["subjects"]["typical"]
    assert largest["history_rows"] >= typical["history_rows"]
    assert result["queries"]["one course, largest"][trend.DAILY]["rows"] == largest["days"]


def test_trend_prints_a_table_and_leaves_no_view_behind(run, new_pg_database):
    database = new_pg_database()
    code, out, err = run("trend", "--history-rows", "3000", "--accounts", "2", "--repeats", "1", "--compare-view",
                         "--plans", "--database-url", database)
    assert code == 0, err[-3000:]
    assert "history: 3,000 rows" in out and "one course, largest" in out and "Execution Time" in out
    assert out.count("the views agree") == 6 and "DISAGREE" not in out
    engine = make_engine(database)
    with engine.connect() as connection:
        views = connection.execute(text("SELECT table_name FROM information_schema.views WHERE table_schema = 'public'")).scalars()
        assert trend.DIRECT not in set(views)
        assert connection.execute(text("SELECT COUNT(*) FROM course_progress_history")).scalar_one() == 0  # emptied after
    engine.dispose()


def test_trend_fails_when_the_compared_views_disagree(run, new_pg_database, monkeypatch):
    monkeypatch.setattr(trend, "direct_view_sql", lambda: f"CREATE VIEW {trend.DIRECT} AS "
                        "SELECT course_id, day, students + 1 AS students, completed, mean_share_done FROM course_progress_daily")
    code, out, err = run("trend", "--history-rows", "3000", "--accounts", "2", "--repeats", "1", "--compare-view",
                         "--database-url", new_pg_database())
    assert code == 1 and "DISAGREE" in out
    assert err.splitlines()[-1].startswith("error: the compared views returned different rows for: one course, typical")


def test_trend_explains_itself_and_never_takes_its_database_from_database_url(run, database_with_rows):
    code, out, _ = run("trend", "--help")
    assert code == 0 and "--database-url" in out and "DATABASE_URL" in out and "scratch" in out
    database, before = database_with_rows
    code, _, err = run("trend", "--history-rows", "1000", env={"DATABASE_URL": with_password(database)})
    assert code == 2 and err.count("\n") == 1 and "--database-url" in err and SECRET not in err
    code, _, err = run("trend", "--history-rows", "1000", "--database-url", database)  # it holds rows: not a scratch one
    assert code == 2 and "refusing" in err and err.count("\n") == 1
    assert row_counts(database) == before


def test_trend_refuses_sqlite(run, sqlite_url):
    code, _, err = run("trend", "--database-url", sqlite_url)
    assert code == 2 and "needs a Postgres" in err and err.count("\n") == 1


def test_the_daily_views_fill_days_whatever_the_session_time_zone(database):
    """In America/Santiago, midnight of 2026-09-06 does not exist (clocks go from 00:00 to 01:00): a series of
    timestamps starting that day runs at 01:00 and stops short of a bound at midnight. Dates cannot."""
    engine = make_engine(database)
    trend.create_compared_view(engine)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO course_progress_history (course_id, user_id, event_time, event_name, requirement_count, "
            "requirement_completed_count, is_completed, event_rank) "
            "VALUES (1, 1, '2026-09-06 12:00Z', 'course_progress', 5, 1, false, 0), "
            "(1, 2, '2026-09-09 12:00Z', 'course_progress', 5, 3, false, 0)"))
        rebuild(connection)
        connection.execute(text("SET LOCAL TimeZone = 'America/Santiago'"))
        answers = {view: connection.execute(text(f"SELECT day, students FROM {view} WHERE course_id = 1 ORDER BY day")).all()
                   for view in (trend.DAILY, trend.DIRECT)}
    engine.dispose()
    days = [(date(2026, 9, 6), 1), (date(2026, 9, 7), 1), (date(2026, 9, 8), 1), (date(2026, 9, 9), 2)]
    assert answers == {trend.DAILY: days, trend.DIRECT: days}


def test_the_weekly_account_query_counts_each_course_at_its_last_day_after_it_ends(loaded):
    """docs/bi.md's weekly account chart: every Sunday, each course of the account from its first day on, at that
    Sunday or (once it has ended) at its last day."""
    subjects = trend.pick_subjects(loaded)
    with loaded.connect() as connection:
        history = connection.execute(text(
            "SELECT course_id, user_id, event_time, event_name, requirement_count, requirement_completed_count, "
            "completed_at, is_completed, progress_error FROM course_progress_history")).all()
        in_account = set(connection.execute(text("SELECT id FROM courses WHERE account_id = :a"),
                                            {"a": subjects.account["account_id"]}).scalars())
        got = connection.execute(text(trend.queries(subjects)["one account, weekly"].format(view=trend.DAILY))).all()
    daily = expected_daily([row for row in history if row[0] in in_account])
    spans = {course: (min(d for c, d in daily if c == course), max(d for c, d in daily if c == course)) for course in in_account}
    sunday, weeks = subjects.weeks
    expected = []
    for week in range(weeks):
        day = sunday + timedelta(days=7 * week)
        figures = [daily[(course, min(day, last))] for course, (first, last) in spans.items() if first <= day]
        if figures:
            expected.append((day, sum(f[0] for f in figures), sum(f[1] for f in figures)))
    assert got == expected and len(expected) >= 2

"""The dashboard's data queries at scale (Postgres): one account of 10,000 courses, another beside it.

`python -m benchmarks dashboard --database-url URL [--courses 10000]` loads the history of every course
(one event per student; one course, the trend's, with a term of events per student) with INSERT ... SELECT
over generate_series, derives `course_progress` from it (each student's newest event; the triggers keep
`course_progress_stats`), fills `course_progress_daily_changes` with daily.rebuild, VACUUM ANALYZE, then
times what the endpoints of consumer/api/dashboard.py run (consumer/dashboard/queries.py): a course page
sorted by name, by completion rate descending, the last page, a search, the account's totals and one
course's trend. Each page is compared with a plain SQL query over `courses` and `course_progress` (not the
views), and the trend with a Python reading of the history: any difference exits 1.

Registered by benchmarks/cli.py (`add_command`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, text

from consumer.commands.arguments import positive_int
from consumer.commands.common import CommandError
from consumer.config import Settings
from consumer.dashboard import queries
from consumer.store.daily import rebuild
from consumer.store.engine import make_engine

ACCOUNT, OTHER = 1, 2
PER_PAGE = 50
SEARCH = "calc"  # in about one name in eight
TERM_START = datetime(2026, 1, 12, 8, tzinfo=timezone.utc)
SUBJECTS = ("Calculus", "Biology", "History", "Chemistry", "Écriture", "Art & Design", "Physics", "Data_Science 100%")

# The history: every student of every course one event; the trend's course :trend_events per student, 3 days apart.
# Course c has 1 + (c * 7) % :students students, none when c % 41 = 0; one row in 37 is an error body.
HISTORY_SQL = """
INSERT INTO course_progress_history (course_id, user_id, event_time, event_name, requirement_count,
    requirement_completed_count, completed_at, is_completed, progress_error, event_rank)
SELECT course_id, user_id, event_time,
       CASE WHEN error IS NULL AND done = 10 THEN 'course_completed' ELSE 'course_progress' END,
       CASE WHEN error IS NULL THEN 10 END, CASE WHEN error IS NULL THEN done END,
       CASE WHEN error IS NULL AND done = 10 THEN event_time END, error IS NULL AND done = 10, error, 0
FROM (
    SELECT c.id AS course_id, u.u AS user_id,
           TIMESTAMPTZ '2026-01-12 08:00:00+00' + (e.e - 1) * interval '3 days'
               + ((c.id * 7919 + u.u * 104729) % 86400) * interval '1 second' AS event_time,
           LEAST(10, (u.u * 3 + c.id + e.e * 2) % 11) AS done,
           CASE WHEN (c.id + u.u) % 37 = 0 THEN 'not a student' END AS error
    FROM courses c
    CROSS JOIN LATERAL generate_series(1, CASE WHEN c.id % 41 = 0 THEN 0 ELSE 1 + (c.id * 7) % :students END) AS u(u)
    CROSS JOIN LATERAL generate_series(1, CASE WHEN c.id = :trend_course THEN :trend_events ELSE 1 END) AS e(e)
) AS events
"""

CURRENT_SQL = """
INSERT INTO course_progress (course_id, user_id, requirement_count, requirement_completed_count, completed_at,
    is_completed, progress_error, last_event_name, last_event_time, last_event_rank)
SELECT DISTINCT ON (course_id, user_id) course_id, user_id, requirement_count, requirement_completed_count,
       completed_at, is_completed, progress_error, event_name, event_time, event_rank
FROM course_progress_history ORDER BY course_id, user_id, event_time DESC
"""

# The oracle: a course page from the raw tables, as the API documents it (NULLs last in both orders, then the id).
ORACLE_KEYS = {"name": "lower(c.name)", "completion_rate": "completion_rate", "id": "c.id"}
ORACLE_SQL = """
SELECT * FROM (
    SELECT c.id, c.name, c.workflow_state,
           COUNT(p.user_id) FILTER (WHERE p.progress_error IS NULL) AS students,
           COUNT(p.user_id) FILTER (WHERE p.progress_error IS NULL AND p.is_completed) AS completed,
           CAST(COUNT(p.user_id) FILTER (WHERE p.progress_error IS NULL AND p.is_completed) AS double precision)
               / NULLIF(COUNT(p.user_id) FILTER (WHERE p.progress_error IS NULL), 0) AS completion_rate,
           AVG(CAST(p.requirement_completed_count AS double precision) / p.requirement_count)
               FILTER (WHERE p.progress_error IS NULL AND p.requirement_count > 0) AS mean_share_done,
           MAX(p.last_event_time) AS last_activity
    FROM courses c LEFT JOIN course_progress p ON p.course_id = c.id
    WHERE c.account_id = :account AND (c.workflow_state IS NULL OR c.workflow_state <> 'deleted')
      AND (CAST(:search AS text) IS NULL OR strpos(lower(c.name), lower(:search)) > 0)
    GROUP BY c.id
) AS c
ORDER BY {key} IS NULL, {key} {order}, c.id
LIMIT :limit OFFSET :offset
"""

Say = Callable[[str], None]


def load(engine: Engine, courses: int, other_courses: int, students: int, trend_events: int, say: Say) -> dict[str, Any]:
    """Empty the tables, then load both accounts; the load's figures."""
    started = time.perf_counter()
    trend_course = 1 + courses // 2
    subjects = "ARRAY[" + ", ".join("'" + s.replace("'", "''") + "'" for s in SUBJECTS) + "]"
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE courses, course_progress, course_progress_history, course_progress_daily_changes"))
        connection.execute(text(
            "INSERT INTO courses (id, account_id, name, sis_source_id, workflow_state, course_event_time) "
            f"SELECT c, CASE WHEN c <= :courses THEN {ACCOUNT} ELSE {OTHER} END, "
            f"CASE WHEN c % 97 = 0 THEN NULL ELSE ({subjects})[1 + (c * 5) % 8] || ' ' || (100 + c % 400) "
            "|| ' section ' || c END, 'SIS-' || c, CASE WHEN c % 53 = 0 THEN 'deleted' ELSE 'available' END, "
            "TIMESTAMPTZ '2026-01-01 00:00:00+00' FROM generate_series(1, :all) AS c"),
            {"courses": courses, "all": courses + other_courses})
        history = connection.execute(text(HISTORY_SQL), {"students": students, "trend_course": trend_course,
                                                         "trend_events": trend_events}).rowcount
        say(f"  {history:,} history rows")
        current = connection.execute(text(CURRENT_SQL)).rowcount
        say(f"  {current:,} course_progress rows; daily.rebuild")
        daily = rebuild(connection)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return {"courses": courses, "other_courses": other_courses, "history_rows": history, "progress_rows": current,
            "daily_changes_rows": daily, "trend_course": trend_course, "seconds": round(time.perf_counter() - started, 1)}


def timed(run: Callable[[], Any], repeats: int) -> tuple[Any, dict[str, float]]:
    """The result of `run`, and the median and worst milliseconds over `repeats` runs after a warm-up."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return result, {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def oracle_page(connection: Connection, sort: str, order: str, search: str | None, offset: int) -> list[tuple]:
    key = ORACLE_KEYS[sort]
    rows = connection.execute(text(ORACLE_SQL.format(key=key, order=order.upper())),
                              {"account": ACCOUNT, "search": search, "limit": PER_PAGE, "offset": offset}).all()
    return [tuple(row) for row in rows]


def same_rows(got: list[queries.CourseRow], wanted: list[tuple]) -> bool:
    def close(a: float | None, b: float | None) -> bool:
        return (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-6)

    return len(got) == len(wanted) and all(
        (g.id, g.name, g.workflow_state, g.students, g.completed, g.last_activity) == (w[0], w[1], w[2], w[3], w[4], w[7])
        and close(g.completion_rate, w[5]) and close(g.mean_share_done, w[6])
        for g, w in zip(got, wanted, strict=True))


def oracle_trend(connection: Connection, course_id: int, start: date, end: date) -> list[tuple]:
    """(day, students, completed) from the history: each student's newest event before the next midnight."""
    rows = connection.execute(text(
        "SELECT user_id, event_time, progress_error IS NULL AS counted, is_completed FROM course_progress_history "
        "WHERE course_id = :course ORDER BY event_time"), {"course": course_id}).all()
    days, newest, position = [], {}, 0
    first = rows[0].event_time.astimezone(timezone.utc).date() if rows else None
    day = start
    while day <= end:
        midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), timezone.utc)
        while position < len(rows) and rows[position].event_time < midnight:
            newest[rows[position].user_id] = rows[position]
            position += 1
        if first is not None and day >= first:
            counted = [r for r in newest.values() if r.counted]
            days.append((day, len(counted), sum(1 for r in counted if r.is_completed)))
        day += timedelta(days=1)
    return days


def measure(engine: Engine, loaded: dict[str, Any], repeats: int) -> tuple[dict[str, Any], list[str]]:
    """Each case's times, and the names of the cases whose content differs from the oracle."""
    results: dict[str, Any] = {}
    wrong: list[str] = []
    with engine.connect() as connection:
        total = queries.course_page(connection, ACCOUNT, limit=1)[1]
        last_offset = (math.ceil(total / PER_PAGE) - 1) * PER_PAGE
        searched = queries.course_page(connection, ACCOUNT, search=SEARCH, limit=1)[1]
        search_offset = min(2, math.ceil(searched / PER_PAGE) - 1) * PER_PAGE  # page 3, or the last if fewer
        pages = {
            "first page by name": ("name", "asc", None, 0),
            "first page by completion_rate desc": ("completion_rate", "desc", None, 0),
            "last page by name": ("name", "asc", None, last_offset),
            f"search {SEARCH!r}, by name": ("name", "asc", SEARCH, 0),
            f"search {SEARCH!r}, page {search_offset // PER_PAGE + 1} by completion_rate desc":
                ("completion_rate", "desc", SEARCH, search_offset),
        }
        for name, (sort, order, search, offset) in pages.items():
            (rows, count), figures = timed(lambda s=sort, o=order, q=search, f=offset: queries.course_page(
                connection, ACCOUNT, search=q, sort=s, order=o, offset=f, limit=PER_PAGE), repeats)
            matches = same_rows(rows, oracle_page(connection, sort, order, search, offset))
            results[name] = {**figures, "rows": len(rows), "matching": count, "same_as_oracle": matches}
            if not matches or not rows:
                wrong.append(name)

        def summary() -> tuple[queries.Totals, Any]:
            return queries.account_totals(connection, ACCOUNT), queries.account_newest_event(connection, ACCOUNT)

        (totals, _), figures = timed(summary, repeats)
        expected = connection.execute(text(
            "SELECT COUNT(DISTINCT c.id), COUNT(p.user_id) FILTER (WHERE p.progress_error IS NULL), "
            "COUNT(p.user_id) FILTER (WHERE p.progress_error IS NULL AND p.is_completed) FROM courses c "
            "LEFT JOIN course_progress p ON p.course_id = c.id WHERE c.account_id = :account "
            "AND c.workflow_state IS DISTINCT FROM 'deleted'"), {"account": ACCOUNT}).one()
        matches = (totals.courses, totals.students, totals.completed) == tuple(expected)
        results["progress_summary"] = {**figures, "courses": totals.courses, "students": totals.students,
                                       "same_as_oracle": matches}
        if not matches:
            wrong.append("progress_summary")

        course = loaded["trend_course"]

        def trend() -> queries.Trend:
            found = queries.trend(connection, course)
            queries.stalled(connection, course)
            return found

        found, figures = timed(trend, repeats)
        wanted = oracle_trend(connection, course, found.start, found.end)
        matches = [(d.day, d.students, d.completed) for d in found.days] == wanted and bool(wanted)
        results["trend of one course"] = {**figures, "course": course, "days": len(found.days), "same_as_oracle": matches}
        if not matches:
            wrong.append("trend of one course")
    return results, wrong


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "dashboard",
        parents=[common],
        help="time the dashboard's data queries for an account of 10,000 courses (Postgres scratch database)",
        description="Load --courses courses in one account (default 10,000) and --other-courses in another, with "
        "their students' progress and history, then print the median and worst time of the queries behind the "
        "dashboard's endpoints (course pages sorted, searched and last; the account's totals; one course's "
        "trend), each checked against a plain SQL oracle (exit status 1 when one differs). It writes and empties "
        "the tracker's tables, so the database must be named by --database-url (never DATABASE_URL) and hold no "
        "row in them.",
    )
    command.add_argument("--courses", type=positive_int, default=10_000, help="courses of the account (default 10000)")
    command.add_argument("--other-courses", type=positive_int, default=1000, help="courses of another account (default 1000)")
    command.add_argument("--students", type=positive_int, default=30, help="at most this many students a course (default 30)")
    command.add_argument("--trend-events", type=positive_int, default=40,
                         help="events per student of the trend's course, 3 days apart (default 40)")
    command.add_argument("--repeats", type=positive_int, default=9, help="timed runs of each query (default 9)")
    command.add_argument("--json", action="store_true", help="print the figures as JSON")
    command.set_defaults(handler=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.cli import PROG, emptied_after, scratch_database

    engine = make_engine(settings.database_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        raise CommandError(f"{PROG} dashboard needs a Postgres --database-url (a scratch database: it empties the tables)",
                           exit_code=2)
    engine.dispose()
    engine = scratch_database(settings, f"{PROG} dashboard")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with emptied_after(engine):
        say(f"loading {args.courses:,} courses in account {ACCOUNT} and {args.other_courses:,} in account {OTHER}")
        loaded = load(engine, args.courses, args.other_courses, args.students, args.trend_events, say)
        say("timing the dashboard queries")
        results, wrong = measure(engine, loaded, args.repeats)
    if args.json:
        print(json.dumps({"load": loaded, "queries": results}, indent=2))
    else:
        print(f"account {ACCOUNT}: {loaded['courses']:,} courses; {loaded['progress_rows']:,} progress rows, "
              f"{loaded['history_rows']:,} history rows in all; loaded in {loaded['seconds']} s")
        for name, result in results.items():
            verdict = "same as the oracle" if result["same_as_oracle"] else "DIFFERS from the oracle"
            print(f"{name:48} median {result['median_ms']:8.2f} ms   worst {result['max_ms']:8.2f} ms   {verdict}")
    if wrong:
        raise CommandError(f"the dashboard's answers differ from the oracle for: {', '.join(wrong)}")
    return 0

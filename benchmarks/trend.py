"""Daily progress trends at scale (Postgres): the one-course trend query over 10,000,000 history rows.

The issue's bar: `SELECT * FROM course_progress_daily WHERE course_id = X
ORDER BY day` within 50 ms at 10,000,000 rows of `course_progress_history`.
The history is loaded as a term of a real institution looks: many courses
of 20-200 students, a few of 1,000-2,000; each student's events spread over
their part of a ~120-day term (some in bursts of several a day), a third of
them completed, a few completed and then reverted (a requirement added),
error bodies (teachers, courses not module based). Rows are written in time
order, as a live feed writes them, so one course's rows are scattered over
the heap. `course_progress_daily_changes` is then filled by
`consumer.store.daily.rebuild`, as after a bulk load.

Queries are timed as a BI tool sends them: server defaults (JIT included),
literal ids, the client's wall time. With --compare-view a view created
here only is timed beside the migration's: the same figures computed
directly from the history when queried (the alternative the issue asks to
measure), checked to return the same rows.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, text

from consumer.store.daily import COLUMNS, SHARE_UNIT, contributions, day_of, rebuild

TERM_DAYS = 120
SPRING = datetime(2026, 1, 12, 8, tzinfo=timezone.utc)  # most courses start in this term
AUTUMN = datetime(2025, 8, 25, 8, tzinfo=timezone.utc)  # the others in the one before
CHUNK_DAYS = 7  # the history is written a week of event times at a time
DAILY = "course_progress_daily"
DIRECT = "bench_trend_direct"

Say = Callable[[str], None]


@dataclass(frozen=True)
class CoursePlan:
    id: int
    account_id: int
    students: int
    requirements: int
    starts: datetime


def plan_courses(accounts: int, seed: int) -> Iterator[CoursePlan]:
    """Courses without end (pure, seeded): sizes with a long tail, most in the spring term, a few starting later."""
    rng = random.Random(seed)
    course_id = 1000
    while True:
        course_id += 1
        roll = rng.random()
        if roll < 0.02:
            students = rng.randint(1000, 2000)
        elif roll < 0.10:
            students = rng.randint(200, 1000)
        else:
            students = round(20 * 10 ** rng.random())  # 20-200, log-uniform: most courses are small
        term = SPRING if rng.random() < 0.8 else AUTUMN
        starts = term + timedelta(days=rng.choice((0, 0, 0, 7, 14)), hours=rng.randint(0, 10))
        yield CoursePlan(course_id, rng.randint(1, accounts), students, rng.randint(5, 30), starts)


def _random(key: str, salt: int, modulo: int) -> str:
    """SQL for a pseudo-random integer in [0, modulo) from a bigint key: the same for the same key and seed."""
    return f"((hashint8extended(({key}) * 64 + {salt}, :seed) & 9223372036854775807) % {modulo})"


# One row per student of the planned courses: who they are, how many events they send, over which span.
# kind: 0 not a student (every event an error body), 1 completes, 2 completes then reverts, 3 still working.
STUDENTS_SQL = f"""
INSERT INTO bench_trend_students (course_id, user_id, kind, events, reach, requirements, first_at, slot_ms)
SELECT course_id, user_id, kind, events, reach, requirements,
       starts + {_random('k', 2, 14)} * interval '1 day',
       GREATEST(1, span_days * 86400000 / events)
FROM (
    SELECT p.course_id, p.requirements, p.starts, s.k,
           1 + ((p.course_id * 7919 + s.i * 104729) % 1048576) AS user_id,  -- students take several courses
           kind, events,
           LEAST(CASE WHEN kind IN (1, 2) THEN 20 + {_random('s.k', 3, 100)} ELSE 1 + {_random('s.k', 3, 119)} END,
                 {TERM_DAYS} - 14) AS span_days,
           {_random('s.k', 4, 95)} AS reach
    FROM bench_trend_plan p
    CROSS JOIN LATERAL generate_series(0, p.students - 1) AS g(i)
    CROSS JOIN LATERAL (SELECT p.course_id * 1000003 + g.i AS k, g.i AS i) AS s
    CROSS JOIN LATERAL (
        SELECT CASE WHEN r < 10 THEN 0 WHEN r < 360 THEN 1 WHEN r < 375 THEN 2 ELSE 3 END AS kind
        FROM (SELECT {_random('s.k', 0, 1000)} AS r) AS roll
    ) AS kinds
    CROSS JOIN LATERAL (
        SELECT CASE WHEN kind = 0 THEN 1 + {_random('s.k', 1, 3)} ELSE 2 + {_random('s.k', 1, '3 * p.requirements')} END
            AS events
    ) AS counts
) AS students
"""

# The events of every student whose slots meet [:low, :high), each at a random point of its slot (so unique
# per student and in order). Completers' last event is course_completed; reverters complete, then a requirement
# is added; one event in 200 is an error body. The history's own columns, normalised as the pipeline writes them.
HISTORY_SQL = f"""
INSERT INTO course_progress_history (course_id, user_id, event_time, event_name, requirement_count,
    requirement_completed_count, completed_at, is_completed, progress_error, event_rank)
SELECT course_id, user_id, event_time, event_name,
       CASE WHEN error IS NULL THEN required END,
       CASE WHEN error IS NULL THEN done END,
       CASE WHEN error IS NULL AND event_name = 'course_completed' THEN event_time END,
       event_name = 'course_completed', error, rank
FROM (
    SELECT s.course_id, s.user_id, e.event_time,
           CASE WHEN (s.kind = 1 AND n.k = s.events) OR (s.kind = 2 AND s.events >= 3 AND n.k = s.events - 1)
                THEN 'course_completed' ELSE 'course_progress' END AS event_name,
           CASE WHEN s.kind = 2 AND s.events >= 3 AND n.k = s.events THEN s.requirements + 1 ELSE s.requirements END
               AS required,
           CASE WHEN s.kind IN (1, 2) THEN LEAST(s.requirements, s.requirements * n.k / GREATEST(1, s.events - 1))
                ELSE s.requirements * s.reach * n.k / (100 * s.events) END AS done,
           CASE WHEN s.kind = 0 THEN 'not a student'
                WHEN {_random('n.key', 6, 200)} = 0 THEN 'not module based' END AS error,
           {_random('n.key', 7, 9007199254740991)} AS rank
    FROM bench_trend_students s
    CROSS JOIN LATERAL generate_series(
        GREATEST(1, (EXTRACT(EPOCH FROM (CAST(:low AS timestamptz) - s.first_at)) * 1000)::bigint / s.slot_ms + 1),
        LEAST(s.events, (EXTRACT(EPOCH FROM (CAST(:high AS timestamptz) - s.first_at)) * 1000)::bigint / s.slot_ms + 1)
    ) AS n0(k)
    CROSS JOIN LATERAL (SELECT n0.k AS k, (s.course_id * 1000003 + s.user_id) * 64 + n0.k AS key) AS n
    CROSS JOIN LATERAL (
        SELECT s.first_at + ((n.k - 1) * s.slot_ms + {_random('n.key', 5, 's.slot_ms')}) * interval '1 millisecond'
            AS event_time
    ) AS e
    WHERE s.first_at < :high AND s.first_at + s.events * s.slot_ms * interval '1 millisecond' > :low
) AS events
WHERE event_time >= :low AND event_time < :high
ORDER BY event_time
"""


@dataclass
class Loaded:
    history_rows: int
    courses: int
    students: int
    seconds: float


def load(engine: Engine, history_rows: int, accounts: int, seed: int, say: Say) -> Loaded:
    """Empty the history tables and courses, then load `history_rows` rows exactly (and the courses, with accounts)."""
    if engine.dialect.name != "postgresql":
        raise ValueError("the trend benchmark needs Postgres (it loads rows with generate_series)")
    started = time.perf_counter()
    with engine.connect() as connection:
        connection.execute(text("TRUNCATE courses, course_progress_history, course_progress_daily_changes"))
        connection.execute(text(
            "CREATE TEMPORARY TABLE bench_trend_plan (course_id bigint PRIMARY KEY, account_id bigint, students int, "
            "requirements int, starts timestamptz)"))
        connection.execute(text(
            "CREATE TEMPORARY TABLE bench_trend_students (course_id bigint, user_id bigint, kind int, events int, "
            "reach int, requirements int, first_at timestamptz, slot_ms bigint)"))
        courses = plan_courses(accounts, seed)
        planned = 0
        while True:  # plan courses until their students send at least history_rows events
            batch, expected = [], 0.0
            while planned + expected < history_rows * 1.02 or not batch:
                course = next(courses)
                batch.append(course)
                expected += course.students * (1.5 * course.requirements + 1.5)  # the generator's mean
            connection.execute(text("DELETE FROM bench_trend_plan"))
            connection.execute(
                text("INSERT INTO bench_trend_plan VALUES (:id, :account_id, :students, :requirements, :starts)"),
                [vars(c) for c in batch])
            connection.execute(text(STUDENTS_SQL), {"seed": seed})
            connection.execute(text(
                "INSERT INTO courses (id, account_id, name, sis_source_id, workflow_state) "
                "SELECT course_id, account_id, 'Course ' || course_id, 'SIS-' || course_id, 'available' "
                "FROM bench_trend_plan"))
            planned = connection.execute(text("SELECT COALESCE(SUM(events), 0) FROM bench_trend_students")).scalar_one()
            if planned >= history_rows:
                break
        _trim(connection, history_rows)
        connection.commit()
        students, courses_loaded = connection.execute(text(
            "SELECT COUNT(*), COUNT(DISTINCT course_id) FROM bench_trend_students")).one()
        say(f"planned {courses_loaded:,} courses, {students:,} students; writing the history in time order")
        low, last = connection.execute(text(
            "SELECT MIN(first_at), MAX(first_at + events * slot_ms * interval '1 millisecond') FROM bench_trend_students"
        )).one()
        written = 0
        while low <= last:
            high = low + timedelta(days=CHUNK_DAYS)
            written += connection.execute(text(HISTORY_SQL), {"low": low, "high": high, "seed": seed}).rowcount
            connection.commit()
            say(f"  {written:,} history rows (events before {high:%Y-%m-%d}), {time.perf_counter() - started:.0f} s")
            low = high
        connection.execute(text("DROP TABLE bench_trend_plan, bench_trend_students"))
        connection.commit()
    if written != history_rows:
        raise RuntimeError(f"the generator wrote {written:,} history rows, not the {history_rows:,} asked for")
    return Loaded(written, courses_loaded, students, time.perf_counter() - started)


def _trim(connection: Connection, history_rows: int) -> None:
    """Keep exactly `history_rows` events: students in order until the total is reached, the last one cut short."""
    connection.execute(text("""
        WITH running AS (
            SELECT ctid, SUM(events) OVER (ORDER BY course_id, user_id) - events AS before FROM bench_trend_students
        )
        UPDATE bench_trend_students s SET events = LEAST(s.events, :rows - r.before)
        FROM running r WHERE s.ctid = r.ctid AND r.before < :rows
    """), {"rows": history_rows})
    connection.execute(text("""
        DELETE FROM bench_trend_students s USING (
            SELECT ctid, SUM(events) OVER (ORDER BY course_id, user_id) - events AS before FROM bench_trend_students
        ) r WHERE s.ctid = r.ctid AND r.before >= :rows
    """), {"rows": history_rows})
    connection.execute(text(
        "DELETE FROM courses c WHERE NOT EXISTS (SELECT 1 FROM bench_trend_students s WHERE s.course_id = c.id)"))


def rebuild_daily(engine: Engine) -> tuple[int, float]:
    """`consumer.store.daily.rebuild` over the whole history: (rows of daily changes, seconds)."""
    started = time.perf_counter()
    with engine.begin() as connection:
        rows = rebuild(connection)
    return rows, time.perf_counter() - started


def vacuum_analyze(engine: Engine) -> float:
    started = time.perf_counter()
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


# --- the view compared with the migration's (created in the scratch database only) ---

def _figures(totals: str) -> str:
    """The view's columns from `totals` (course_id, day, next_day and the running sums), the days between two
    changes filled as migration 0008 fills them (unnest(array_fill(...)): estimated at 10 rows per change)."""
    return f"""
SELECT t.course_id, t.day + CAST(g.n AS integer) - 1 AS day, CAST(t.students AS bigint) AS students,
       CAST(t.completed AS bigint) AS completed,
       CASE WHEN t.share_count = 0 THEN NULL
            ELSE CAST(t.share_sum AS double precision) / (CAST(t.share_count AS double precision) * {SHARE_UNIT}) END
       AS mean_share_done
FROM ({totals}) AS t
CROSS JOIN LATERAL unnest(array_fill(0, ARRAY[COALESCE(t.next_day - t.day, 1)])) WITH ORDINALITY AS g(zero, n)
"""


def _running(changes: str) -> str:
    sums = ", ".join(f"SUM({name}) OVER w AS {name}" for name in COLUMNS)
    return (f"SELECT course_id, day, LEAD(day) OVER w AS next_day, {sums} FROM {changes} "
            "WINDOW w AS (PARTITION BY course_id ORDER BY day)")


def direct_view_sql() -> str:
    """The same figures computed from the history when queried: no changes table (the alternative measured).

    Each student's last event of each day (LEAD over their events) adds its state on its day and takes it
    away on the day of their next event: the steps `daily.rebuild` stores, summed per course and day here.
    """
    values = contributions()
    listed = ", ".join(f"{values[name]} AS {name}" for name in COLUMNS)
    signed = ", ".join(f"SUM(v.sign * e.{name}) AS {name}" for name in COLUMNS)
    steps = f"""(
    SELECT e.course_id, v.day, {signed}
    FROM (
        SELECT * FROM (
            SELECT course_id, {day_of('postgresql', 'event_time')} AS day, {listed},
                   LEAD({day_of('postgresql', 'event_time')}) OVER (PARTITION BY course_id, user_id ORDER BY event_time)
                   AS next_day
            FROM course_progress_history
        ) AS marked
        WHERE next_day IS NULL OR next_day > day
    ) AS e
    CROSS JOIN LATERAL (VALUES (e.day, 1), (e.next_day, -1)) AS v(day, sign)
    WHERE v.day IS NOT NULL
    GROUP BY e.course_id, v.day
) AS changes"""
    return f"CREATE VIEW {DIRECT} AS {_figures(_running(steps))}"


def create_compared_view(engine: Engine) -> None:
    with engine.begin() as connection:
        drop_compared_view(connection)
        connection.execute(text(direct_view_sql()))


def drop_compared_view(connection: Connection) -> None:
    connection.execute(text(f"DROP VIEW IF EXISTS {DIRECT}"))


# --- what is timed ---

@dataclass(frozen=True)
class Subjects:
    """The courses and account the queries are about: picked from the loaded history, not from the plan."""
    typical: dict[str, Any]  # the course with the median number of history rows
    largest: dict[str, Any]
    window: tuple[date, date]  # four weeks inside the typical course's days
    account: dict[str, Any]  # the account with the median number of history rows
    weeks: tuple[date, int]  # the account's first Sunday, and how many Sundays it has up to a week after its last day


def pick_subjects(engine: Engine) -> Subjects:
    with engine.connect() as connection:
        courses = connection.execute(text(f"""
            SELECT h.course_id, COUNT(*) AS history_rows, COUNT(DISTINCT h.user_id) AS students,
                   MAX({day_of('postgresql', 'h.event_time')}) - MIN({day_of('postgresql', 'h.event_time')}) + 1 AS days,
                   MIN({day_of('postgresql', 'h.event_time')}) AS first_day
            FROM course_progress_history h GROUP BY h.course_id ORDER BY history_rows, h.course_id
        """)).mappings().all()
        accounts = connection.execute(text(f"""
            SELECT c.account_id, COUNT(DISTINCT c.id) AS courses, COUNT(*) AS history_rows,
                   MIN({day_of('postgresql', 'h.event_time')}) AS first_day,
                   MAX({day_of('postgresql', 'h.event_time')}) AS last_day
            FROM course_progress_history h JOIN courses c ON c.id = h.course_id
            GROUP BY c.account_id ORDER BY history_rows, c.account_id
        """)).mappings().all()
    typical = dict(courses[len(courses) // 2])
    first = typical.pop("first_day") + timedelta(days=min(28, typical["days"] // 2))
    largest = dict(courses[-1])
    largest.pop("first_day")
    account = dict(accounts[len(accounts) // 2])
    first_day, last_day = account.pop("first_day"), account.pop("last_day")
    sunday = first_day + timedelta(days=6 - first_day.weekday())
    return Subjects(typical, largest, (first, first + timedelta(days=27)), account,
                    (sunday, (last_day - sunday).days // 7 + 2))


def queries(subjects: Subjects) -> dict[str, str]:
    """The trend queries a BI tool sends, `{view}` standing for the view measured."""
    typical, largest, account = subjects.typical["course_id"], subjects.largest["course_id"], subjects.account["account_id"]
    first, last = subjects.window
    sunday, weeks = subjects.weeks
    per_day = "SELECT d.day, SUM(d.students) AS students, SUM(d.completed) AS completed FROM {view} d"
    in_account = f"course_id = ANY (ARRAY(SELECT id FROM courses WHERE account_id = {account}))"
    return {
        "one course, typical": f"SELECT * FROM {{view}} WHERE course_id = {typical} ORDER BY day",
        "one course, largest": f"SELECT * FROM {{view}} WHERE course_id = {largest} ORDER BY day",
        "one course, 4 weeks": f"SELECT * FROM {{view}} WHERE course_id = {typical} "
                               f"AND day BETWEEN '{first}' AND '{last}' ORDER BY day",
        "one account, join": f"{per_day} JOIN courses c ON c.id = d.course_id WHERE c.account_id = {account} "
                             "GROUP BY d.day ORDER BY d.day",
        "one account, ANY": f"{per_day} WHERE d.{in_account} GROUP BY d.day ORDER BY d.day",
        # every Sunday, each course's figures that day (after its last day: its last day's), summed
        "one account, weekly": "SELECT w.week_ending, SUM(d.students) AS students, SUM(d.completed) AS completed "
                               f"FROM (SELECT DATE '{sunday}' + 7 * i AS week_ending "
                               f"FROM generate_series(0, {weeks - 1}) AS i) AS w "
                               "JOIN (SELECT course_id, day, students, completed, "
                               "MAX(day) OVER (PARTITION BY course_id) AS last_day "
                               f"FROM {{view}} WHERE {in_account}) AS d ON d.day = LEAST(w.week_ending, d.last_day) "
                               "GROUP BY w.week_ending ORDER BY w.week_ending",
    }


def server_settings(engine: Engine) -> dict[str, str]:
    names = ("server_version", "jit", "jit_above_cost", "jit_inline_above_cost", "jit_optimize_above_cost",
             "shared_buffers", "work_mem", "random_page_cost")
    with engine.connect() as connection:
        return {name: connection.execute(text(f"SHOW {name}")).scalar_one() for name in names}


def time_query(connection: Connection, sql: str, repeats: int) -> dict[str, Any]:
    """Median and worst client-side ms after a warm-up (server defaults: JIT as the server decides), the plan's
    estimated cost, whether JIT compiled it (and for how long), and then the median with jit=off."""
    started = time.perf_counter()
    result = connection.execute(text(sql)).all()
    warm_up = time.perf_counter() - started
    times = [_timed(connection, sql) for _ in range(repeats if warm_up < 2 else 1)]  # a slow query: once more only
    [[explained]] = connection.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).all()
    explained = explained if isinstance(explained, list) else json.loads(explained)
    jit = explained[0].get("JIT")
    plan = [row[0] for row in connection.execute(text(f"EXPLAIN (ANALYZE, TIMING OFF) {sql}"))]
    figures: dict[str, Any] = {
        "sql": sql, "rows": len(result), "median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2),
        "cost": explained[0]["Plan"]["Total Cost"],
        "jit": {"functions": jit["Functions"], "ms": round(jit["Timing"]["Total"], 1)} if jit else None,
        "plan": plan,
    }
    if jit:
        connection.execute(text("SET jit = off"))
        off = [_timed(connection, sql) for _ in range(repeats if warm_up < 2 else 1)]
        connection.execute(text("RESET jit"))
        figures["median_ms_jit_off"] = round(statistics.median(off), 2)
    return figures


def _timed(connection: Connection, sql: str) -> float:
    started = time.perf_counter()
    connection.execute(text(sql)).all()
    return (time.perf_counter() - started) * 1000


def time_views(engine: Engine, subjects: Subjects, views: list[str], repeats: int,
               say: Say) -> tuple[dict[str, dict[str, Any]], dict[str, bool]]:
    """Each query's figures on each view; with several views, whether they all returned the same rows."""
    results: dict[str, dict[str, Any]] = {}
    same_rows: dict[str, bool] = {}
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        for name, template in queries(subjects).items():
            results[name], answers = {}, []
            for view in views:
                say(f"timing {name!r} on {view}")
                sql = template.format(view=view)
                results[name][view] = time_query(connection, sql, repeats)
                answers.append(connection.execute(text(sql)).all())
            if len(views) > 1:
                same_rows[name] = all(answer == answers[0] for answer in answers)
    return results, same_rows

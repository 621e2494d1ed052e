"""Progress over time: the history of progress events, daily figures per course, and stalled students.

- `course_progress_history`: one row per distinct course_progress /
  course_completed event (key: course, student, event time), written by the
  pipeline with the current tables (HISTORY=false turns it off).
- `course_progress_daily_changes`: per course and UTC day, how much the
  daily figures change that day (kept with the history: consumer/store/daily.py),
  and the view `course_progress_daily` adding them up into one row per course
  per day, from its first day with a progress event to its last, no gaps.
- `calendar_days`: every day from 1900 to 2199, for gap-free joins (SQLite's
  daily view fills its gaps with it; on SQLite the view shows no day outside it).
- `bi_settings` (one row) and the view `stalled_students`: students not
  completed whose newest progress event is older than `stalled_after_days`.

The history starts from what the tracker holds: each student's current row
is an event it applied, so it becomes that student's first history row (and
the daily figures are computed from them). Replaying archived events fills
in the older ones; the history is the set of events, so that is safe.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
SHARE_UNIT = 1_000_000_000
COLUMNS = ("students", "completed", "share_sum", "share_count")


def contributions(prefix: str) -> dict[str, str]:
    """Each daily column's value for one progress row (the rule of consumer/store/daily.py, kept here as it was)."""
    counted = f"{prefix}progress_error IS NULL"
    shared = f"{counted} AND {prefix}requirement_count > 0 AND {prefix}requirement_completed_count IS NOT NULL"
    done = (f"CASE WHEN {prefix}requirement_completed_count < {prefix}requirement_count "
            f"THEN {prefix}requirement_completed_count ELSE {prefix}requirement_count END")
    return {
        "students": f"CASE WHEN {counted} THEN 1 ELSE 0 END",
        "completed": f"CASE WHEN {counted} AND {prefix}is_completed THEN 1 ELSE 0 END",
        "share_sum": f"CASE WHEN {shared} THEN CAST({done} AS BIGINT) * {SHARE_UNIT} / {prefix}requirement_count ELSE 0 END",
        "share_count": f"CASE WHEN {shared} THEN 1 ELSE 0 END",
    }


def day_of(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"CAST(timezone('UTC', {column}) AS date)"
    return f"substr({column}, 1, 10)"


def _daily_view(dialect: str) -> str:
    # Days between two days with changes are filled by adding whole numbers to a date: a series of
    # dates would be a series of timestamptz, stepping through local midnights of the session's time
    # zone (one that skips midnight, as Sao Paulo did, would lose or repeat a day). The numbers come
    # from unnest(array_fill(...)), which the planner guesses at 10 rows, not generate_series (1,000):
    # on most days the truth is 1, and guesses 1,000 times too high made JIT compile queries for a
    # few ms of work (an account's weekly chart: 231 ms -> 14 ms at 10,000,000 history rows).
    sums = ", ".join(f"SUM({name}) OVER w AS {name}" for name in COLUMNS)
    totals = (f"SELECT course_id, day, LEAD(day) OVER w AS next_day, {sums} "
              "FROM course_progress_daily_changes WINDOW w AS (PARTITION BY course_id ORDER BY day)")
    if dialect == "postgresql":
        return f"""
CREATE VIEW course_progress_daily AS
SELECT t.course_id, t.day + CAST(g.n AS integer) - 1 AS day, CAST(t.students AS bigint) AS students,
       CAST(t.completed AS bigint) AS completed,
       CASE WHEN t.share_count = 0 THEN NULL
            ELSE CAST(t.share_sum AS double precision) / (CAST(t.share_count AS double precision) * {SHARE_UNIT}) END
       AS mean_share_done
FROM ({totals}) AS t
CROSS JOIN LATERAL unnest(array_fill(0, ARRAY[COALESCE(t.next_day - t.day, 1)])) WITH ORDINALITY AS g(zero, n)
"""
    # SQLite has no generate_series and pushes no WHERE into a recursive CTE (a recursive fill built
    # every course's days for every query: 1.5 s at 400,000 changes); it does push `course_id = ?`
    # into the window subquery, and the calendar join is an index range per row (under 1 ms).
    return f"""
CREATE VIEW course_progress_daily AS
SELECT t.course_id, c.day, t.students, t.completed,
       CASE WHEN t.share_count = 0 THEN NULL ELSE CAST(t.share_sum AS REAL) / (t.share_count * {SHARE_UNIT}.0) END
       AS mean_share_done
FROM ({totals}) AS t
JOIN calendar_days c ON c.day >= t.day AND c.day < COALESCE(t.next_day, date(t.day, '+1 day'))
"""


FIRST_CALENDAR_DAY, LAST_CALENDAR_DAY = "1900-01-01", "2199-12-31"


def _fill_calendar(dialect: str) -> str:
    if dialect == "postgresql":  # whole numbers added to a date: no time zone involved
        return (f"INSERT INTO calendar_days (day) SELECT DATE '{FIRST_CALENDAR_DAY}' + n "
                f"FROM generate_series(0, DATE '{LAST_CALENDAR_DAY}' - DATE '{FIRST_CALENDAR_DAY}') AS n")
    return (f"WITH RECURSIVE d(day) AS (SELECT '{FIRST_CALENDAR_DAY}' UNION ALL "
            f"SELECT date(day, '+1 day') FROM d WHERE day < '{LAST_CALENDAR_DAY}') INSERT INTO calendar_days (day) SELECT day FROM d")


STALLED_AFTER_DAYS = 14  # until bi_settings says otherwise (also when its row was deleted)


def _stalled_view(dialect: str) -> str:
    threshold = f"COALESCE(s.stalled_after_days, {STALLED_AFTER_DAYS})"
    if dialect == "postgresql":
        days_inactive = "CAST(FLOOR(EXTRACT(EPOCH FROM (now() - p.last_event_time)) / 86400) AS integer)"
        stale = f"p.last_event_time < now() - {threshold} * interval '24 hours'"  # not '1 day': that follows the session's clock changes
    else:
        days_inactive = "CAST(julianday('now') - julianday(p.last_event_time) AS INTEGER)"
        stale = f"julianday(p.last_event_time) < julianday('now') - {threshold}"
    return f"""
CREATE VIEW stalled_students AS
SELECT p.course_id, c.name AS course_name, c.account_id, c.sis_source_id AS course_sis_source_id,
       c.workflow_state AS course_workflow_state, p.user_id, u.name AS user_name,
       p.requirement_count, p.requirement_completed_count, p.last_event_time AS last_activity,
       {days_inactive} AS days_inactive, {threshold} AS stalled_after_days
FROM course_progress p
LEFT JOIN bi_settings s ON s.id = 1
LEFT JOIN courses c ON c.id = p.course_id
LEFT JOIN users u ON u.id = p.user_id
WHERE NOT p.is_completed AND p.progress_error IS NULL AND {stale}
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "course_progress_history",
        sa.Column("course_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_time", TIME, primary_key=True),
        sa.Column("event_name", sa.Text, nullable=False),
        sa.Column("requirement_count", sa.Integer),
        sa.Column("requirement_completed_count", sa.Integer),
        sa.Column("completed_at", TIME),
        sa.Column("is_completed", sa.Boolean, nullable=False, comment="true exactly for course_completed"),
        sa.Column("progress_error", sa.Text, comment="NULL unless the event carried an error body"),
        sa.Column("event_rank", sa.BigInteger, nullable=False, comment="orders two different events with the same key"),
        comment="one row per distinct course_progress / course_completed event, in any arrival order",
    )
    op.create_table(
        "course_progress_daily_changes",
        sa.Column("course_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("day", sa.Date, primary_key=True, comment="a UTC calendar day with at least one progress event of the course"),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0",
                    comment="shares done, in billionths" if name == "share_sum" else None) for name in COLUMNS),
    )
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date, primary_key=True),
        comment="every day from 1900-01-01 to 2199-12-31: gap-free joins for charts (and SQLite's daily view)",
        sqlite_with_rowid=False,
    )
    op.execute(_fill_calendar(dialect))
    op.create_table(
        "bi_settings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("stalled_after_days", sa.Integer, nullable=False, server_default="14"),
        sa.CheckConstraint("id = 1", name="ck_bi_settings_one_row"),
        sa.CheckConstraint("stalled_after_days >= 0", name="ck_bi_settings_stalled_after_days"),
    )
    op.execute(f"INSERT INTO bi_settings (id, stalled_after_days) VALUES (1, {STALLED_AFTER_DAYS})")
    if dialect == "postgresql":
        # Writers wait until the history and its daily figures are in place: a progress row committed
        # between the backfill's snapshot and the end of this migration would be in neither.
        op.execute("LOCK TABLE course_progress IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO course_progress_history (course_id, user_id, event_time, event_name, requirement_count, "
        "requirement_completed_count, completed_at, is_completed, progress_error, event_rank) "
        "SELECT course_id, user_id, last_event_time, last_event_name, requirement_count, requirement_completed_count, "
        "completed_at, is_completed, progress_error, CASE WHEN is_completed THEN 1152921504606846976 ELSE 0 END "
        "FROM course_progress"
    )
    # The backfilled rows keep only the completion bit of the tie rule (2**60): the current rows' ranks are
    # digests of the whole event, the history's of what the row holds. Any replayed event with the same key
    # then replaces the row by the history's own rule, so an upgraded database ends with the same history
    # as a fresh one. One history row per student so far: each adds its own state on its own day.
    values = contributions("p.")
    day = day_of(dialect, "p.last_event_time")
    sums = ", ".join(f"SUM({values[name]})" for name in COLUMNS)
    op.execute(
        f"INSERT INTO course_progress_daily_changes (course_id, day, {', '.join(COLUMNS)}) "
        f"SELECT p.course_id, {day}, {sums} FROM course_progress p GROUP BY p.course_id, {day}"
    )
    op.execute(_daily_view(dialect))
    op.execute(_stalled_view(dialect))


def downgrade() -> None:
    op.execute("DROP VIEW stalled_students")
    op.execute("DROP VIEW course_progress_daily")
    op.drop_table("bi_settings")
    op.drop_table("calendar_days")
    op.drop_table("course_progress_daily_changes")
    op.drop_table("course_progress_history")

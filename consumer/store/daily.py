"""Keep `course_progress_daily_changes` in step with `course_progress_history`, in the writing transaction.

What the daily figures are (docs/bi.md, "Progress over time"): for each
course and UTC day, every student's newest progress event before the next
midnight (their state at the end of that day) counts towards `students`,
`completed` and the mean share done. A student's state only changes on days
they have events, so each student contributes a step function: on each day
`d` with events, their end-of-day state `S(d)` replaces the state of their
previous day with events. The table holds, per course and day, the sum of
those steps (`S(d) - S(previous day)`, each contribution column apart); the
view `course_progress_daily` adds them up day by day and fills the days
between. Every day on which the course has an event has a row (a step of
zero included), so the view knows each course's first and last day.

A batch of new history rows only changes the steps of the students it
touches, and only from the first day it touches for each (`from_day`). So
for those students the steps from `from_day` on are computed from their
rows before the batch is written and subtracted, and computed again after
and added, reading each student's rows from the last one before `from_day`.
Most students are "appending": everything stored about them is older than
`from_day`, so they have no step there to subtract, and (on Postgres, where
the batch sits in a staging table) their steps after the write are known
before it, from their newest stored event (one index probe) and the batch's
own rows: one statement adds them, and lists the others for the
subtract-write-add.
The result depends only on the set of history rows, so any arrival order,
batching and duplication gives the same table (the property tests check it
against a plain Python reading of the definition).

Shares are counted in billionths (integers), so sums are exact and order
cannot change them; the mean is exact to 1e-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timezone
from functools import cache

from sqlalchemy import BigInteger, Boolean, Column, Connection, Date, MetaData, Table, text

from consumer.store.types import UTCDateTime

SHARE_UNIT = 1_000_000_000  # a share done of 1 is this many units

# The students a batch touches, and where their steps must be recomputed from.
touched = Table(
    "daily_touched",
    MetaData(),
    Column("course_id", BigInteger),
    Column("user_id", BigInteger),
    Column("from_day", Date),
    Column("from_time", UTCDateTime),  # midnight (UTC) starting from_day
    Column("newest_time", UTCDateTime),  # the student's newest stored event, before the batch
    Column("prior_time", UTCDateTime),  # the student's newest stored event before from_time
    Column("inserting", Boolean),  # some stored event is at or after from_time
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)


def day_of(dialect: str, column: str) -> str:
    """SQL for the UTC calendar day of a stored time, whatever the session's time zone."""
    if dialect == "postgresql":
        return f"CAST(timezone('UTC', {column}) AS date)"
    return f"substr({column}, 1, 10)"  # SQLite keeps UTC times as 'YYYY-MM-DD HH:MM:SS.ffffff'


def contributions(prefix: str = "") -> dict[str, str]:
    """Each column's value for one history row (columns read through `prefix`, e.g. "h.")."""
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


COLUMNS = ("students", "completed", "share_sum", "share_count")


def _listed(prefix: str) -> str:
    values = contributions(prefix)
    return ", ".join(f"{values[name]} AS {name}" for name in COLUMNS)


def _add_steps(sign: int, timeline: str, ctes: str = "") -> str:
    """Add `sign` times the steps of `timeline` into the daily changes.

    `timeline` selects (course_id, user_id, event_time, day, from_day, and the
    contribution columns) for each touched student: their events from the
    last one before from_day on. A student's last event of a day sets their
    state from that day (a step up, if the day is from from_day on) to the
    next day they have an event (a step down). `ctes` are common table
    expressions the timeline reads (each followed by a comma).
    """
    plus = ", ".join(f"e.{name}" for name in COLUMNS)
    minus = ", ".join(f"-e.{name}" for name in COLUMNS)
    sums = ", ".join(f"{sign} * SUM({name})" for name in COLUMNS)
    added = ", ".join(f"{name} = course_progress_daily_changes.{name} + excluded.{name}" for name in COLUMNS)
    return f"""
WITH {ctes} ends AS (
    SELECT * FROM (
        SELECT course_id, day, from_day, {", ".join(COLUMNS)},
               LEAD(day) OVER (PARTITION BY course_id, user_id ORDER BY event_time) AS next_day
        FROM ({timeline}) AS timeline
    ) AS marked
    WHERE next_day IS NULL OR next_day > day
)
INSERT INTO course_progress_daily_changes (course_id, day, {", ".join(COLUMNS)})
SELECT course_id, day, {sums} FROM (
    SELECT e.course_id, e.day, {plus} FROM ends e WHERE e.day >= e.from_day
    UNION ALL
    SELECT e.course_id, e.next_day, {minus} FROM ends e WHERE e.next_day IS NOT NULL
) AS steps
WHERE true
GROUP BY course_id, day
ORDER BY course_id, day
ON CONFLICT (course_id, day) DO UPDATE SET {added}
"""


def _stored_rows(dialect: str, only_inserting: bool) -> str:
    """The touched students' events in the history (as it is now), from their last one before from_day."""
    which = "AND t.inserting" if only_inserting else ""
    if dialect == "postgresql":
        # LATERAL, kept apart by OFFSET 0 (else it is flattened into a join): an index range scan per
        # student, whatever the planner guesses of the (unanalysed) temporary table; a hash or merge
        # join would read the whole history every batch.
        return f"""SELECT h.course_id, h.user_id, h.event_time, {day_of(dialect, "h.event_time")} AS day,
                   t.from_day AS from_day, {_listed("h.")}
            FROM daily_touched t CROSS JOIN LATERAL (
                SELECT * FROM course_progress_history i
                WHERE i.course_id = t.course_id AND i.user_id = t.user_id AND i.event_time >= COALESCE(t.prior_time, t.from_time)
                OFFSET 0
            ) AS h
            WHERE true {which}"""
    # CROSS JOIN: SQLite keeps the left table as the outer loop, so the (unanalysed) touched students
    # drive index probes of the history; a plain JOIN was planned as a scan of the whole history.
    return f"""SELECT h.course_id, h.user_id, h.event_time, {day_of(dialect, "h.event_time")} AS day,
               CAST(t.from_day AS TEXT) AS from_day, {_listed("h.")}
        FROM daily_touched t
        CROSS JOIN course_progress_history h
        WHERE h.course_id = t.course_id AND h.user_id = t.user_id
          AND h.event_time >= COALESCE(t.prior_time, t.from_time) {which}"""


@cache
def _steps_sql(dialect: str, sign: int, only_inserting: bool) -> str:
    """Add `sign` times the touched students' steps from their from_day on, computed from the history as it is now."""
    return _add_steps(sign, _stored_rows(dialect, only_inserting))


# Postgres, with the batch's rows in the staging table (store/upsert.py), before they are merged: one
# statement finds each touched student's first day in the batch and their newest stored event (one
# index probe). An appending student (everything stored is older than their first day) has no step
# from that day on yet, and their steps after the write come from that newest event and the batch's
# rows (all newer than anything stored, so all are inserted): they are added here. The others
# ("inserting") are listed in daily_touched, with the event before their first day, for the
# subtract-write-add of `write_history`.
_FIRST_DAYS = f"""
firsts AS (
    SELECT course_id, user_id, from_day, CAST(from_day AS timestamp) AT TIME ZONE 'UTC' AS from_time
    FROM (SELECT course_id, user_id, MIN({day_of("postgresql", "event_time")}) AS from_day
          FROM staging_historyrow GROUP BY course_id, user_id) AS batch_days
),
probed AS (
    SELECT f.course_id, f.user_id, f.from_day, f.from_time, n.event_time AS newest_time,
           COALESCE(n.event_time >= f.from_time, false) AS inserting, n.day AS newest_day,
           {", ".join(f"n.{name} AS newest_{name}" for name in COLUMNS)}
    FROM firsts f
    LEFT JOIN LATERAL (
        SELECT h.event_time, {day_of("postgresql", "h.event_time")} AS day, {_listed("h.")}
        FROM course_progress_history h
        WHERE h.course_id = f.course_id AND h.user_id = f.user_id
        ORDER BY h.event_time DESC LIMIT 1
    ) AS n ON true
),
listed AS (
    INSERT INTO daily_touched (course_id, user_id, from_day, from_time, newest_time, inserting, prior_time)
    SELECT p.course_id, p.user_id, p.from_day, p.from_time, p.newest_time, true, (
        SELECT MAX(h.event_time) FROM course_progress_history h
        WHERE h.course_id = p.course_id AND h.user_id = p.user_id AND h.event_time < p.from_time
    )
    FROM probed p WHERE p.inserting
    RETURNING 1
),
"""
_APPENDING_ROWS = f"""
SELECT p.course_id, p.user_id, p.newest_time AS event_time, p.newest_day AS day, p.from_day,
       {", ".join(f"p.newest_{name} AS {name}" for name in COLUMNS)}
FROM probed p WHERE NOT p.inserting AND p.newest_time IS NOT NULL
UNION ALL
SELECT s.course_id, s.user_id, s.event_time, {day_of("postgresql", "s.event_time")}, p.from_day, {_listed("s.")}
FROM probed p JOIN staging_historyrow s ON s.course_id = p.course_id AND s.user_id = p.user_id
WHERE NOT p.inserting
"""
_POSTGRES_APPENDING_STEPS = _add_steps(1, _APPENDING_ROWS, _FIRST_DAYS)

_FIND_NEWEST = """
UPDATE daily_touched SET newest_time = (
    SELECT MAX(h.event_time) FROM course_progress_history h
    WHERE h.course_id = daily_touched.course_id AND h.user_id = daily_touched.user_id
)
"""
# For most students every stored event is older than the batch's: their newest is the prior event.
_FIND_PRIOR = """
UPDATE daily_touched SET
    inserting = (newest_time IS NOT NULL AND newest_time >= from_time),
    prior_time = CASE WHEN newest_time IS NULL OR newest_time < from_time THEN newest_time ELSE (
        SELECT MAX(h.event_time) FROM course_progress_history h
        WHERE h.course_id = daily_touched.course_id AND h.user_id = daily_touched.user_id
          AND h.event_time < daily_touched.from_time
    ) END
"""


def touched_students(history_rows: Sequence[tuple]) -> list[tuple]:
    """(course_id, user_id, from_day, from_time) for each student among the rows (pure)."""
    first: dict[tuple[int, int], datetime] = {}
    for row in history_rows:
        key = (row[0], row[1])
        when = row[2]
        current = first.get(key)
        if current is None or when < current:
            first[key] = when
    result = []
    for (course_id, user_id), when in sorted(first.items()):
        day = when.astimezone(timezone.utc).date()
        result.append((course_id, user_id, day, datetime.combine(day, time(0), tzinfo=timezone.utc)))
    return result


def ensure_touched_table(connection: Connection) -> None:
    """Create this session's `daily_touched` table if it does not exist (in the caller's transaction)."""
    from sqlalchemy.schema import CreateTable

    connection.execute(CreateTable(touched, if_not_exists=True))


def write_history(connection: Connection, history_rows: Sequence[tuple]) -> int:
    """Merge `history_rows` into course_progress_history and keep the daily changes in step; returns rows changed.

    Before the merge, the touched students' steps from their from_day on are
    taken away (for the few with stored events at or after it; the others
    have no step there yet). After it, they are computed again and added.
    """
    from consumer.events.progress import HistoryRow
    from consumer.store.upsert import stage_rows, upsert_rows

    if not history_rows:
        return 0
    if connection.dialect.name == "postgresql":
        stage_rows(connection, HistoryRow, history_rows)
        return merge_staged_history(connection)
    ensure_touched_table(connection)  # SQLite: temporary tables live per connection
    connection.execute(text("DELETE FROM daily_touched"))
    # Straight to the driver, in the text forms SQLAlchemy stores (Date, and UTCDateTime at midnight):
    # its per-row bind processing took as long as the rest of the daily figures' work.
    connection.exec_driver_sql(
        "INSERT INTO daily_touched (course_id, user_id, from_day, from_time) VALUES (?, ?, ?, ?)",
        [(c, u, d.isoformat(), f"{d.isoformat()} 00:00:00.000000") for c, u, d, _ in touched_students(history_rows)],
    )
    connection.execute(text(_FIND_NEWEST))
    connection.execute(text(_FIND_PRIOR))
    connection.execute(text(_steps_sql("sqlite", -1, True)))
    changed = upsert_rows(connection, HistoryRow, history_rows)
    connection.execute(text(_steps_sql("sqlite", 1, False)))
    connection.execute(text("DELETE FROM daily_touched"))
    return changed


def merge_staged_history(connection: Connection) -> int:
    """Postgres: `write_history` for the history rows already staged (`upsert.stage_rows`); returns rows changed."""
    from consumer.events.progress import HistoryRow
    from consumer.store.upsert import merge_staged

    connection.execute(text(_POSTGRES_APPENDING_STEPS))
    inserting = connection.execute(text("SELECT EXISTS (SELECT 1 FROM daily_touched)")).scalar_one()
    if inserting:
        connection.execute(text(_steps_sql("postgresql", -1, True)))
    changed = merge_staged(connection, HistoryRow)
    if inserting:
        connection.execute(text(_steps_sql("postgresql", 1, True)))
    return changed


@cache
def _rebuild_sql(dialect: str) -> str:
    """Every course's steps, computed from the whole history: every event's own day counts (from_day = day)."""
    day = day_of(dialect, "event_time")
    return _add_steps(1, f"SELECT course_id, user_id, event_time, {day} AS day, {day} AS from_day, {_listed('')} "
                         "FROM course_progress_history")


def rebuild(connection: Connection) -> int:
    """Compute `course_progress_daily_changes` again from the whole history, in the caller's transaction.

    For a history written by other means than the pipeline (a bulk load, a
    restore of the history table alone); the pipeline keeps the table in step
    by itself. Returns the number of rows written.
    """
    connection.execute(text("DELETE FROM course_progress_daily_changes"))
    connection.execute(text(_rebuild_sql(connection.dialect.name)))
    # Counted, not the statement's rowcount: Python's sqlite3 reports none for a statement starting with WITH.
    return connection.execute(text("SELECT COUNT(*) FROM course_progress_daily_changes")).scalar_one()

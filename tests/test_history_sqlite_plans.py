"""Review of issue 14 (demonstration, fails at the time of writing): on SQLite, work that should read a few rows reads
whole tables.

- The daily steps of every batch (consumer/store/daily.py `_stored_rows`, SQLite branch) join `daily_touched`
  with `course_progress_history` as `FROM daily_touched t JOIN course_progress_history h`: SQLite scans the whole
  history in key order (it saves the window's sort) and probes an automatic index on `t`. A batch of one event
  at 500,000 history rows: 93 ms, at 1,500,000: 243 ms (history off: 0.4 ms); `CROSS JOIN` (SQLite then keeps
  `t` outer) makes it 0.8 ms.
- The trend report at course level (consumer/reports/queries.py) filters the view with `course_id IN (SELECT ...)`,
  which SQLite does not push into the view's window: every course's days are summed (525 ms at 146,000
  changes for a one-course, one-week report; the same figures by `course_id = ?`: 2.5 ms).
"""

from __future__ import annotations

from sqlalchemy.dialects import sqlite

from consumer.reports.queries import Scope, course_progress_trend_query
from consumer.store.daily import _steps_sql, ensure_touched_table


def plan(connection, sql: str) -> list[str]:
    return [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()]


def test_the_daily_steps_probe_the_history_by_student_on_sqlite(sqlite_engine):
    with sqlite_engine.begin() as connection:
        ensure_touched_table(connection)
        for sign, only_inserting in ((-1, True), (1, False)):
            steps = plan(connection, _steps_sql("sqlite", sign, only_inserting))
            assert not any(line.startswith("SCAN h") for line in steps), steps  # fails: 'SCAN h USING INDEX ...'


def test_a_course_s_trend_report_reads_that_course_s_changes_on_sqlite(sqlite_engine):
    query = course_progress_trend_query(Scope(account_id=79, course_id=1200), {"start_at": "2023-06-01", "end_at": "2023-06-07"})
    sql = str(query.rows.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite_engine.connect() as connection:
        steps = plan(connection, sql)
    assert not any(line.startswith("SCAN course_progress_daily_changes") for line in steps), steps  # fails

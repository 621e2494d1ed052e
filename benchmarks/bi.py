"""Dashboard views and report jobs at scale (Postgres): query times, report throughput, abort latency.

The rows are written with one INSERT ... SELECT over generate_series, so the
triggers that keep the dashboard counters run as they do for the worker.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from consumer.reports import jobs
from consumer.reports.runner import ReportRunner

# Dashboard queries: the tiles a BI tool shows (docs/bi.md).
QUERIES: dict[str, str] = {
    "one course": "SELECT * FROM course_completion WHERE course_id = 1000",
    "one account": "SELECT * FROM account_completion WHERE account_id = 7",
    "all accounts": "SELECT * FROM account_completion ORDER BY account_id",
    "courses of one account": "SELECT * FROM course_completion WHERE account_id = 7 ORDER BY completion_rate",
    "distribution of one course": "SELECT * FROM progress_distribution WHERE course_id = 1000",
    "distribution, all courses": "SELECT bucket, SUM(students) FROM progress_distribution GROUP BY bucket",
    "freshness": "SELECT * FROM data_freshness",
}


def load(engine: Engine, progress_rows: int, courses: int, accounts: int) -> float:
    """Empty tables, then `courses` courses in `accounts` accounts with `progress_rows` rows; seconds taken."""
    if engine.dialect.name != "postgresql":
        raise ValueError("the bi benchmark needs Postgres (it loads rows with generate_series)")
    per_course = max(1, progress_rows // courses)
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE courses, course_progress, course_sections, users, reports, report_file_chunks"))
        connection.execute(text(
            "INSERT INTO courses (id, account_id, name, workflow_state) "
            "SELECT c, c % :accounts, 'Course ' || c, 'available' FROM generate_series(1, :courses) AS c"
        ), {"accounts": accounts, "courses": courses})
        connection.execute(text(
            "INSERT INTO course_progress (course_id, user_id, requirement_count, requirement_completed_count, "
            "is_completed, progress_error, last_event_name, last_event_time) "
            "SELECT 1 + (g - 1) / :per_course, g, 10, g % 11, g % 11 = 10, "
            "CASE WHEN g % 50 = 0 THEN 'not module based' END, 'course_progress', "
            "now() - (g % 86400) * interval '1 second' FROM generate_series(1, :rows) AS g"
        ), {"per_course": per_course, "rows": progress_rows})
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def time_queries(engine: Engine, repeats: int = 7) -> dict[str, dict[str, Any]]:
    """Median and worst milliseconds of each dashboard query (after one warm-up), and its plan."""
    results: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        for name, sql in QUERIES.items():
            connection.execute(text(sql)).all()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                connection.execute(text(sql)).all()
                times.append((time.perf_counter() - started) * 1000)
            plan = [row[0] for row in connection.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"))]
            results[name] = {"sql": sql, "median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2),
                             "plan": plan}
    return results


def _claimed_report(engine: Engine, account_id: int) -> jobs.Job:
    """An account-wide course_progress_csv job, queued and claimed as a runner would."""
    job = jobs.create(engine, report="course_progress_csv", account_id=account_id, course_id=None, token_id=0, parameters={})
    claimed = jobs.claim(engine)
    assert claimed is not None and claimed.id == job.id, "another job was queued in the scratch database"
    return claimed


def report_run(engine: Engine, account_id: int) -> dict[str, Any]:
    """One account-wide course_progress_csv run to completion in this process: lines/s and file size."""
    job = claimed = _claimed_report(engine, account_id)
    runner = ReportRunner(engine)
    started = time.perf_counter()
    runner.run(claimed)
    seconds = time.perf_counter() - started
    done = jobs.get(engine, job.id)
    assert done is not None and done.status == "complete", done
    return {"lines": done.current_line, "seconds": round(seconds, 3), "lines_per_second": round(done.current_line / seconds),
            "file_mb": round((done.file_size or 0) / 1e6, 1)}


def abort_latency(engine: Engine, account_id: int, after_lines: int) -> dict[str, Any]:
    """Seconds from an abort (the API's conditional UPDATE) to the runner giving the job up, once the
    report has written `after_lines` lines (pick a fraction of its length, so it is still running)."""
    job = claimed = _claimed_report(engine, account_id)
    runner = ReportRunner(engine)
    thread = threading.Thread(target=runner.run, args=(claimed,))
    thread.start()
    _wait(lambda: (jobs.get(engine, job.id) or claimed).current_line >= after_lines, 60)
    asked = time.perf_counter()
    jobs.stop(engine, job.id, "bench")
    thread.join(60)
    stopped = time.perf_counter() - asked
    final = jobs.get(engine, job.id)
    return {"stopped_after_s": round(stopped, 3), "status": final.status if final else None,
            "lines_written_before_abort": final.current_line if final else None}


def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the report did not start writing")
        time.sleep(0.01)

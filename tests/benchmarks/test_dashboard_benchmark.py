"""benchmarks/dashboard.py: `python -m benchmarks dashboard` times the dashboard's queries at a small size, checks
them against its oracle (and fails when they differ), refuses SQLite, and leaves the database empty."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import text

from benchmarks.cli import main as benchmarks_main
from consumer.dashboard import queries
from consumer.store.engine import make_engine

SMALL = ("--courses", "300", "--other-courses", "30", "--students", "12", "--trend-events", "10", "--repeats", "2")


@pytest.fixture
def run(capsys, monkeypatch):
    """`python -m benchmarks ARGS` in this process: (exit status, stdout, stderr); the logging setup put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def command(*argv: str) -> tuple[int, str, str]:
        try:
            code = benchmarks_main(list(argv))
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    yield command
    root.handlers[:], root.level = saved[0], saved[1]


def test_dashboard_times_each_query_and_agrees_with_its_oracle(run, database) -> None:
    code, out, err = run("dashboard", "--json", "--database-url", database, *SMALL)
    assert code == 0, err[-3000:]
    figures = json.loads(out)
    assert figures["load"]["courses"] == 300 and figures["load"]["progress_rows"] > 300
    cases = figures["queries"]
    assert {"first page by name", "first page by completion_rate desc", "last page by name", "progress_summary",
            "trend of one course"} <= set(cases) and len(cases) == 7
    assert all(case["same_as_oracle"] and 0 < case["median_ms"] <= case["max_ms"] for case in cases.values())
    assert cases["first page by name"]["rows"] == 50 and cases["trend of one course"]["days"] > 10
    engine = make_engine(database)
    with engine.connect() as connection:  # emptied after
        assert connection.execute(text("SELECT COUNT(*) FROM courses")).scalar_one() == 0
        assert connection.execute(text("SELECT COUNT(*) FROM course_progress_stats WHERE students > 0")).scalar_one() == 0
    engine.dispose()


def test_dashboard_exits_1_when_a_page_differs_from_the_oracle(run, database, monkeypatch) -> None:
    real = queries.course_page

    def off_by_one(connection, account_id, **kwargs):
        rows, total = real(connection, account_id, **kwargs)
        if kwargs.get("sort") == "completion_rate":
            rows = rows[1:] + rows[:1]  # the same courses, one out of place
        return rows, total

    monkeypatch.setattr(queries, "course_page", off_by_one)
    code, out, err = run("dashboard", "--database-url", database, *SMALL)
    assert code == 1 and "DIFFERS from the oracle" in out
    assert err.strip().splitlines()[-1].startswith("error: the dashboard's answers differ from the oracle for: first page by "
                                                   "completion_rate desc")


def test_dashboard_refuses_sqlite(run, sqlite_url) -> None:
    code, _, err = run("dashboard", "--database-url", sqlite_url)
    assert code == 2 and "needs a Postgres" in err and err.count("\n") == 1

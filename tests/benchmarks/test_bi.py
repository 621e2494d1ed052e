"""benchmarks/bi.py: `python -m benchmarks bi` times every dashboard query, a report and an abort, on Postgres only."""

from __future__ import annotations


def test_bi_times_every_dashboard_query_and_a_report(figures, new_pg_database):
    from benchmarks.bi import QUERIES

    result = figures("bi", "--progress-rows", "100000", "--courses", "100", "--accounts", "5", "--database-url", new_pg_database())
    assert set(result["queries"]) == set(QUERIES)
    assert all(q["median_ms"] > 0 and q["plan"] for q in result["queries"].values())
    assert result["report"]["lines"] == 20 * 1000  # account 2: courses 2, 7, ..., 97, 1000 students each
    # aborted once a fifth was written; the runner may get a chunk or two further before it sees the abort
    assert result["abort"]["status"] == "aborted" and 4000 <= result["abort"]["lines_written_before_abort"] < 20000


def test_bi_refuses_sqlite(run, sqlite_url):
    code, _, err = run("bi", "--database-url", sqlite_url)
    assert code == 2 and "needs a Postgres" in err and err.count("\n") == 1

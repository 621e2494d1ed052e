"""The benchmark command runs end to end and reports every figure (no thresholds: figures are for people)."""

import json
import os
import subprocess
import sys

from tests.helpers import AWS_TEST_ENV


def bench(*args: str, env: dict | None = None) -> dict:
    result = subprocess.run([sys.executable, "-m", "consumer", "bench", "--json", *args], capture_output=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return json.loads(result.stdout)


def test_bench_on_sqlite_reports_each_measurement(sqlite_url):
    figures = bench("--events", "600", "--naive-events", "100", "--database-url", sqlite_url)
    assert figures["replay"]["events"] == 600 and figures["replay"]["events_per_second"] > 0
    assert figures["replay"]["peak_rss_mb"] > 0
    assert figures["naive"]["events"] == 100
    assert figures["reference"]["events"] == 600
    assert figures["ratios"]["replay_vs_naive"] > 0


def test_bench_with_sqs_compares_the_worker_with_a_bare_loop(make_queue, sqs_endpoint, pg_database):
    queue_url, _ = make_queue()
    env = {**os.environ, **AWS_TEST_ENV}
    figures = bench(
        "--events", "400", "--naive-events", "20", "--sqs", "--sqs-events", "300", "--rate", "100", "--duration", "2",
        "--queue-url", queue_url, "--endpoint-url", sqs_endpoint, "--database-url", pg_database, env=env,
    )
    assert figures["worker"]["events"] == 300 and figures["bare_loop"]["events"] == 300
    assert figures["latency"]["committed"] == 200
    assert 0 < figures["latency"]["p99_seconds"] < 30
    assert figures["ratios"]["worker_vs_bare_loop"] > 0


def test_bench_bi_times_every_dashboard_query_and_a_report(new_pg_database):
    from consumer.bench.bi import QUERIES

    result = subprocess.run(
        [sys.executable, "-m", "consumer", "bench-bi", "--json", "--progress-rows", "100000", "--courses", "100",
         "--accounts", "5", "--database-url", new_pg_database()], capture_output=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    figures = json.loads(result.stdout)
    assert set(figures["queries"]) == set(QUERIES)
    assert all(q["median_ms"] > 0 and q["plan"] for q in figures["queries"].values())
    assert figures["report"]["lines"] == 20 * 1000  # account 2: courses 2, 7, ..., 97, 1000 students each
    # aborted once a fifth was written; the runner may get a chunk or two further before it sees the abort
    assert figures["abort"]["status"] == "aborted" and 4000 <= figures["abort"]["lines_written_before_abort"] < 20000


def test_bench_bi_refuses_sqlite(sqlite_url):
    result = subprocess.run([sys.executable, "-m", "consumer", "bench-bi", "--database-url", sqlite_url],
                            capture_output=True, timeout=120)
    assert result.returncode == 2 and b"needs a Postgres" in result.stderr

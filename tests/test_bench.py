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

"""benchmarks/run.py: `python -m benchmarks replay` runs end to end and reports every figure (no thresholds:
figures are for people). The figures here are small; CI prints the real ones (.ci/run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.tables import row_counts
from tests.helpers import AWS_TEST_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_benchmarks_from_the_repository_root_reports_each_measurement(sqlite_url):
    """The way CI runs it: a subprocess in the repository root, with consumer installed and benchmarks not."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    result = subprocess.run([sys.executable, "-m", "benchmarks", "replay", "--json", "--events", "300", "--naive-events", "50",
                             "--database-url", sqlite_url], capture_output=True, timeout=600, cwd=ROOT, env=environment)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    figures = json.loads(result.stdout)
    assert figures["replay"]["events"] == 300 and figures["replay"]["events_per_second"] > 0
    assert figures["replay"]["peak_rss_mb"] > 0
    assert figures["naive"]["events"] == 50
    assert figures["reference"]["events"] == 300
    assert figures["ratios"]["replay_vs_naive"] > 0
    assert "physical" not in figures and figures["ratios"]["replay_vs_physical"] is None  # a Postgres COPY reference
    assert "physical_history" not in figures and figures["ratios"]["physical_history_vs_physical"] is None
    # it leaves its scratch database as it found it (empty), so it can run there again
    assert row_counts(sqlite_url) == dict.fromkeys(row_counts(sqlite_url), 0)


def test_replay_runs_again_on_the_database_it_emptied(figures, sqlite_url):
    for events in (100, 50):
        assert figures("replay", "--events", str(events), "--naive-events", "10", "--database-url", sqlite_url)["replay"]["events"] == events
        assert set(row_counts(sqlite_url).values()) == {0}


def test_replay_with_sqs_compares_the_worker_with_a_bare_loop(figures, make_queue, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    result = figures(
        "replay", "--events", "200", "--naive-events", "10", "--sqs", "--sqs-events", "100", "--rate", "50", "--duration", "1",
        "--queue-url", queue_url, "--endpoint-url", sqs_endpoint, "--database-url", new_pg_database(), env=AWS_TEST_ENV,
    )
    assert result["worker"]["events"] == 100 and result["bare_loop"]["events"] == 100
    assert result["latency"]["committed"] == 50
    assert 0 < result["latency"]["p99_seconds"] < 30
    assert result["ratios"]["worker_vs_bare_loop"] > 0
    # The physical reference read every event and kept one row per (course, user) of the progress events.
    assert result["physical"]["events"] == 200 and 0 < result["physical"]["stored"] <= result["physical"]["progress_rows"]
    assert result["ratios"]["replay_vs_physical"] > 0
    # With the history: the same progress rows, and one history row per distinct progress event beside them.
    with_history = result["physical_history"]
    assert with_history["events"] == 200 and with_history["progress_rows"] == result["physical"]["progress_rows"]
    assert with_history["stored"] == result["physical"]["stored"] and with_history["history_rows"] == with_history["progress_rows"]
    assert result["ratios"]["physical_history_vs_physical"] > 0

"""The benchmark command runs end to end and reports every figure (no thresholds: figures are for people).

The benchmarks write and empty the tracker's tables, so they never touch data
that matters: their database comes from --database-url only (never
DATABASE_URL, which names production in a worker's environment), it must
hold no row in any of the tracker's tables, and `--sqs` purges only a queue
named by --queue-url that holds no message.
"""

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from consumer.store.engine import make_engine
from consumer.store.tables import metadata
from consumer.tokens import create_token
from tests.factory import sample
from tests.helpers import AWS_TEST_ENV, apply_events

SECRET = "s3cret-pw"


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
    # it leaves its scratch database as it found it (empty), so it can run there again
    assert row_counts(sqlite_url) == dict.fromkeys(row_counts(sqlite_url), 0)
    assert bench("--events", "100", "--naive-events", "10", "--database-url", sqlite_url)["replay"]["events"] == 100


def test_bench_with_sqs_compares_the_worker_with_a_bare_loop(make_queue, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    env = {**os.environ, **AWS_TEST_ENV}
    figures = bench(
        "--events", "400", "--naive-events", "20", "--sqs", "--sqs-events", "300", "--rate", "100", "--duration", "2",
        "--queue-url", queue_url, "--endpoint-url", sqs_endpoint, "--database-url", new_pg_database(), env=env,
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


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQS_QUEUE_URL")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "consumer", *args], capture_output=True, text=True, timeout=300, env=environment)


def row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one() for t in metadata.sorted_tables}
    finally:
        engine.dispose()


def with_password(url: str) -> str:
    """The same database, with a password in the URL (the test server trusts local connections): it must never be printed."""
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


@pytest.fixture
def database_with_rows(database):
    """A migrated Postgres database holding what a worker wrote (a course, a student's progress) and an API token."""
    engine = make_engine(database)
    apply_events(engine, [sample("course_completed")])
    create_token(engine, [79], "production dashboards")
    engine.dispose()
    before = row_counts(database)
    assert before["courses"] and before["api_tokens"]
    return database, before


@pytest.mark.parametrize("command", [["bench", "--events", "100", "--naive-events", "10"], ["bench-bi", "--progress-rows", "1000"]])
def test_a_benchmark_never_takes_its_database_from_database_url(command, database_with_rows):
    database, before = database_with_rows
    result = run(*command, env={"DATABASE_URL": with_password(database)})
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "--database-url" in result.stderr and "DATABASE_URL" in result.stderr
    assert SECRET not in result.stderr
    assert row_counts(database) == before


@pytest.mark.parametrize("command", [["bench", "--events", "100", "--naive-events", "10"], ["bench-bi", "--progress-rows", "1000"]])
def test_a_benchmark_refuses_a_database_holding_rows(command, database_with_rows):
    database, before = database_with_rows
    result = run(*command, "--database-url", with_password(database))
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip()
    assert len(result.stderr.splitlines()) == 1 and line.startswith("error: refusing to run")
    assert "table " in line and make_url(database).database in line and "***" in line
    assert SECRET not in line
    assert row_counts(database) == before


def test_any_of_the_trackers_tables_counts(database):
    """Rows only in the quarantine: still not a scratch database."""
    engine = make_engine(database)
    apply_events(engine, [b"{not json"])
    engine.dispose()
    result = run("bench", "--events", "100", "--database-url", database)
    assert result.returncode == 2 and "rejected_events" in result.stderr
    assert row_counts(database)["rejected_events"] == 1


def test_a_benchmark_refuses_a_sqlite_database_holding_rows(sqlite_engine, sqlite_url):
    create_token(sqlite_engine, [79])
    result = run("bench", "--events", "100", "--database-url", sqlite_url)
    assert result.returncode == 2 and "api_tokens" in result.stderr
    assert row_counts(sqlite_url)["api_tokens"] == 1


def test_bench_sqs_never_purges_the_queue_of_sqs_queue_url(make_queue, sqs_client, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    result = run("bench", "--events", "100", "--sqs", "--database-url", new_pg_database(),
                 env={**AWS_TEST_ENV, "SQS_QUEUE_URL": queue_url, "AWS_ENDPOINT_URL_SQS": sqs_endpoint})
    assert result.returncode == 2 and "--queue-url" in result.stderr, result.stderr[-3000:]


def test_bench_sqs_refuses_a_queue_holding_messages(make_queue, sqs_client, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    sqs_client.send_message(QueueUrl=queue_url, MessageBody="a message that matters")
    result = run("bench", "--events", "100", "--sqs", "--queue-url", queue_url, "--database-url", new_pg_database(),
                 env={**AWS_TEST_ENV, "AWS_ENDPOINT_URL_SQS": sqs_endpoint})
    assert result.returncode == 2 and queue_url in result.stderr, result.stderr[-3000:]
    received = sqs_client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in received] == ["a message that matters"]

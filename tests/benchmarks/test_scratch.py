"""benchmarks/scratch.py: a benchmark writes and empties the tracker's tables, so it runs only on a database
holding no row in any of them, and `replay --sqs` purges only an empty queue."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from consumer.store.engine import make_engine
from consumer.tokens import create_token
from tests.benchmarks.tables import SECRET, row_counts, with_password
from tests.helpers import AWS_TEST_ENV, apply_events


@pytest.mark.parametrize("command", [["replay", "--events", "100", "--naive-events", "10"], ["bi", "--progress-rows", "1000"]])
def test_a_benchmark_refuses_a_database_holding_rows(run, command, database_with_rows):
    database, before = database_with_rows
    code, _, stderr = run(*command, "--database-url", with_password(database))
    assert code == 2, stderr[-3000:]
    line = stderr.strip()
    assert len(stderr.splitlines()) == 1 and line.startswith("error: refusing to run")
    assert "table " in line and make_url(database).database in line and "***" in line
    assert SECRET not in line
    assert row_counts(database) == before


def test_any_of_the_trackers_tables_counts(run, database):
    """Rows only in the quarantine: still not a scratch database."""
    engine = make_engine(database)
    apply_events(engine, [b"{not json"])
    engine.dispose()
    code, _, stderr = run("replay", "--events", "100", "--database-url", database)
    assert code == 2 and "rejected_events" in stderr
    assert row_counts(database)["rejected_events"] == 1


def test_a_benchmark_refuses_a_sqlite_database_holding_rows(run, sqlite_engine, sqlite_url):
    create_token(sqlite_engine, [79])
    code, _, stderr = run("replay", "--events", "100", "--database-url", sqlite_url)
    assert code == 2 and "api_tokens" in stderr
    assert row_counts(sqlite_url)["api_tokens"] == 1


def test_replay_sqs_refuses_a_queue_holding_messages(run, make_queue, sqs_client, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    sqs_client.send_message(QueueUrl=queue_url, MessageBody="a message that matters")
    code, _, stderr = run("replay", "--events", "100", "--sqs", "--queue-url", queue_url, "--database-url", new_pg_database(),
                          env={**AWS_TEST_ENV, "AWS_ENDPOINT_URL_SQS": sqs_endpoint})
    assert code == 2 and queue_url in stderr, stderr[-3000:]
    received = sqs_client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in received] == ["a message that matters"]

"""The worker as it runs in production: `canvas-progress run` processes, a real SQS endpoint (ministack), real Postgres.

Only what needs real processes and SQS itself is here: the adapter against
the SQS API, kill -9, several workers on one queue, signals and the grace
period's hard exit, the dead-letter redrive. Everything else the worker does
is tested in-process, on the stub queue (the other modules of this folder).
Each scenario compares the worker's tables with what replaying the same
events from files produces, and waits on conditions, never for fixed times.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from consumer.replay import replay
from consumer.store.engine import make_engine
from consumer.store.tables import rejected_events
from consumer.synthetic import generate
from tests.factory import SAMPLE_EVENTS, encode, progress_event
from tests.helpers import FAST, cli, dump_tables, environment, on_queue, progress_rows, start_worker, wait_until


def events_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / f"events-{count}.ndjson"
    path.write_bytes(b"\n".join(generate(count, seed=11, courses=20, students=300)) + b"\n")
    return path


@pytest.fixture
def expected(new_pg_database):
    """Tables that replaying `paths` from files produces."""

    def tables_for(*paths: Path) -> dict:
        from consumer.store.migrate import upgrade

        engine = make_engine(new_pg_database())
        upgrade(engine)
        replay([str(p) for p in paths], engine, batch_size=500)
        tables = dump_tables(engine)
        engine.dispose()
        return tables

    return tables_for


def invisible(client, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessagesNotVisible"]
    return int(client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"][names[0]])


def test_burst_with_duplicates_reordering_and_bad_inputs_matches_replay(make_queue, sqs_client, sqs_endpoint, database,
                                                                        expected, tmp_path, sample_expectations):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    generated = events_file(tmp_path, 1000)
    sent = cli("send", str(SAMPLE_EVENTS), str(generated), "--queue-url", queue_url, "--json", env=env)
    assert sent.returncode == 1, sent.stderr  # the sample's line that is not UTF-8 cannot travel by SQS
    e = sample_expectations
    assert (json.loads(sent.stdout)["sent"], json.loads(sent.stdout)["failed"]) == (1000 + e.sendable, e.read - e.sendable)
    sqs_client.send_message(  # an untracked event_name attribute: ignored without reading the body
        QueueUrl=queue_url, MessageBody="not even JSON",
        MessageAttributes={"event_name": {"DataType": "String", "StringValue": "asset_accessed"}},
    )
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", *FAST, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    totals = json.loads(run.stdout)
    # Rejected: the sample's bad events that SQS can carry; the untracked message would be one more had its attribute
    # not been read.
    assert (totals["read"], totals["rejected"], totals["not_committed"]) == (1000 + e.sendable + 1, e.rejected_sendable, 0)
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(SAMPLE_EVENTS, generated)
    with make_engine(database).connect() as connection:
        rejected = connection.execute(select(rejected_events.c.source, rejected_events.c.receive_count)).all()
    assert len(rejected) == e.rejected_sendable and all(count == 1 and ":" not in source for source, count in rejected)  # SQS message ids


def test_dead_letter_redrive_while_the_database_stays_down_and_burst_exits_1(make_queue, sqs_client, sqs_endpoint,
                                                                             new_pg_database):
    queue_url, dlq_url = make_queue(visibility_timeout=1, max_receive_count=2)
    for n in range(20):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode())
    database = new_pg_database()
    env = environment(sqs_endpoint, database)
    assert cli("migrate", env=env).returncode == 0
    engine = make_engine(database)
    with engine.begin() as connection:  # up at start, then every write fails: the table is gone
        connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", "--no-migrate", *FAST, env=env, timeout=120)
    assert run.returncode == 1, run.stderr[-3000:]
    totals = json.loads(run.stdout)
    assert (totals["applied"], totals["not_committed"]) == (0, 20)
    assert on_queue(sqs_client, queue_url) == 0 and on_queue(sqs_client, dlq_url) == 20  # nothing lost: ready to redrive
    with engine.connect() as connection:
        assert connection.execute(select(rejected_events)).all() == []  # the database's fault, not the events'


def test_kill_9_mid_batch_then_restart_loses_nothing(make_queue, sqs_client, sqs_endpoint, database, expected, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=3)
    env = environment(sqs_endpoint, database)
    generated = events_file(tmp_path, 1000)
    assert cli("send", str(generated), "--queue-url", queue_url, env=env).returncode == 0
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--batch-size", "100", "--receivers", "1")
    wait_until(lambda: progress_rows(database) > 0, 60, "a first committed batch")
    worker.kill()
    worker.wait()
    assert on_queue(sqs_client, queue_url) > 0  # it really died mid-stream
    wait_until(lambda: invisible(sqs_client, queue_url) == 0, 30, "the killed worker's messages to be visible again")
    run = cli("run", "--queue-url", queue_url, "--burst", *FAST, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(generated)


def test_sigterm_mid_batch_exits_cleanly_and_releases_the_rest(make_queue, sqs_client, sqs_endpoint, database, expected, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=60)
    env = environment(sqs_endpoint, database)
    generated = events_file(tmp_path, 1000)
    assert cli("send", str(generated), "--queue-url", queue_url, env=env).returncode == 0
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--batch-size", "100", "--receivers", "1", "--shutdown-grace", "20")
    wait_until(lambda: progress_rows(database) > 0, 60, "a first committed batch")
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.wait(timeout=30) == 0
    assert time.monotonic() - started < 20
    # Released, not left invisible for the 60 s visibility timeout.
    wait_until(lambda: invisible(sqs_client, queue_url) == 0, 10, "no invisible messages")
    run = cli("run", "--queue-url", queue_url, "--burst", *FAST, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(generated)


def test_concurrent_workers_converge_to_one_workers_tables(make_queue, sqs_client, sqs_endpoint, database, expected, tmp_path):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    generated = events_file(tmp_path, 3000)
    assert cli("send", str(generated), str(SAMPLE_EVENTS), "--queue-url", queue_url, env=env).returncode == 1  # one line not UTF-8
    assert cli("migrate", env=env).returncode == 0
    processes = [start_worker(queue_url, env, tmp_path / f"worker{n}.log", "--burst", "--batch-size", "200") for n in range(3)]
    assert [p.wait(timeout=240) for p in processes] == [0] * 3
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(generated, SAMPLE_EVENTS)


def test_sigterm_past_the_grace_period_exits_1_and_deletes_nothing(make_queue, sqs_client, sqs_endpoint, database, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=30)
    env = environment(sqs_endpoint, database)
    for n in range(5):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode())
    blocker = create_engine(database).connect()
    blocker.execute(text("LOCK TABLE course_progress IN ACCESS EXCLUSIVE MODE"))  # the commit cannot finish
    watcher = create_engine(database)
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--receivers", "1", "--no-migrate", "--shutdown-grace", "3")

    def commit_waits_on_the_lock() -> bool:
        with watcher.connect() as connection:
            return connection.execute(text(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON l.database = d.oid "
                "WHERE NOT l.granted AND d.datname = current_database()"
            )).scalar_one() > 0

    try:
        wait_until(commit_waits_on_the_lock, 30, "the worker's commit to wait on the lock")
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert worker.wait(timeout=20) == 1
        assert time.monotonic() - started < 10
    finally:
        blocker.rollback()
        blocker.close()
        watcher.dispose()
    assert on_queue(sqs_client, queue_url) == 5  # nothing deleted: SQS redelivers them
    assert progress_rows(database) == 0
    assert "grace period of 3s exceeded" in (tmp_path / "worker.log").read_text()


def test_run_without_a_queue_says_how_to_set_one(sqs_endpoint, database):
    result = cli("run", env={k: v for k, v in environment(sqs_endpoint, database).items() if k != "SQS_QUEUE_URL"})
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "error: no queue: set SQS_QUEUE_URL or pass --queue-url"

"""The SQS worker against a real SQS HTTP endpoint (ministack) and real Postgres.

Each scenario compares the worker's tables with what replaying the same
events from files produces: whatever SQS and the faults do, the tables
must come out the same and nothing may be lost.
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
from consumer.store.tables import course_progress, rejected_events
from consumer.synthetic import generate
from tests.factory import SAMPLE_EVENTS, encode, poison_bodies, progress_event
from tests.helpers import FAST, cli, dump_tables, environment, on_queue, progress_rows, start_worker, wait_until


@pytest.fixture
def events_file(tmp_path) -> Path:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(generate(3000, seed=11, courses=20, students=300)) + b"\n")
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


def test_happy_path_with_duplicates_and_reordering_matches_replay(make_queue, sqs_client, sqs_endpoint, database, events_file, expected, tmp_path):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    sent = cli("send", str(SAMPLE_EVENTS), str(events_file), "--queue-url", queue_url, "--json", env=env)
    assert sent.returncode == 1, sent.stderr  # the sample's line that is not UTF-8 cannot travel by SQS
    assert (json.loads(sent.stdout)["sent"], json.loads(sent.stdout)["failed"]) == (3026, 1)
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", *FAST, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    totals = json.loads(run.stdout)
    assert totals["read"] == 3026 and totals["rejected"] == 4
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(SAMPLE_EVENTS, events_file)


def test_send_sets_canvas_message_attributes(make_queue, sqs_client, sqs_endpoint, database):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    assert cli("send", str(SAMPLE_EVENTS / "course_completed.json"), "--queue-url", queue_url, env=env).returncode == 0
    (message,) = sqs_client.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"event_name": "course_completed", "event_time": "2019-11-01T19:11:26.615Z"}


def test_untracked_event_name_attribute_is_ignored_without_parsing(make_queue, sqs_client, sqs_endpoint, database):
    queue_url, _ = make_queue()
    sqs_client.send_message(
        QueueUrl=queue_url, MessageBody="not even JSON", MessageAttributes={"event_name": {"DataType": "String", "StringValue": "asset_accessed"}}
    )
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", *FAST, env=environment(sqs_endpoint, database))
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == {"read": 1, "applied": 0, "stale_or_duplicate": 0, "ignored": 1, "rejected": 0, "not_committed": 0}
    assert on_queue(sqs_client, queue_url) == 0


def test_poison_messages_are_quarantined_with_message_id_and_deleted(make_queue, sqs_client, sqs_endpoint, database):
    queue_url, _ = make_queue()
    bodies = ['{"metadata": {', json.dumps({"metadata": {"event_name": "course_updated", "event_time": "never"}, "body": {}})]
    ids = [sqs_client.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"] for body in bodies]
    sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z")).decode())
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", *FAST, env=environment(sqs_endpoint, database))
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["rejected"] == 2
    with make_engine(database).connect() as connection:
        stored = connection.execute(select(rejected_events).order_by(rejected_events.c.id)).mappings().all()
        assert connection.execute(select(course_progress)).all()  # the good message was committed
    assert sorted(row["source"] for row in stored) == sorted(ids)
    assert {row["payload"] for row in stored} == {body.encode() for body in bodies}
    assert all(row["receive_count"] == 1 for row in stored)
    assert any(row["reason"].startswith("metadata.event_time:") for row in stored)
    assert on_queue(sqs_client, queue_url) == 0


def test_one_malformed_message_never_takes_its_batch_down(make_queue, sqs_client, sqs_endpoint, database):
    # 600 valid messages and the poison ones in the same batches: the valid ones commit,
    # the poison ones are quarantined, and everything leaves the queue.
    queue_url, dlq_url = make_queue(max_receive_count=2)
    poison = poison_bodies()
    valid = [encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode() for n in range(600)]
    bodies = valid[:300] + poison + valid[300:]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + 10])]
        assert not sqs_client.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", *FAST, env=environment(sqs_endpoint, database))
    assert run.returncode == 0, run.stderr[-3000:]
    totals = json.loads(run.stdout)
    assert (totals["read"], totals["applied"], totals["rejected"], totals["not_committed"]) == (603, 600, 3, 0)
    assert progress_rows(database) == 600
    with make_engine(database).connect() as connection:
        reasons = sorted(connection.execute(select(rejected_events.c.reason)).scalars())
    assert [reason.split(":")[0] for reason in reasons] == ["body.stuck_sis_fields", "body.user.name", "metadata.event_name"]
    assert on_queue(sqs_client, queue_url) == 0 and on_queue(sqs_client, dlq_url) == 0


def test_burst_exits_1_when_it_stops_holding_messages_it_could_not_commit(make_queue, sqs_client, sqs_endpoint, new_pg_database):
    queue_url, dlq_url = make_queue(visibility_timeout=1, max_receive_count=2)
    for n in range(5):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode())
    database = new_pg_database()
    env = environment(sqs_endpoint, database)
    assert cli("migrate", env=env).returncode == 0
    with make_engine(database).begin() as connection:  # up at start, then every write fails
        connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", "--no-migrate", *FAST, env=env, timeout=120)
    assert run.returncode == 1, run.stderr[-3000:]
    totals = json.loads(run.stdout)
    assert (totals["applied"], totals["not_committed"]) == (0, 5)
    assert on_queue(sqs_client, dlq_url) == 5  # still there to redrive: nothing was lost


def test_database_down_deletes_nothing(make_queue, sqs_client, sqs_endpoint, events_file, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=2)
    down = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    env = environment(sqs_endpoint, down)
    assert cli("send", str(events_file), "--queue-url", queue_url, env=env).returncode == 0
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--no-migrate")
    time.sleep(6)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0
    assert on_queue(sqs_client, queue_url) == 3000
    log = (tmp_path / "worker.log").read_text()
    assert "unavailable" in log


def test_dead_letter_redrive_while_the_database_stays_down(make_queue, sqs_client, sqs_endpoint, tmp_path, new_pg_database):
    queue_url, dlq_url = make_queue(visibility_timeout=1, max_receive_count=2)
    for n in range(20):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode())
    database = new_pg_database()
    env = environment(sqs_endpoint, database)
    assert cli("migrate", env=env).returncode == 0
    # The database is up at start and then refuses every write: the table is gone.
    engine = make_engine(database)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--no-migrate")
    try:
        wait_until(lambda: on_queue(sqs_client, dlq_url) == 20, 60, "all 20 messages in the dead-letter queue")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=40) == 0
    assert on_queue(sqs_client, queue_url) == 0
    with engine.connect() as connection:
        assert connection.execute(select(rejected_events)).all() == []  # the database's fault, not the events'


def test_kill_9_mid_batch_then_restart_loses_nothing(make_queue, sqs_client, sqs_endpoint, database, events_file, expected, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=3)
    env = environment(sqs_endpoint, database)
    assert cli("send", str(events_file), "--queue-url", queue_url, env=env).returncode == 0
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--batch-size", "100", "--receivers", "1")
    wait_until(lambda: progress_rows(database) > 0, 60, "a first committed batch")
    worker.kill()
    worker.wait()
    assert on_queue(sqs_client, queue_url) > 0  # it really died mid-stream
    time.sleep(3.5)  # let the killed worker's messages become visible again
    run = cli("run", "--queue-url", queue_url, "--burst", *FAST, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(events_file)


def test_sigterm_mid_batch_exits_cleanly_and_releases_the_rest(make_queue, sqs_client, sqs_endpoint, database, events_file, expected, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=60)
    env = environment(sqs_endpoint, database)
    assert cli("send", str(events_file), "--queue-url", queue_url, env=env).returncode == 0
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--batch-size", "100", "--receivers", "1", "--shutdown-grace", "20")
    wait_until(lambda: progress_rows(database) > 0, 60, "a first committed batch")
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.wait(timeout=30) == 0
    assert time.monotonic() - started < 20
    # Released, not left invisible for the 60 s visibility timeout.
    wait_until(lambda: int(sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == 0, 10, "no invisible messages")
    run = cli("run", "--queue-url", queue_url, "--burst", *FAST, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(events_file)


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_workers_converge_to_one_workers_tables(make_queue, sqs_client, sqs_endpoint, database, events_file, expected, tmp_path, workers):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    assert cli("send", str(events_file), str(SAMPLE_EVENTS), "--queue-url", queue_url, env=env).returncode == 1  # one line not UTF-8
    assert cli("migrate", env=env).returncode == 0
    processes = [start_worker(queue_url, env, tmp_path / f"worker{n}.log", "--burst", "--batch-size", "200") for n in range(workers)]
    assert [p.wait(timeout=240) for p in processes] == [0] * workers
    assert on_queue(sqs_client, queue_url) == 0
    assert dump_tables(make_engine(database)) == expected(events_file, SAMPLE_EVENTS)


def test_visibility_is_extended_while_a_batch_is_held_up(make_queue, sqs_client, sqs_endpoint, database, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=2)
    env = environment(sqs_endpoint, database)
    assert cli("migrate", env=env).returncode == 0
    for n in range(5):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode())
    blocker = create_engine(database).connect()
    blocker.execute(text("LOCK TABLE course_progress IN ACCESS EXCLUSIVE MODE"))  # the worker's commit waits
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--receivers", "1", "--no-migrate")
    try:
        wait_until(lambda: on_queue(sqs_client, queue_url) == 5 and
                   int(sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == 5,
                   20, "the worker to hold all 5 messages")
        deadline = time.monotonic() + 6  # three visibility timeouts
        while time.monotonic() < deadline:
            stolen = sqs_client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
            assert stolen == [], "a held message became visible: its visibility was not extended"
    finally:
        blocker.rollback()
        blocker.close()
    wait_until(lambda: on_queue(sqs_client, queue_url) == 0, 20, "the held batch to be committed and deleted")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert progress_rows(database) == 5
    assert "extended visibility" in (tmp_path / "worker.log").read_text()


def test_run_without_a_queue_says_how_to_set_one(sqs_endpoint, database):
    result = cli("run", env={k: v for k, v in environment(sqs_endpoint, database).items() if k != "SQS_QUEUE_URL"})
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "error: no queue: set SQS_QUEUE_URL or pass --queue-url"


def test_run_on_a_queue_that_does_not_exist_fails_with_one_line(sqs_endpoint, database):
    missing = f"{sqs_endpoint}/000000000000/no-such-queue"
    result = cli("run", "--queue-url", missing, "--burst", *FAST, env=environment(sqs_endpoint, database))
    assert result.returncode == 1
    last = result.stderr.decode().strip().splitlines()[-1]
    assert last == f"error: the queue {missing} does not exist (SQS_QUEUE_URL / --queue-url)"


def test_sigterm_past_the_grace_period_exits_1_and_deletes_nothing(make_queue, sqs_client, sqs_endpoint, database, tmp_path):
    queue_url, _ = make_queue(visibility_timeout=30)
    env = environment(sqs_endpoint, database)
    for n in range(5):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).decode())
    blocker = create_engine(database).connect()
    blocker.execute(text("LOCK TABLE course_progress IN ACCESS EXCLUSIVE MODE"))  # the commit cannot finish
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--receivers", "1", "--no-migrate", "--shutdown-grace", "3")
    try:
        wait_until(lambda: "extended visibility" in (tmp_path / "worker.log").read_text() or
                   int(sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == 5,
                   20, "the worker to hold all 5 messages")
        time.sleep(1)  # its commit is now waiting on the lock
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert worker.wait(timeout=20) == 1
        assert time.monotonic() - started < 10
    finally:
        blocker.rollback()
        blocker.close()
    assert on_queue(sqs_client, queue_url) == 5  # nothing deleted: SQS redelivers them
    assert progress_rows(database) == 0
    assert "grace period of 3s exceeded" in (tmp_path / "worker.log").read_text()

"""What goes wrong: a bad message, the database down, the queue failing. Nothing is lost, nothing wrongly deleted."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from consumer.sources.sqs import QueueError
from tests.factory import poison_bodies
from tests.helpers import refuse_user_666, rejected_rows
from tests.worker.harness import progress_bodies, progress_rows
from tests.worker.stub_queue import StubQueue


def test_bad_messages_are_quarantined_their_neighbours_committed_and_all_deleted(start, queue, hooks, engine):
    refuse_user_666(engine)
    good = queue.send_bodies(*progress_bodies(30))
    refused = queue.send_bodies(*progress_bodies(1, first_user=666))
    poison = queue.send_bodies(*[body.encode() for body in poison_bodies()])
    running = start(engine=engine, batch_size=100)
    running.run_until(lambda: len(queue) == 0, "every message deleted")
    assert hooks.batch_sizes() == [34]  # one batch: the bad ones did not take it down
    assert progress_rows(engine) == 30
    stored = rejected_rows(engine)
    assert sorted(row["source"] for row in stored) == sorted(refused + poison)  # the message ids
    assert all(row["receive_count"] == 1 for row in stored)
    (refusal,) = [row for row in stored if row["source"] in refused]
    assert refusal["reason"].startswith("the database refused this event:")
    assert json.loads(refusal["payload"])["body"]["user"]["id"] == "666"
    assert sorted(queue.deleted) == sorted(good + refused + poison)
    totals = running.stop()
    assert (totals.applied, totals.rejected) == (30, 4)


def test_database_down_deletes_nothing_backs_off_and_commits_once_it_is_back(start, clock, queue, hooks, engine):
    with engine.begin() as connection:  # every write fails; the database's fault, not the events'
        connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
    try:
        ids = queue.send_bodies(*progress_bodies(1))
        running = start(engine=engine)
        running.run_until(lambda: hooks.failed, "a failed batch")
        for n in range(1, 5):  # new messages keep coming: each failure makes the next attempt wait longer
            ids += queue.send_bodies(*progress_bodies(1, first_user=100 + n))
            running.run_until(lambda: len(hooks.failed) > n, "the next failed batch")  # noqa: B023
        assert queue.deleted == [] and queue.counts().in_flight == 5
        assert running.worker.not_committed == set(ids)
        failed_at = [at for at, _, _ in hooks.failed]
        for n in range(1, 5):  # back-off with jitter: at least half of 0.5 s, doubled each time
            assert failed_at[n] - failed_at[n - 1] >= 0.25 * 2 ** (n - 1), failed_at
        assert all(type(error).__name__ == "DatabaseUnavailable" for _, error, _ in hooks.failed)
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE course_progress_away RENAME TO course_progress"))
    running.run_until(lambda: len(queue) == 0, "the messages to come back and be committed")
    assert clock.now() >= failed_at[0] + 30  # they came back after their visibility timeout
    assert sorted(queue.deleted) == sorted(ids) and progress_rows(engine) == 5
    assert running.worker.not_committed == set() and rejected_rows(engine) == []
    assert running.stop().applied == 5


def test_a_burst_that_cannot_commit_ends_with_the_messages_in_the_dead_letter_queue(start, clock, hooks, sqlite_engine):
    with sqlite_engine.begin() as connection:
        connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
    queue = StubQueue(clock, visibility_timeout=5, max_receive_count=2)
    ids = queue.send_bodies(*progress_bodies(3))
    running = start(on=queue, burst=True)
    totals = running.finish()
    assert (totals.read, totals.applied) == (0, 0)
    assert running.worker.not_committed == set(ids)  # the CLI exits 1 for these
    assert len(queue) == 0 and queue.deleted == []
    assert sorted(m.message_id for m in queue.dead_letters.receive(0)) == sorted(ids)  # nothing lost: ready to redrive
    assert len(hooks.failed) == 2 and rejected_rows(sqlite_engine) == []


def test_receive_errors_back_off_and_recover(start, clock, queue, hooks):
    queue.receive_errors += [QueueError("connection reset")] * 3
    ids = queue.send_bodies(*progress_bodies(2))
    began = clock.now()
    running = start()
    running.run_until(lambda: len(queue) == 0, "the messages committed once receiving works again")
    errors_at = [at for at, _ in hooks.receive_errors]
    assert len(errors_at) == 3
    for n in range(1, 3):  # at least half of 1 s, doubled each time
        assert errors_at[n] - errors_at[n - 1] >= 0.5 * 2 ** (n - 1), errors_at
    assert hooks.committed[0].committed_at >= began + 0.5 + 1 + 2
    assert queue.deleted == ids
    running.stop()


def test_a_receive_that_fails_with_anything_but_a_queue_error_is_a_bug_that_stops_the_worker(start, queue, caplog):
    """Only QueueError (network, throttling, refused) is retried; a KeyError while reading a response is not 'ReceiveMessage failed'."""
    queue.receive_errors.append(KeyError("MessageId"))
    queue.send_bodies(*progress_bodies(2))
    running = start(burst=True)
    with pytest.raises(KeyError, match="MessageId"):
        running.finish()
    assert queue.deleted == []
    assert not any("ReceiveMessage failed" in record.getMessage() for record in caplog.records)

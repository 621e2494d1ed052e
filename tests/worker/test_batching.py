"""Batching: a batch commits when it is full, or when its oldest message has waited `flush_interval`; then it is deleted."""

from __future__ import annotations

import pytest

from tests.factory import encode, progress_event
from tests.worker.harness import progress_bodies, progress_rows


def test_full_batches_commit_at_once_and_the_rest_once_its_oldest_message_has_waited(start, clock, queue, hooks, sqlite_engine):
    queue.send_bodies(*progress_bodies(12))
    began = clock.now()
    running = start(batch_size=5, flush_interval=0.5)
    running.run_until(lambda: len(hooks.committed) == 2, "two full batches")
    assert clock.now() == began  # full batches do not wait
    assert hooks.batch_sizes() == [5, 5] and queue.deleted == hooks.committed_ids()
    running.run_until(lambda: len(hooks.committed) == 3, "the last, partial batch")
    assert clock.now() == began + 0.5
    assert hooks.batch_sizes() == [5, 5, 2]
    assert len(queue) == 0 and progress_rows(sqlite_engine) == 12
    assert running.stop().applied == 12


def test_a_batch_waits_for_its_oldest_message_not_its_newest(start, clock, queue, hooks):
    running = start(flush_interval=0.5)
    first = queue.send_bodies(*progress_bodies(1))
    running.settle()
    clock.advance(0.3)
    second = queue.send_bodies(*progress_bodies(1, first_user=100))
    running.settle()
    clock.advance(0.19)
    running.settle()
    assert hooks.committed == []
    clock.advance(0.01)  # the first message has waited 0.5 s
    running.run_until(lambda: hooks.committed, "the batch")
    assert hooks.committed_ids() == first + second
    (batch,) = hooks.committed
    assert batch.committed_at - batch.messages[0].received_at == pytest.approx(0.5)
    running.stop()


def test_a_burst_drains_the_queue_then_returns(start, queue, hooks, pg_engine):
    bodies = progress_bodies(25) + [encode(progress_event("2019-11-01T00:00:00Z", user_id="1"))]  # one duplicate
    queue.send_bodies(*bodies)
    queue.send_bodies(b"not even JSON", event_name="asset_accessed")  # untracked: ignored without parsing
    running = start(engine=pg_engine, batch_size=10, burst=True)
    totals = running.finish()
    assert (totals.read, totals.applied, totals.stale_or_duplicate, totals.ignored, totals.rejected) == (27, 25, 1, 1, 0)
    assert len(queue) == 0 and sorted(queue.deleted) == sorted(hooks.committed_ids())
    assert progress_rows(pg_engine) == 25 and running.worker.not_committed == set()

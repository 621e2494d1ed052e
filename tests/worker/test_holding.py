"""What the worker holds: extended while a commit takes long, released at stop, deleted only once committed."""

from __future__ import annotations

from consumer.pipeline import Pipeline
from tests.worker.harness import GatedPipeline, progress_bodies, progress_rows, wait_for


def test_stop_commits_the_batches_in_hand_and_releases_unstarted_messages(start, clock, queue, hooks, sqlite_engine):
    pipeline = GatedPipeline(sqlite_engine)
    queue.send_bodies(*progress_bodies(20))
    running = start(pipeline=pipeline, batch_size=5)
    # The first batch commits (held at the gate), the second waits for it, ten wait in the inbox.
    wait_for(lambda: pipeline.waiting.is_set() and len(running.worker.inbox) == 10, "two batches taken, ten waiting")
    running.worker.stop()
    pipeline.gate.set()
    totals = running.finish()
    assert totals.applied == 10 and progress_rows(sqlite_engine) == 10
    assert hooks.batch_sizes() == [5, 5] and sorted(queue.deleted) == sorted(hooks.committed_ids())
    assert queue.counts().visible == 10 and queue.counts().in_flight == 0  # released: visible again at once
    assert len(running.worker.in_flight) == 0


def test_messages_held_longer_than_half_the_visibility_timeout_are_extended_until_committed(start, clock, queue, hooks,
                                                                                            sqlite_engine):
    pipeline = GatedPipeline(sqlite_engine)
    ids = queue.send_bodies(*progress_bodies(5))
    running = start(pipeline=pipeline)
    running.run_until(pipeline.waiting.is_set, "the commit to wait at the gate", committer=False)
    held_since = clock.now()

    def redelivered() -> bool:
        return queue.counts().visible > 0 or any(count > 1 for count in queue.receive_counts().values())

    running.run_until(lambda: clock.now() >= held_since + 100 or redelivered(), "100 s of holding", committer=False)
    assert not redelivered(), "a held message came back: its visibility was not extended"
    assert queue.calls["change_visibility"] >= 6  # every 15 s (half the timeout)
    pipeline.gate.set()
    running.run_until(lambda: len(queue) == 0, "the held batch to be committed and deleted")
    assert queue.deleted == ids and hooks.batch_sizes() == [5]
    assert hooks.received == [5]  # received once: never redelivered
    running.stop()


def test_failed_extensions_are_reported(start, clock, queue, hooks, sqlite_engine):
    pipeline = GatedPipeline(sqlite_engine)
    queue.send_bodies(*progress_bodies(3))
    running = start(pipeline=pipeline)
    running.run_until(pipeline.waiting.is_set, "the commit to wait at the gate", committer=False)
    queue.failing_visibility = 3
    running.run_until(lambda: hooks.visibility_failures, "a failed extension", committer=False)
    assert hooks.visibility_failures == [3]
    pipeline.gate.set()
    running.stop()


def test_failed_deletes_are_reported_and_the_messages_come_back_as_duplicates(start, clock, queue, hooks, sqlite_engine):
    queue.failing_deletes = 2
    ids = queue.send_bodies(*progress_bodies(5))
    running = start(pipeline=Pipeline(sqlite_engine))
    running.run_until(lambda: hooks.committed, "the batch")
    assert hooks.delete_failures == [2] and len(queue) == 2
    running.run_until(lambda: len(queue) == 0, "the two to come back, be committed again and deleted")
    assert sorted(queue.deleted) == sorted(ids)
    totals = running.stop()
    assert (totals.read, totals.applied, totals.stale_or_duplicate) == (7, 5, 2)

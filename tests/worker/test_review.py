"""Review of the worker refactor: each test pins a bug found by reading the code (see the report)."""

from __future__ import annotations

import signal
import threading

import pytest

from consumer.committer import Committer
from consumer.pipeline import Pipeline
from consumer.worker import Worker
from tests.worker.conftest import OPTIONS
from tests.worker.harness import GatedPipeline, progress_bodies, wait_for
from tests.worker.test_committer import inputs


def test_busy_stays_true_while_the_next_commit_runs_after_the_previous_one_ended(sqlite_engine):
    # The first commit's on_done runs on the writer thread after its future is done: the caller may start the
    # next commit meanwhile. Ending the first must not mark the committer idle while the second one runs.
    in_callback, release_callback = threading.Event(), threading.Event()
    calls = 0

    def on_done() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            in_callback.set()
            assert release_callback.wait(10)

    pipeline = GatedPipeline(sqlite_engine)
    pipeline.gate.set()
    with Committer[str](pipeline, on_done=on_done) as committer:
        committer.start(committer.parse(inputs(1)), "first")
        wait_for(in_callback.is_set, "the first commit's on_done")
        assert committer.result().error is None
        pipeline.gate.clear()
        pipeline.waiting.clear()
        committer.start(committer.parse(inputs(1, first_user=10)), "second")
        release_callback.set()  # the first's on_done returns; the second then runs, waiting at the gate
        try:
            wait_for(pipeline.waiting.is_set, "the second commit to run")
            assert committer.busy, "a commit is running, yet the committer says it is not busy"
        finally:
            pipeline.gate.set()
        assert committer.result().error is None
    assert not committer.busy


def test_a_bug_in_a_receiver_stops_the_worker_and_propagates_instead_of_a_burst_ending_as_drained(start, queue, hooks,
                                                                                                  caplog):
    def broken(_count: int) -> None:
        raise ZeroDivisionError("a bug in a hook")

    hooks.on_received = broken  # type: ignore[method-assign]
    queue.send_bodies(*progress_bodies(3))
    running = start(burst=True)
    with pytest.raises(ZeroDivisionError, match="a bug in a hook"):
        running.finish()  # not totals of 0 read, as if the queue had been drained
    assert queue.deleted == []
    assert any(record.exc_info and record.exc_info[0] is ZeroDivisionError for record in caplog.records)


def test_a_bug_in_the_heartbeat_stops_the_worker_and_propagates(start, clock, queue, hooks, sqlite_engine):
    def broken(_count: int) -> None:
        raise ZeroDivisionError("a bug in a hook")

    hooks.on_visibility_failures = broken  # type: ignore[method-assign]
    pipeline = GatedPipeline(sqlite_engine)
    ids = queue.send_bodies(*progress_bodies(3))
    running = start(pipeline=pipeline)
    running.run_until(pipeline.waiting.is_set, "the commit to wait at the gate", committer=False)
    queue.failing_visibility = 3
    # Unprotected, the held messages would come back and be received again: the worker must stop instead.
    running.run_until(lambda: running.worker.stopping.is_set() or max(queue.receive_counts().values()) > 1,
                      "the heartbeat's failure to stop the worker", committer=False)
    assert running.worker.stopping.is_set()
    pipeline.gate.set()
    with pytest.raises(ZeroDivisionError, match="a bug in a hook"):
        running.finish()
    assert queue.deleted == ids  # the batch in hand was committed on the way out


def test_a_stop_arriving_while_the_writer_takes_its_batch_commits_that_batch_at_once(start, clock, queue, hooks):
    queue.send_bodies(*progress_bodies(1))
    running = start(start=False, flush_interval=50)
    worker = running.worker
    take = worker.inbox.take

    def stop_then_take(most: int) -> list:
        # stop() lands after the writer read `stopping`, before take() clears `arrived` (its wake-up)
        if len(worker.inbox):
            worker.stop()
        return take(most)

    worker.inbox.take = stop_then_take  # type: ignore[method-assign]
    running.thread.start()
    # The clock does not move: the batch in hand is committed at once, not once it is due (50 s) or once the
    # receivers' long polls end (20 s).
    wait_for(lambda: bool(hooks.committed), "the batch in hand to be committed", limit=5)
    assert worker.stopping.is_set()
    running.finish()


@pytest.mark.parametrize("held", ["stopping", "arrived"])
def test_a_signal_arriving_while_the_writer_holds_an_event_s_lock_does_not_deadlock_it(queue, clock, hooks, sqlite_engine,
                                                                                       held):
    # A handler runs on the main thread (the writer) between two of its bytecodes: maybe inside Event.wait() or
    # Event.clear() on `stopping` or the inbox's `arrived`, holding that event's (non-reentrant) lock.
    exits: list[int] = []
    worker = Worker(queue, Pipeline(sqlite_engine), OPTIONS, hooks=hooks, clock=clock, hard_exit=exits.append)
    event = worker.stopping if held == "stopping" else worker.inbox.arrived
    returned = threading.Event()

    def interrupted_writer() -> None:
        with event._cond:  # type: ignore[attr-defined]  # what Event.clear() and Event.wait() hold for a moment
            worker._on_signal(signal.SIGTERM, None)
            returned.set()

    thread = threading.Thread(target=interrupted_writer, name="interrupted-writer", daemon=True)
    thread.start()
    try:
        assert returned.wait(5), "the signal handler deadlocked on a lock held by the thread it interrupted"
        wait_for(worker.stopping.is_set, "the signal to stop the worker")
    finally:
        assert worker.watchdog is not None
        worker.watchdog.cancel()
    assert exits == []


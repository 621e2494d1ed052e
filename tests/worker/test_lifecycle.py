"""The worker's lifecycle: options from the settings, the wait for the database, the queue at start, signals, errors."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from sqlalchemy.exc import OperationalError

from consumer.config import Settings
from consumer.core import DatabaseUnavailable
from consumer.pipeline import Pipeline
from consumer.sources.sqs import QueueUnavailable
from consumer.worker import Worker, WorkerOptions
from tests.worker.conftest import OPTIONS
from tests.worker.harness import GatedPipeline, Running, progress_bodies, wait_for


def test_options_come_from_the_settings_and_their_defaults_are_the_settings_defaults():
    settings = Settings(receivers=7, wait_time_seconds=3, batch_size=42, flush_interval=0.25, shutdown_grace=9)
    assert WorkerOptions.from_settings(settings, burst=True) == WorkerOptions(7, 3, 42, 0.25, 9, burst=True)
    defaults = WorkerOptions()
    for name in ("receivers", "wait_time_seconds", "batch_size", "flush_interval", "shutdown_grace"):
        assert getattr(defaults, name) == Settings.model_fields[name].default, name


def test_the_worker_waits_for_the_database_at_start_beating_meanwhile(start, clock, queue, hooks):
    attempts: list[float] = []

    def prepare() -> None:
        attempts.append(clock.now())
        if len(attempts) <= 3:
            raise DatabaseUnavailable("connection refused")

    queue.send_bodies(*progress_bodies(2))
    running = start(start=False)
    running.worker.prepare = prepare
    running.thread.start()
    running.run_until(lambda: len(queue) == 0, "the messages committed once the database is up")
    assert len(attempts) == 4 and hooks.beats >= 4
    for n in range(1, 4):  # back-off: at least half of 1 s, doubled each time
        assert attempts[n] - attempts[n - 1] >= 0.5 * 2 ** (n - 1), attempts
    assert queue.calls["visibility_timeout"] == 1  # the queue is used only once the database is ready
    running.stop()


def test_stopped_while_waiting_for_the_database_it_returns_without_using_the_queue(start, clock, queue):
    def prepare() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    running = start(start=False)
    running.worker.prepare = prepare
    running.thread.start()
    running.settle()
    totals = running.stop()
    assert totals.read == 0 and queue.calls == {}


def test_a_queue_that_cannot_be_used_raises_queue_unavailable(start, queue):
    queue.unusable = "An error occurred (AccessDenied) when calling the GetQueueAttributes operation"
    running = start()
    with pytest.raises(QueueUnavailable, match="AccessDenied"):
        running.finish()
    assert queue.calls["receive"] == 0


def test_a_bug_in_the_writer_propagates_as_itself_and_deletes_nothing(start, queue, hooks):
    def broken(_batch: object) -> None:
        raise ZeroDivisionError("a bug")

    hooks.on_batch_committed = broken  # type: ignore[method-assign]
    queue.send_bodies(*progress_bodies(3))
    running = start()
    with pytest.raises(ZeroDivisionError):
        running.finish()
    assert queue.deleted == [] and len(running.worker.in_flight) == 3  # back after their timeout, as duplicates


def _signal_and_finish(running: Running, signum: int) -> None:
    """From another thread: once the worker runs, signal this process, then move the clock until it returns."""
    running.settle()
    os.kill(os.getpid(), signum)
    wait_for(running.worker.stopping.is_set, "the signal to stop the worker")
    running.run_until(lambda: not running.worker.threads or not any(t.is_alive() for t in running.worker.threads),
                      "the receivers to finish")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_worker_which_commits_what_it_holds_and_restores_the_handlers(clock, queue, hooks,
                                                                                         sqlite_engine, signum):
    assert threading.current_thread() is threading.main_thread()  # signal handlers need it; pytest-xdist runs tests there
    exits: list[int] = []
    worker = Worker(queue, Pipeline(sqlite_engine), OPTIONS, hooks=hooks, clock=clock, handle_signals=True,
                    hard_exit=exits.append)
    before = signal.getsignal(signum)
    ids = queue.send_bodies(*progress_bodies(3))
    running = Running(worker, clock, start=False)
    running.thread = threading.main_thread()  # run() is called below, here
    helper = threading.Thread(target=_signal_and_finish, args=(running, signum), name="signaller")
    helper.start()
    totals = worker.run()  # returns once the signal stopped it
    helper.join(10)
    assert totals.read == 3 and queue.deleted == ids  # the batch in hand was committed on the way out
    assert worker.watchdog is not None and worker.watchdog.finished.is_set() and exits == []  # armed, then cancelled
    assert signal.getsignal(signum) is before


def test_past_the_grace_period_the_watchdog_ends_the_process(queue, clock, hooks, sqlite_engine):
    exits: list[int] = []
    exited = threading.Event()

    def hard_exit(code: int) -> None:
        exits.append(code)
        exited.set()

    pipeline = GatedPipeline(sqlite_engine)  # a commit that cannot finish (a locked table)
    options = WorkerOptions(**{**OPTIONS.__dict__, "shutdown_grace": 0.2})
    worker = Worker(queue, pipeline, options, hooks=hooks, clock=clock, handle_signals=True, hard_exit=hard_exit)
    ids = queue.send_bodies(*progress_bodies(3))
    running = Running(worker, clock, start=False)
    running.thread = threading.main_thread()

    def signal_when_stuck() -> None:
        running.run_until(pipeline.waiting.is_set, "the commit to wait at the gate", committer=False)
        os.kill(os.getpid(), signal.SIGTERM)
        assert exited.wait(10), "the watchdog did not fire"  # real time: the grace period is wall-clock time
        pipeline.gate.set()  # os._exit would have ended it here; let the test's worker finish instead
        running.run_until(lambda: not any(t.is_alive() for t in worker.threads), "the receivers to finish")

    helper = threading.Thread(target=signal_when_stuck, name="signaller")
    helper.start()
    worker.run()
    helper.join(10)
    assert exits == [1] and sorted(queue.deleted) == sorted(ids)

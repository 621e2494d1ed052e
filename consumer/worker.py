"""The long-running SQS worker: receive, batch, commit, then delete; and its whole lifecycle.

Threads, because boto3 is synchronous:
- receivers (several) long-poll the queue and put messages in a bounded inbox;
- the writer (the thread calling `run`) gathers a batch until it is full or
  its oldest message has waited `flush_interval`, parses it while the
  previous batch commits on the database thread (`Committer`, the same as
  replay's), and deletes a batch's messages only once its own commit succeeded;
- the heartbeat extends the visibility of messages held longer than half
  the queue's VisibilityTimeout.

`run` owns the lifecycle: SIGTERM/SIGINT handlers (`handle_signals`), the
start-up wait for the database (`prepare`, retried with back-off while the
database is unavailable), the queue's visibility timeout (QueueUnavailable
when the queue cannot be used), the loops, and shutdown: the batch in hand is
committed, unstarted messages are released (visible again at once), and the
first signal arms a watchdog that ends the process if shutdown outlasts
`shutdown_grace`. With `burst` it returns once the queue stays empty.

If the database cannot take a batch, nothing is deleted: the messages
come back after their visibility timeout (and reach the dead-letter queue
after maxReceiveCount), while the worker backs off with jitter.

Everything observable goes through one `WorkerHooks` object, and every wait
through one `Clock`, so tests run the worker in-process on a stub queue and
virtual time (tests/worker/).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy.exc import OperationalError

from consumer.backoff import Backoff
from consumer.clock import REAL_CLOCK, Clock
from consumer.committer import Commit, Committer
from consumer.config import Settings
from consumer.core import Counts, DatabaseUnavailable
from consumer.hooks import CommittedBatch, WorkerHooks
from consumer.inbox import Inbox, InFlight
from consumer.pipeline import Pipeline
from consumer.readiness import database_error
from consumer.sources.sqs import Failure, Message, Queue, QueueError
from consumer.store.engine import display_url
from consumer.tuning import throughput_mode

log = logging.getLogger(__name__)

IDLE_WAKE = 1.0  # seconds between turns of an idle writer loop (each turn beats)


def _setting(name: str) -> Any:
    return field(default=Settings.model_fields[name].default)


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker runs: the settings of the same names (consumer.config.Settings holds their defaults and meaning)."""

    receivers: int = _setting("receivers")
    wait_time_seconds: int = _setting("wait_time_seconds")
    batch_size: int = _setting("batch_size")
    flush_interval: float = _setting("flush_interval")
    shutdown_grace: float = _setting("shutdown_grace")
    burst: bool = False  # drain the queue, then return once it stays empty

    @classmethod
    def from_settings(cls, settings: Settings, burst: bool = False) -> WorkerOptions:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls) if f.name != "burst"}, burst=burst)


class Worker:
    """Consumes `queue` into the database through `pipeline` until stopped; see the module's docstring."""

    def __init__(
        self,
        queue: Queue,
        pipeline: Pipeline,
        options: WorkerOptions,
        *,
        hooks: WorkerHooks | None = None,
        clock: Clock = REAL_CLOCK,
        prepare: Callable[[], object] | None = None,
        handle_signals: bool = False,
        hard_exit: Callable[[int], object] = os._exit,
    ) -> None:
        """`prepare` readies the database (migrate, or check the schema) and is retried while it raises
        DatabaseUnavailable or OperationalError. `handle_signals` (main thread only) makes SIGTERM and SIGINT
        stop the worker, the first of them arming the `shutdown_grace` watchdog, which calls `hard_exit(1)`."""
        self.queue = queue
        self.pipeline = pipeline
        self.options = options
        self.hooks = hooks or WorkerHooks()
        self.clock = clock
        self.prepare = prepare
        self.handle_signals = handle_signals
        self._hard_exit = hard_exit
        self.stopping = threading.Event()
        self.inbox = Inbox(max(options.batch_size * 2, 100))
        self.in_flight = InFlight()
        self.committer: Committer[list[Message]] = Committer(pipeline, clock, on_done=self.inbox.wake)
        self.totals = Counts()
        # Ids of messages a failed batch left on the queue and no later batch has committed.
        self.not_committed: set[str] = set()
        self.visibility_timeout = 30
        self.watchdog: threading.Timer | None = None  # armed by the first signal
        self._resume_at = float("-inf")  # receivers wait until then while the database is down
        self._last_failure = float("-inf")  # when a batch last failed to commit
        self._db_backoff = Backoff()
        self._lock = threading.Lock()
        self._receiving = 0  # receivers still running
        self._thread_error: Exception | None = None  # the first bug of a receiver or the heartbeat: run() raises it
        self.threads: list[threading.Thread] = []  # the receivers and the heartbeat, once started

    # lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        """Stop receiving; the writer commits what it holds and releases the rest."""
        if not self.stopping.is_set():
            log.info("stop requested: finishing the in-flight batch")
            self.stopping.set()
            self.inbox.wake()

    def run(self) -> Counts:
        """Run until stopped (with `burst`: until the queue stays empty) and return the totals.

        Raises QueueUnavailable when the queue cannot be used at start; any
        other exception is a bug, and propagates after the shutdown (a bug in
        a receiver or the heartbeat is logged at once and stops the worker).
        """
        previous = self._install_signal_handlers() if self.handle_signals else {}
        try:
            if not self._wait_for_database():
                return self.totals
            self.visibility_timeout = self.queue.visibility_timeout()
            self.hooks.on_started(self.queue, self.pipeline.engine)
            log.info(
                "worker started",
                extra={"queue_url": self.queue.url, "receivers": self.options.receivers, "visibility_timeout": self.visibility_timeout},
            )
            self._start_threads()
            try:
                with throughput_mode():
                    self._write_loop()
            finally:
                self._shut_down()
            if self._thread_error is not None:
                raise self._thread_error
            log.info("worker stopped", extra=self.totals.as_dict())
            return self.totals
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.watchdog is not None:
                self.watchdog.cancel()

    def _install_signal_handlers(self) -> dict[int, Any]:
        return {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.watchdog is not None:
            return  # the first signal counts; the watchdog is running
        self.watchdog = hard_exit_after(self.options.shutdown_grace, exit=self._hard_exit)
        # The handler runs on the main thread between two of its bytecodes, maybe while that thread holds the lock
        # of an event stop() sets (inside Event.wait or Event.clear) or is writing a log line: log and stop from a
        # thread of their own, which can wait for those.
        threading.Thread(target=self._stop_on_signal, args=(signum,), name="stop-on-signal", daemon=True).start()

    def _stop_on_signal(self, signum: int) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.stop()

    def _wait_for_database(self) -> bool:
        """Run `prepare` until the database lets it (it may come up after the worker); False when stopped first."""
        if self.prepare is None:
            return True
        backoff = Backoff(base=1.0, cap=30.0)
        engine = self.pipeline.engine
        while not self.stopping.is_set():
            self.hooks.on_beat()
            try:
                self.prepare()
                return True
            except (OperationalError, DatabaseUnavailable) as error:
                delay = backoff.next_delay()
                where = display_url(engine.url.render_as_string(hide_password=False))
                log.error("database %s unavailable at start: %s; retrying in %.1fs", where, database_error(engine, error), delay)
                self.clock.wait(self.stopping, delay)
        return False

    def _start_threads(self) -> None:
        self._receiving = self.options.receivers
        self.threads = [
            threading.Thread(target=self._receive_loop, name=f"receiver-{n}", daemon=True) for n in range(self.options.receivers)
        ]
        self.threads.append(threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True))
        for thread in self.threads:
            thread.start()

    def _shut_down(self) -> None:
        self.stopping.set()
        self.committer.close()  # a commit still running (only after an error in the loop) ends first
        self._release(self.inbox.drain())
        deadline = time.monotonic() + self.options.shutdown_grace
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._release(self.inbox.drain())  # what receivers brought back while stopping

    # writer --------------------------------------------------------------------

    def _write_loop(self) -> None:
        batch: list[Message] = []
        while True:
            self.hooks.on_beat()
            self.hooks.on_in_flight(len(self.in_flight))
            stopping = self.stopping.is_set()
            if not stopping:  # once stopping, only the batch in hand is committed; the rest is released
                batch += self.inbox.take(self.options.batch_size - len(batch))
            if self.committer.finished():
                batch = self._settle(self.committer.result(), batch)
            if batch and (stopping or len(batch) >= self.options.batch_size or self.clock.now() >= self._due(batch)):
                self._flush(batch)
                batch = []
                continue
            if stopping:
                if not self.committer.pending:
                    return
                self._settle(self.committer.result(), [])
                continue
            if self.options.burst and not batch and not self.committer.pending and not self._receiving and not len(self.inbox):
                return
            if self.stopping.is_set():
                continue  # stop() came after `stopping` was read, and take() may have cleared its wake-up
            timeout = self._due(batch) - self.clock.now() if batch else IDLE_WAKE
            self.clock.wait(self.inbox.arrived, timeout)

    def _due(self, batch: list[Message]) -> float:
        return batch[0].received_at + self.options.flush_interval

    def _flush(self, batch: list[Message]) -> None:
        """Parse `batch` (while the previous one commits), take the previous one's outcome, then start this one."""
        items = self.committer.parse([message.as_input() for message in batch])
        previous = self.committer.result() if self.committer.pending else None
        if previous is not None and previous.error is not None:
            self._back_off(previous, held=batch)
            return
        self.committer.start(items, batch)
        if previous is not None:
            self._acknowledge(previous)  # deleting its messages overlaps this batch's commit

    def _settle(self, commit: Commit[list[Message]], batch: list[Message]) -> list[Message]:
        """Act on a commit's outcome; returns the batch in hand (none when a failure left it on the queue)."""
        if commit.error is not None:
            self._back_off(commit, held=batch)
            return []
        self._acknowledge(commit)
        return batch

    def _acknowledge(self, commit: Commit[list[Message]]) -> None:
        """The batch is committed: delete its messages."""
        self._db_backoff.reset()
        messages = commit.tag
        counts = commit.counts_or_raise()
        self.hooks.on_batch_committed(CommittedBatch(messages, counts, commit.event_times(), commit.seconds, commit.finished))
        self.in_flight.forget(messages)  # committed: no longer worth extending
        self.not_committed.difference_update(message.message_id for message in messages)
        failed = self._report(self.queue.delete(messages), "DeleteMessageBatch")
        if failed:
            self.hooks.on_delete_failures(failed)
        self.totals.add(counts)
        log.info(
            "batch committed",
            extra={
                **counts.as_dict(),
                "messages": len(messages),
                "commit_seconds": round(commit.seconds, 4),
                "oldest_wait_seconds": round(commit.finished - messages[0].received_at, 4),
            },
        )

    def _back_off(self, commit: Commit[list[Message]], held: list[Message]) -> None:
        """The batch was not committed: leave it, and everything held with it, on the queue; wait before the next."""
        assert commit.error is not None
        delay = self._db_backoff.next_delay()
        held = commit.tag + held + self.inbox.drain()
        # Not deleted, not released: they reappear after the visibility timeout,
        # so a long outage walks them towards the dead-letter queue at SQS's pace.
        self.in_flight.forget(held)
        self.not_committed.update(message.message_id for message in held)
        self._last_failure = self.clock.now()
        self._resume_at = self._last_failure + delay
        if isinstance(commit.error, DatabaseUnavailable):
            log.error(
                "database unavailable: %s; %d messages left on the queue, retrying in %.1fs",
                commit.error, len(held), delay, extra={"message_ids": [m.message_id for m in held[:10]]},
            )
        else:  # a bug of ours: never delete what was not committed
            log.error("batch failed; %d messages left on the queue, retrying in %.1fs", len(held), delay, exc_info=commit.error)
        self.hooks.on_batch_failed(commit.error, len(commit.tag))  # after the log: a failing hook cannot hide the error
        self.clock.wait(self.stopping, delay)

    def _release(self, messages: Sequence[Message]) -> None:
        """Make messages we will not process visible again at once."""
        if messages:
            self._report(self.queue.change_visibility(messages, 0), "ChangeMessageVisibilityBatch (release)")
            self.in_flight.forget(messages)
            log.info("released %d unstarted messages", len(messages))

    # receivers and heartbeat ---------------------------------------------------------

    def _receive_loop(self) -> None:
        try:
            self._receive_until_stopped()
        except Exception as error:  # a bug (a failed ReceiveMessage is retried above)
            self._thread_failed(error)
        finally:
            with self._lock:
                self._receiving -= 1
            self.inbox.wake()

    def _receive_until_stopped(self) -> None:
        wait = min(self.options.wait_time_seconds, 2) if self.options.burst else self.options.wait_time_seconds
        backoff = Backoff(base=1.0, cap=20.0)
        empty_polls = 0
        while not self.stopping.is_set():
            pause = self._resume_at - self.clock.now()
            if pause > 0:
                self.clock.wait(self.stopping, pause)
                continue
            try:
                messages = self.queue.receive(wait)
            except QueueError as error:  # network or throttling: log, back off, keep going (anything else is a bug)
                self.hooks.on_receive_error(error)
                delay = backoff.next_delay()
                log.warning("ReceiveMessage failed: %s; retrying in %.1fs", error, delay)
                self.clock.wait(self.stopping, delay)
                continue
            backoff.reset()
            self.hooks.on_receive(messages)
            now = self.clock.now()
            for message in messages:
                message.received_at = now
            if self.stopping.is_set():
                self._release(messages)
                return
            if not messages:
                # The queue is not drained while this worker holds messages (their commit may fail), nor
                # while a failed batch's messages are invisible: they come back after their timeout.
                recently_failed = now - self._last_failure < self.visibility_timeout + wait
                empty_polls = 0 if recently_failed or len(self.in_flight) else empty_polls + 1
                if self.options.burst and empty_polls >= 2:
                    return
                continue
            empty_polls = 0
            self.hooks.on_received(len(messages))
            self.in_flight.add(messages)
            self._release(self.inbox.put(messages, self.stopping))  # what the inbox had no room for once stopping

    def _heartbeat_loop(self) -> None:
        try:
            self._extend_until_stopped()
        except Exception as error:  # a bug: held messages are no longer protected from redelivery
            self._thread_failed(error)

    def _thread_failed(self, error: Exception) -> None:
        """A bug in a receiver or the heartbeat: log it, stop the worker, and have run() raise it after the shutdown."""
        log.error("%s failed: stopping the worker", threading.current_thread().name, exc_info=error)
        with self._lock:
            if self._thread_error is None:
                self._thread_error = error
        self.stop()

    def _extend_until_stopped(self) -> None:
        if self.visibility_timeout < 1:
            log.warning("the queue's VisibilityTimeout is 0: held messages cannot be protected from redelivery")
            return
        half = self.visibility_timeout / 2
        while not self.clock.wait(self.stopping, max(0.2, self.visibility_timeout / 6)):
            due = self.in_flight.due_for_extension(self.clock.now(), older_than=half)
            if due:
                failures = self.queue.change_visibility(due, self.visibility_timeout)
                failed = self._report(failures, "ChangeMessageVisibilityBatch (extend)")
                if failed:
                    self.hooks.on_visibility_failures(failed)
                log.info("extended visibility of %d in-flight messages by %ds", len(due), self.visibility_timeout)

    @staticmethod
    def _report(failures: list[Failure], operation: str) -> int:
        # An expired receipt handle means SQS will redeliver the message: a
        # duplicate, which the merge rules turn into a no-op.
        if failures:
            log.warning(
                "%s: %d entries failed (%s)",
                operation,
                len(failures),
                ", ".join(sorted({f.code for f in failures})),
                extra={"message_ids": [f.message_id for f in failures], "reasons": sorted({f.reason for f in failures})},
            )
        return len(failures)


def hard_exit_after(seconds: float, code: int = 1, exit: Callable[[int], object] = os._exit) -> threading.Timer:
    """A watchdog for the shutdown grace period: past it, `exit(code)` without waiting (os._exit: no cleanup)."""

    def expire() -> None:
        log.error("shutdown grace period of %.0fs exceeded: exiting now (uncommitted messages will be redelivered)", seconds)
        exit(code)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer

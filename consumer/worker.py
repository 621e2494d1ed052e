"""The long-running SQS worker: receive, batch, commit, then delete.

Threads, because boto3 is synchronous:
- receivers (several) long-poll SQS and put messages in a bounded inbox;
- the writer (the calling thread) gathers a batch until it is full or its
  oldest message has waited `flush_interval`, commits it through the same
  `Pipeline` as replay, and only then deletes its messages;
- the heartbeat extends the visibility of messages held longer than half
  the queue's VisibilityTimeout.

If the database cannot take the batch, nothing is deleted: the messages
come back after their visibility timeout (and reach the dead-letter queue
after maxReceiveCount), while the worker backs off with jitter.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consumer import observability as metrics
from consumer.backoff import Backoff
from consumer.core import Counts, DatabaseUnavailable, Tracked
from consumer.pipeline import Pipeline
from consumer.sources.sqs import Failure, Message, SqsQueue
from consumer.tuning import throughput_mode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    receivers: int = 4
    wait_time_seconds: int = 20
    batch_size: int = 5000
    flush_interval: float = 0.5
    shutdown_grace: float = 30.0
    burst: bool = False


class InFlight:
    """Messages received and not yet deleted or released, for the heartbeat and for shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, tuple[Message, float]] = {}

    def add(self, messages: Sequence[Message]) -> None:
        with self._lock:
            for message in messages:
                self._messages[message.receipt_handle] = (message, message.received_at)

    def forget(self, messages: Sequence[Message]) -> None:
        with self._lock:
            for message in messages:
                self._messages.pop(message.receipt_handle, None)

    def due_for_extension(self, older_than: float) -> list[Message]:
        """Messages whose visibility was last set more than `older_than` seconds ago (marked as extended now)."""
        now = time.monotonic()
        due = []
        with self._lock:
            for handle, (message, since) in self._messages.items():
                if now - since >= older_than:
                    due.append(message)
                    self._messages[handle] = (message, now)
        return due

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)


class Worker:
    def __init__(self, sqs: SqsQueue, pipeline: Pipeline, options: WorkerOptions) -> None:
        self.sqs = sqs
        self.pipeline = pipeline
        self.options = options
        self.stopping = threading.Event()
        self.inbox: queue.Queue[Message] = queue.Queue(maxsize=max(options.batch_size * 2, 100))
        self.in_flight = InFlight()
        self.totals = Counts()
        self.visibility_timeout = 30
        self._resume_at = 0.0  # receivers wait until then while the database is down
        self._last_failure = float("-inf")  # when a batch last failed to commit
        self._db_backoff = Backoff()
        self._receivers: list[threading.Thread] = []
        # Ids of messages a failed batch left on the queue and no later batch has committed.
        self.not_committed: set[str] = set()
        self.heartbeat = metrics.Heartbeat()
        # Called with each committed batch and the commit's monotonic time (benchmarks, metrics).
        self.on_commit: Callable[[list[Message], float], None] | None = None

    # lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        """Stop receiving; the writer commits what it holds and releases the rest."""
        if not self.stopping.is_set():
            log.info("stop requested: finishing the in-flight batch")
            self.stopping.set()

    def run(self) -> Counts:
        self.visibility_timeout = self.sqs.visibility_timeout()
        log.info(
            "worker started",
            extra={"queue_url": self.sqs.url, "receivers": self.options.receivers, "visibility_timeout": self.visibility_timeout},
        )
        self._receivers = [
            threading.Thread(target=self._receive_loop, name=f"receiver-{n}", daemon=True) for n in range(self.options.receivers)
        ]
        for thread in self._receivers:
            thread.start()
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        try:
            with throughput_mode():
                self._write_loop()
        finally:
            self.stopping.set()
            self._release(self._drain_inbox())
            deadline = time.monotonic() + self.options.shutdown_grace
            for thread in self._receivers:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            self._release(self._drain_inbox())  # what receivers brought back while stopping
        log.info("worker stopped", extra=self.totals.as_dict())
        return self.totals

    # writer --------------------------------------------------------------------

    def _write_loop(self) -> None:
        batch: list[Message] = []
        while True:
            self.heartbeat.beat()
            metrics.IN_FLIGHT.set(len(self.in_flight))
            timeout = 0.2
            if batch:
                timeout = max(0.0, batch[0].received_at + self.options.flush_interval - time.monotonic())
            try:
                batch.append(self.inbox.get(timeout=timeout))
            except queue.Empty:
                pass
            while len(batch) < self.options.batch_size:  # take whatever is already waiting
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            full = len(batch) >= self.options.batch_size
            due = bool(batch) and time.monotonic() >= batch[0].received_at + self.options.flush_interval
            if full or due or (self.stopping.is_set() and batch):
                self._flush(batch)
                batch = []
            if self.stopping.is_set():
                return
            if self.options.burst and not batch and self.inbox.empty() and not any(t.is_alive() for t in self._receivers):
                return

    def _flush(self, batch: list[Message]) -> None:
        try:
            items = self.pipeline.parse([message.as_input() for message in batch])
            started = time.monotonic()
            counts = self.pipeline.commit(items)
        except Exception as error:  # DatabaseUnavailable, or a bug of ours: never delete what was not committed
            metrics.BATCH_FAILURES.inc()
            self._db_backoff_after(batch, error)
            return
        self._db_backoff.reset()
        committed = time.monotonic()
        metrics.record_batch(counts, len(batch), committed - started)
        metrics.observe_lag([outcome.event_time for _, outcome in items if isinstance(outcome, Tracked)])
        for message in batch:
            metrics.RECEIPT_TO_COMMIT.observe(committed - message.received_at)
        if self.on_commit is not None:
            self.on_commit(batch, committed)
        self.in_flight.forget(batch)  # committed: no longer worth extending
        self.not_committed.difference_update(message.message_id for message in batch)
        failed = self._report(self.sqs.delete(batch), "DeleteMessageBatch")
        metrics.DELETE_ERRORS.inc(failed)
        self.totals.add(counts)
        log.info(
            "batch committed",
            extra={
                **counts.as_dict(),
                "messages": len(batch),
                "commit_seconds": round(committed - started, 4),
                "oldest_wait_seconds": round(committed - batch[0].received_at, 4),
            },
        )

    def _db_backoff_after(self, batch: list[Message], error: Exception) -> None:
        delay = self._db_backoff.next_delay()
        held = batch + self._drain_inbox()
        # Not deleted, not released: they reappear after the visibility timeout,
        # so a long outage walks them towards the dead-letter queue at SQS's pace.
        self.in_flight.forget(held)
        self.not_committed.update(message.message_id for message in held)
        self._last_failure = time.monotonic()
        self._resume_at = self._last_failure + delay
        if isinstance(error, DatabaseUnavailable):
            log.error(
                "database unavailable: %s; %d messages left on the queue, retrying in %.1fs",
                error, len(held), delay, extra={"message_ids": [m.message_id for m in held[:10]]},
            )
        else:
            log.exception("batch failed; %d messages left on the queue, retrying in %.1fs", len(held), delay)
        self.stopping.wait(delay)

    def _drain_inbox(self) -> list[Message]:
        drained = []
        while True:
            try:
                drained.append(self.inbox.get_nowait())
            except queue.Empty:
                return drained

    def _release(self, messages: list[Message]) -> None:
        """Make messages we will not process visible again at once."""
        if messages:
            self._report(self.sqs.change_visibility(messages, 0), "ChangeMessageVisibilityBatch (release)")
            self.in_flight.forget(messages)
            log.info("released %d unstarted messages", len(messages))

    # receivers and heartbeat ---------------------------------------------------------

    def _receive_loop(self) -> None:
        wait = min(self.options.wait_time_seconds, 2) if self.options.burst else self.options.wait_time_seconds
        backoff = Backoff(base=1.0, cap=20.0)
        empty_polls = 0
        while not self.stopping.is_set():
            pause = self._resume_at - time.monotonic()
            if pause > 0:
                self.stopping.wait(min(pause, 1.0))
                continue
            try:
                messages = self.sqs.receive(wait)
            except Exception as error:  # network or throttling: log, back off, keep going
                metrics.RECEIVE_ERRORS.inc()
                delay = backoff.next_delay()
                log.warning("ReceiveMessage failed: %s; retrying in %.1fs", error, delay)
                self.stopping.wait(delay)
                continue
            backoff.reset()
            if self.stopping.is_set():
                self._release(messages)
                return
            if not messages:
                # A failed batch's messages are invisible until their timeout ends:
                # the queue is not drained until they have come back and been taken.
                recently_failed = time.monotonic() - self._last_failure < self.visibility_timeout + wait
                empty_polls = 0 if recently_failed else empty_polls + 1
                if self.options.burst and empty_polls >= 2:
                    return
                continue
            empty_polls = 0
            metrics.MESSAGES_RECEIVED.inc(len(messages))
            self.in_flight.add(messages)
            for message in messages:
                while True:
                    try:
                        self.inbox.put(message, timeout=0.5)
                        break
                    except queue.Full:
                        if self.stopping.is_set():
                            break
            if self.stopping.is_set():
                return

    def _heartbeat_loop(self) -> None:
        if self.visibility_timeout < 1:
            log.warning("the queue's VisibilityTimeout is 0: held messages cannot be protected from redelivery")
            return
        half = self.visibility_timeout / 2
        while not self.stopping.wait(max(0.2, self.visibility_timeout / 6)):
            due = self.in_flight.due_for_extension(older_than=half)
            if due:
                failed = self._report(self.sqs.change_visibility(due, self.visibility_timeout), "ChangeMessageVisibilityBatch (extend)")
                metrics.VISIBILITY_ERRORS.inc(failed)
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


def hard_exit_after(seconds: float, code: int = 1) -> threading.Timer:
    """A watchdog for the shutdown grace period: past it, exit without waiting."""

    def expire() -> None:
        log.error("shutdown grace period of %.0fs exceeded: exiting now (uncommitted messages will be redelivered)", seconds)
        os._exit(code)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer

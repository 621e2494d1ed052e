"""What the worker reports as it runs: one hooks object, its methods no-ops here.

The worker calls these and nothing else to be observed: the Prometheus
metrics (`observability.PrometheusHooks`), the benchmarks and the tests
subclass `WorkerHooks` and override what they need. Hooks are called from
the worker's threads (receivers, writer, heartbeat), so they must be quick
and thread-safe; an exception from a hook is a bug: it stops the worker
and `Worker.run` raises it (after the shutdown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from consumer.core import Counts
from consumer.sources.sqs import Message

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from consumer.sources.sqs import Queue


@dataclass(frozen=True)
class CommittedBatch:
    """A batch the worker committed, as its hooks see it."""

    messages: Sequence[Message]
    counts: Counts
    event_times: Sequence[datetime]  # the event_time of each tracked event
    commit_seconds: float  # the database's time to commit it
    committed_at: float  # the worker's clock at the commit (Message.received_at is on the same clock)


class WorkerHooks:
    """The worker's events, with no-op defaults (the order in which a batch meets them is the order below)."""

    def on_started(self, queue: Queue, engine: Engine) -> None:
        """The worker is about to receive from `queue` and write to `engine` (the metrics read the queue's depth
        and the tables' freshness from them)."""

    def on_receive(self, messages: Sequence[Message]) -> None:
        """A ReceiveMessage call succeeded, with these messages (maybe none)."""

    def on_beat(self) -> None:
        """The writer loop (or the start-up wait for the database) is alive; at least every few seconds."""

    def on_received(self, count: int) -> None:
        """A ReceiveMessage call returned `count` messages (never 0)."""

    def on_receive_error(self, error: Exception) -> None:
        """A ReceiveMessage call failed; the receiver backs off and tries again."""

    def on_in_flight(self, count: int) -> None:
        """Messages now received and not yet deleted or released (at each turn of the writer loop)."""

    def on_batch_committed(self, batch: CommittedBatch) -> None:
        """A batch was committed; its messages are deleted next."""

    def on_batch_failed(self, error: Exception, messages: int) -> None:
        """A batch could not be committed; its `messages` (and those held with it) stay on the queue."""

    def on_delete_failures(self, count: int) -> None:
        """`count` entries of DeleteMessageBatch failed after a commit (0 is not reported)."""

    def on_visibility_failures(self, count: int) -> None:
        """`count` entries of a visibility extension failed (0 is not reported)."""

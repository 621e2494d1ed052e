"""Parse then commit, batch after batch, the next parse overlapping the previous commit: replay and the worker share it.

Parsing is CPU work on the caller's thread; committing is mostly waiting on
the database, done on one writer thread. So while batch N commits, the
caller reads and parses batch N+1, then takes N's outcome (`result`) before
it starts N+1: at most one commit is in flight, and the caller learns how
each batch ended, in order, before the next one is written. That is what the
worker needs to delete a batch's messages only after its own commit, and to
hold the next batch back when the database failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from consumer.clock import REAL_CLOCK, Clock
from consumer.core import Counts, Input, Outcome, Tracked
from consumer.pipeline import Pipeline

T = TypeVar("T")


@dataclass
class Commit(Generic[T]):
    """One batch's commit: what was written, what the caller attached to it, and how it ended.

    Exactly one of `counts` (committed) and `error` (DatabaseUnavailable, or a
    bug) is set once it has ended. After an error, part of the batch may have
    been committed (isolating a refused input commits halves separately): the
    caller deletes none of it, and a redelivered input's merge is a no-op.
    `started` and `finished` are times of the committer's clock around
    `Pipeline.commit`.
    """

    items: list[tuple[Input, Outcome]]
    tag: T
    counts: Counts | None = None
    error: Exception | None = None
    started: float = 0.0
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    def event_times(self) -> list[datetime]:
        """The event_time of each tracked event of the batch."""
        return [outcome.event_time for _, outcome in self.items if isinstance(outcome, Tracked)]

    def counts_or_raise(self) -> Counts:
        """The counts; the commit's error, raised, if it failed."""
        if self.error is not None:
            raise self.error
        assert self.counts is not None
        return self.counts


class Committer(Generic[T]):
    """Commits parsed batches on one writer thread, one at a time, so the caller can parse the next meanwhile.

    `on_done` is called as each commit ends, once `finished()` is true (the
    worker uses it to wake its loop).
    """

    def __init__(self, pipeline: Pipeline, clock: Clock = REAL_CLOCK, on_done: Callable[[], None] | None = None) -> None:
        self.pipeline = pipeline
        self._clock = clock
        self._on_done = on_done
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        self._pending: Future[Commit[T]] | None = None
        self._running = 0  # commits started whose on_done has not returned (the next may start before it does)
        self._running_lock = threading.Lock()

    def parse(self, inputs: Sequence[Input]) -> list[tuple[Input, Outcome]]:
        """Parse a batch on the caller's thread (never raises: parsing is total)."""
        return self.pipeline.parse(inputs)

    @property
    def pending(self) -> bool:
        """A commit was started and its result not taken yet."""
        return self._pending is not None

    @property
    def busy(self) -> bool:
        """A commit is running, or has ended and `on_done` has not returned yet."""
        return self._running > 0

    def finished(self) -> bool:
        """The pending commit has ended: `result()` will not wait."""
        return self._pending is not None and self._pending.done()

    def start(self, items: list[tuple[Input, Outcome]], tag: T) -> None:
        """Start committing parsed `items` on the writer thread; the result of the previous commit must have been taken."""
        if self._pending is not None:
            raise RuntimeError("a commit is pending: take its result() before starting the next")
        with self._running_lock:
            self._running += 1
        try:
            self._pending = self._writer.submit(self._commit, Commit(items, tag))
        except BaseException:  # the writer was closed: nothing runs
            with self._running_lock:
                self._running -= 1
            raise
        self._pending.add_done_callback(self._ended)

    def result(self) -> Commit[T]:
        """Wait for the pending commit to end and return it (its error in `error`, never raised here)."""
        if self._pending is None:
            raise RuntimeError("no commit is pending")
        pending, self._pending = self._pending, None
        return pending.result()

    def commit_all(self, batches: Iterable[Sequence[Input]], tag: T) -> Iterator[Commit[T]]:
        """Parse and commit every batch, yielding each commit in order once it has ended (replay's loop)."""
        for inputs in batches:
            items = self.parse(inputs)
            if self.pending:
                yield self.result()
            self.start(items, tag)
        if self.pending:
            yield self.result()

    def close(self) -> None:
        """Wait for a commit still running, and stop the writer thread."""
        self._writer.shutdown(wait=True)

    def __enter__(self) -> Committer[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _commit(self, commit: Commit[T]) -> Commit[T]:
        commit.started = self._clock.now()
        try:
            commit.counts = self.pipeline.commit(commit.items)
        except Exception as error:  # DatabaseUnavailable, or a bug: the caller decides (see Commit)
            commit.error = error
        commit.finished = self._clock.now()
        return commit

    def _ended(self, _: Future[Commit[T]]) -> None:
        try:
            if self._on_done is not None:
                self._on_done()
        finally:
            with self._running_lock:
                self._running -= 1

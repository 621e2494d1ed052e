"""Running a worker in-process on the stub queue and the fake clock, and watching it.

`Running.settle()` waits (in real time, briefly) until nothing can happen
without the clock moving: every thread of the worker is asleep on the fake
clock and no commit is running. `run_until(condition)` alternates settling,
checking and moving the clock to the next deadline, so a scenario spanning
minutes of the worker's time takes a fraction of a second, in the order
real time would give.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, text

from consumer.core import Counts, Input, Outcome
from consumer.hooks import CommittedBatch, WorkerHooks
from consumer.pipeline import Pipeline
from consumer.worker import Worker
from tests.factory import encode, progress_event
from tests.worker.fake_clock import FakeClock

REAL_LIMIT = 30.0  # real seconds any one wait of a test may take
VIRTUAL_LIMIT = 3600.0  # worker's seconds a run_until may move the clock


class RecordingHooks(WorkerHooks):
    """Every hook call, with the fake clock's time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.beats = 0
        self.received: list[int] = []
        self.receive_errors: list[tuple[float, Exception]] = []
        self.committed: list[CommittedBatch] = []
        self.failed: list[tuple[float, Exception, int]] = []
        self.delete_failures: list[int] = []
        self.visibility_failures: list[int] = []

    def on_beat(self) -> None:
        with self._lock:
            self.beats += 1

    def on_received(self, count: int) -> None:
        with self._lock:
            self.received.append(count)

    def on_receive_error(self, error: Exception) -> None:
        with self._lock:
            self.receive_errors.append((self.clock.now(), error))

    def on_batch_committed(self, batch: CommittedBatch) -> None:
        with self._lock:
            self.committed.append(batch)

    def on_batch_failed(self, error: Exception, messages: int) -> None:
        with self._lock:
            self.failed.append((self.clock.now(), error, messages))

    def on_delete_failures(self, count: int) -> None:
        with self._lock:
            self.delete_failures.append(count)

    def on_visibility_failures(self, count: int) -> None:
        with self._lock:
            self.visibility_failures.append(count)

    def committed_ids(self) -> list[str]:
        with self._lock:
            return [message.message_id for batch in self.committed for message in batch.messages]

    def batch_sizes(self) -> list[int]:
        with self._lock:
            return [len(batch.messages) for batch in self.committed]


class GatedPipeline(Pipeline):
    """The real pipeline, whose commits wait until the test opens the gate (a slow or locked database)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.waiting = threading.Event()  # a commit is waiting at the gate

    def commit(self, items: Sequence[tuple[Input, Outcome]]) -> Counts:
        self.waiting.set()
        assert self.gate.wait(REAL_LIMIT), "the test never opened the gate"
        return super().commit(items)


def wait_for(condition: Callable[[], bool], what: str, limit: float = REAL_LIMIT) -> None:
    """Wait in real time for a condition another thread brings about."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.001)


class Running:
    """A worker's `run` in a thread of its own (or, with `thread=None` given to `watch`, the caller's)."""

    def __init__(self, worker: Worker, clock: FakeClock, start: bool = True) -> None:
        self.worker = worker
        self.clock = clock
        self.totals: Counts | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="writer", daemon=True)
        if start:
            self.thread.start()

    def _run(self) -> None:
        try:
            self.totals = self.worker.run()
        except BaseException as error:  # the test reads it from .error
            self.error = error

    def settled(self, committer: bool = True) -> bool:
        """Every live thread of the worker sleeps on the clock (and, with `committer`, no commit is running)."""
        # Once stopping, the writer finishes without waiting on the clock (a last commit, then joining the others).
        threads = [*([] if self.worker.stopping.is_set() else [self.thread]), *self.worker.threads]
        if any(thread.is_alive() and not self.clock.asleep(thread) for thread in threads):
            return False
        return not (committer and self.worker.committer.busy)

    def settle(self, committer: bool = True) -> None:
        wait_for(lambda: self.settled(committer) or not self.thread.is_alive(), "the worker to settle")

    def run_until(self, condition: Callable[[], bool], what: str, committer: bool = True) -> None:
        """Let the worker run, moving the clock from deadline to deadline, until `condition` holds."""
        limit = self.clock.now() + VIRTUAL_LIMIT
        real_deadline = time.monotonic() + REAL_LIMIT
        while True:
            self.settle(committer)
            if condition():
                return
            next_deadline = self.clock.next_deadline()
            if next_deadline is None and not self.thread.is_alive() and not condition():  # (it may just have ended)
                raise AssertionError(f"the worker stopped before {what}" + (f": {self.error!r}" if self.error else ""))
            if (next_deadline or 0) > limit or time.monotonic() > real_deadline:
                raise AssertionError(f"{what} did not happen (worker's clock at {self.clock.now():.1f})")
            if next_deadline is None:  # the stopping writer works outside the clock (a last delete, joining)
                time.sleep(0.001)
            else:
                self.clock.advance_to(next_deadline)

    def finish(self) -> Counts:
        """Wait for `run` to return (moving the clock while receivers finish their long polls); its totals."""
        self.run_until(lambda: not self.thread.is_alive(), "the worker to return")
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.totals is not None
        return self.totals

    def stop(self) -> Counts:
        self.worker.stop()
        return self.finish()


def progress_bodies(count: int, first_user: int = 1) -> list[bytes]:
    """`count` course_progress events, of distinct students."""
    return [encode(progress_event("2019-11-01T00:00:00Z", user_id=str(first_user + n))) for n in range(count)]


def progress_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM course_progress")).scalar_one()

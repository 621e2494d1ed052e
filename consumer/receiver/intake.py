"""Group commit for the HTTPS receiver, with the spool behind it: each request is answered once its event is durable.

Requests arrive concurrently on the event loop; each hands its verified
event to `Intake.submit` and waits on the future it gets back. One commit
thread takes everything queued (up to `max_batch`), parses it and commits it
in ONE transaction through the same `Pipeline` as replay and the SQS worker,
then resolves every future of the group: a group forms by itself while the
previous one commits, so there is no fixed window to wait out at low load
and large groups at high load (group commit).

A future ends in one of three ways:
- "committed": the event's outcome (applied, stale, ignored, quarantined) is
  in the database;
- "spooled": the database could not take the group, so its events were
  appended to the spool (`consumer.spool`) and fsync'd; the drainer applies
  them once the database is back, a restart drains what is left;
- `Refused`: neither (the spool is full, or cannot be written): the request
  gets 503 and Canvas delivers it again later.
So a 2xx always means "committed, or on disk in the spool", which is what
lets a `kill -9` at any moment lose no acknowledged event.

A commit that has not ended after `commit_deadline` seconds (a database that
stopped answering without refusing: a partition, a failover, a lock held for
minutes) is not waited for: its group is spooled and answered, and the
database counts as down. Canvas waits 15 s for an answer, so without a
deadline a hung database would make every request time out and Canvas drop
the events after its retries. The abandoned commit may still end later; if
it commits, the spooled copy is applied again to no effect.

While the database is down every group goes straight to the spool (a commit
attempt per group would make each request wait for the database to time
out); the drainer thread retries with back-off, and its first success (or,
with an empty spool, a readiness check) sends groups to the database again.
Draining and direct commits may then run side by side: the merge rules are
order-independent, and a spooled event applied twice (a crash between its
commit and the deletion of its segment) changes nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import TypeVar

from consumer.backoff import Backoff
from consumer.core import Counts, DatabaseUnavailable, Input
from consumer.pipeline import Pipeline
from consumer.readiness import database_ready
from consumer.spool import Spool, SpoolFull
from consumer.text import one_line

log = logging.getLogger(__name__)

COMMITTED, SPOOLED = "committed", "spooled"
T = TypeVar("T")
_STOP = object()


class Refused(Exception):
    """The event could not be made durable (spool full, spool unwritable, shutting down): answer 503."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind  # a bounded label: "spool_full", "spool_error", "stopping"
        self.reason = reason


class IntakeHooks:
    """What the intake reports (no-ops here; `consumer.receiver.metrics` keeps the Prometheus metrics)."""

    def on_committed(self, counts: Counts, group: int, seconds: float) -> None:
        """A group of `group` events was committed in `seconds`."""

    def on_spooled(self, group: int) -> None:
        """A group was appended to the spool."""

    def on_refused(self, kind: str, group: int) -> None:
        """A group could not be made durable (503)."""

    def on_drained(self, counts: Counts) -> None:
        """Spooled events were committed."""

    def on_database(self, available: bool) -> None:
        """The intake switched between committing directly and spooling."""


class Intake:
    """Commits submitted events in groups on one thread; spools them while the database cannot take them.

    `prepare` (upgrade the schema) must succeed once before anything is
    committed; if it failed at start (the database was down), the drainer
    retries it. `probe` says whether the database answers (default: SELECT 1).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        spool: Spool,
        *,
        max_batch: int = 1000,
        drain_batch: int = 5000,
        prepare: Callable[[], None] | None = None,
        prepared: bool = False,
        hooks: IntakeHooks | None = None,
        backoff: Backoff | None = None,
        probe: Callable[[], str | None] | None = None,
        commit_deadline: float = 5.0,
    ) -> None:
        self.pipeline = pipeline
        self.spool = spool
        self.max_batch = max_batch
        self.drain_batch = drain_batch
        self.hooks = hooks or IntakeHooks()
        self.commit_deadline = commit_deadline
        self._prepare = prepare
        self._prepared = prepared or prepare is None
        self._backoff = backoff or Backoff(base=0.5, cap=15.0)
        self._probe = probe or (lambda: database_ready(pipeline.engine))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._database_ok = self._prepared
        self.spool_failing = False  # the last append was refused (full, or a write error): /readyz says so
        self._accepting = False
        self._stop_requested = False
        self._submit_lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_drainer = threading.Event()
        self._committer = threading.Thread(target=self._commit_loop, name="receiver-commit", daemon=True)
        self._drainer = threading.Thread(target=self._drain_loop, name="spool-drain", daemon=True)

    # -- the request side -------------------------------------------------------------------------------------

    @property
    def database_ok(self) -> bool:
        """Groups go to the database (True) or straight to the spool (False)."""
        return self._database_ok

    @property
    def accepting(self) -> bool:
        return self._accepting

    def start(self) -> Intake:
        self._accepting = True
        self._committer.start()
        self._drainer.start()
        if self.spool.stats().records or not self._database_ok:
            self._wake_drainer.set()
        return self

    def submit(self, item: Input) -> Future[str]:
        """Queue one verified event; the future ends in COMMITTED or SPOOLED, or raises Refused."""
        future: Future[str] = Future()
        with self._submit_lock:  # nothing is queued behind the stop marker
            if not self._accepting:
                future.set_exception(Refused("stopping", "the receiver is shutting down"))
                return future
            self._queue.put((item, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new events, answer every queued one (committed or spooled), stop draining, close the spool.

        Once only: a second call returns at once (the command calls it again on its way out, after the server's
        own shutdown already did; waiting a second `timeout` for a stuck thread would overrun the pod's grace).
        """
        with self._submit_lock:
            if self._stop_requested:
                return
            self._stop_requested = True
            self._accepting = False
            self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        self._committer.join(max(0.0, deadline - time.monotonic()))
        self._stopping.set()
        self._wake_drainer.set()
        self._drainer.join(max(0.0, deadline - time.monotonic()))
        if self._committer.is_alive() or self._drainer.is_alive():
            log.error("the receiver's threads did not stop within %.0f s; the spool keeps what it holds", timeout)
            return  # a thread may still write the spool: leave it open, the process is exiting
        self.spool.close()

    # -- the commit thread ------------------------------------------------------------------------------------

    def _commit_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            stop = False
            while len(group) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                group.append(item)
            try:
                self._handle(group)
            except BaseException as error:  # a bug: never leave a request waiting forever
                log.exception("the receiver's commit thread failed on a group of %d events", len(group))
                _settle(group, error=Refused("spool_error", f"internal error: {one_line(str(error))}"))
            if stop:
                return

    def _handle(self, group: list[tuple[Input, Future[str]]]) -> None:
        inputs = [item for item, _ in group]
        if self._database_ok:
            started = time.perf_counter()
            items = self.pipeline.parse(inputs)
            try:
                counts = _within(self.commit_deadline, lambda: self.pipeline.commit(items))
            except TimeoutError:
                self._forget_connections()
                self._database_down(f"a commit of {len(group)} events has not ended after {self.commit_deadline:g} s "
                                    "(the database does not answer)")
            except DatabaseUnavailable as error:
                self._database_down(f"the database is unavailable: {error}")
            except Exception as error:  # a bug in the write path: keep the events (spool), say so loudly
                log.exception("committing a group of %d events failed unexpectedly", len(group))
                self._database_down(f"unexpected {type(error).__name__} while committing: {one_line(str(error))}")
            else:
                self.hooks.on_committed(counts, len(group), time.perf_counter() - started)
                _settle(group, COMMITTED)
                return
        self._spool(group, inputs)

    def _spool(self, group: list[tuple[Input, Future[str]]], inputs: Sequence[Input]) -> None:
        try:
            self.spool.append(inputs)
        except SpoolFull as error:
            self.spool_failing = True
            log.warning("spool full: %d events refused with 503 (%s)", len(group), one_line(str(error)))
            self.hooks.on_refused("spool_full", len(group))
            _settle(group, error=Refused("spool_full", "the spool is full; deliver again later"))
            return
        except OSError as error:
            self.spool_failing = True
            log.error("cannot write the spool: %d events refused with 503: %s", len(group), one_line(str(error)))
            self.hooks.on_refused("spool_error", len(group))
            _settle(group, error=Refused("spool_error", "the spool cannot be written; deliver again later"))
            return
        self.spool_failing = False
        self.hooks.on_spooled(len(group))
        _settle(group, SPOOLED)
        self._wake_drainer.set()

    def _forget_connections(self) -> None:
        """Drop the pool's idle connections without closing them: after a silent failover they may be as dead
        as the one that hung, and `pool_pre_ping` on a dead socket has no time limit."""
        try:
            self.pipeline.engine.dispose(close=False)
        except Exception:  # logged: the next attempt opens new connections anyway
            log.exception("cannot reset the database connection pool")

    def _database_down(self, reason: str) -> None:
        if self._database_ok:
            log.warning("%s: spooling events until it is back", reason)
            self._database_ok = False
            self.hooks.on_database(False)
        self._wake_drainer.set()

    def _database_up(self) -> None:
        if not self._database_ok:
            log.info("the database is back: committing events directly again")
            self._database_ok = True
            self.hooks.on_database(True)

    # -- the drainer thread -----------------------------------------------------------------------------------

    def _drain_loop(self) -> None:
        delay: float | None = None  # None: sleep until woken (something spooled, or stop)
        while True:
            if delay is None:
                self._wake_drainer.wait()
            else:
                self._stopping.wait(delay)  # backing off: only a stop cuts it short
            self._wake_drainer.clear()
            if self._stopping.is_set():
                return
            try:
                done = self._drain_once()
            except Exception:  # a bug: log it, keep the spool, try again later
                log.exception("draining the spool failed unexpectedly")
                done = False
            if not done:
                delay = self._backoff.next_delay()
                continue
            self._backoff.reset()
            delay = 0.0 if self.spool.stats().records or not self._database_ok else None

    def _drain_once(self) -> bool:
        """One step: prepare the database, or apply the oldest segment; False when the database failed."""
        if not self._prepared:
            try:
                assert self._prepare is not None
                self._prepare()
            except Exception as error:  # the database is still down (or refuses the migration): retry
                log.warning("cannot prepare the database yet: %s", one_line(str(getattr(error, "orig", None) or error)))
                return False
            self._prepared = True
        segment = self.spool.oldest()
        if segment is None:
            if not self._database_ok:
                try:
                    problem = _within(self.commit_deadline, self._probe)
                except TimeoutError:
                    self._forget_connections()
                    return False
                if problem is not None:
                    return False
                self._database_up()
            return True
        counts = Counts()
        for start in range(0, len(segment.inputs), self.drain_batch):
            if self._stopping.is_set():
                return True  # the segment stays: applied again next time (a no-op for what was committed)
            chunk = segment.inputs[start:start + self.drain_batch]
            try:
                counts.add(_within(self.commit_deadline * 6, lambda chunk=chunk: self.pipeline.process(chunk)))
            except TimeoutError:
                self._forget_connections()
                log.warning("cannot drain the spool yet: a commit of %d spooled events has not ended after %g s",
                            len(chunk), self.commit_deadline * 6)
                return False
            except DatabaseUnavailable as error:
                log.warning("cannot drain the spool yet: %s", error)
                return False
        self._database_up()  # committed: new events may go to the database whatever happens to the file below
        self.spool.consumed(segment)
        self.hooks.on_drained(counts)
        stats = self.spool.stats()
        log.info("drained %d spooled events (%d left)", counts.read, stats.records,
                 extra={**counts.as_dict(), "spool_records": stats.records})
        self._database_up()
        return True


def _within(seconds: float, function: Callable[[], T]) -> T:
    """`function()` on a thread of its own, waited for at most `seconds` (TimeoutError after: it is abandoned).

    A daemon thread per call: an abandoned call blocked on a dead connection must keep neither the next
    commit waiting behind it nor the process from exiting.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(function())
        except BaseException as error:  # handed to the waiting thread (or logged below if it gave up)
            future.set_exception(error)

    threading.Thread(target=run, name="receiver-db-commit", daemon=True).start()
    try:
        return future.result(timeout=seconds)
    except TimeoutError:
        future.add_done_callback(_log_late_end)
        raise


def _log_late_end(future: Future) -> None:
    error = future.exception()
    if error is None:
        log.info("an abandoned commit ended after all (its events were spooled too; applying them again is a no-op)")
    else:
        log.warning("an abandoned commit failed: %s", one_line(str(error)) or type(error).__name__)


def _settle(group: Sequence[tuple[Input, Future[str]]], result: str | None = None,
            error: BaseException | None = None) -> None:
    for _, future in group:
        try:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        except InvalidStateError:  # already settled or cancelled (uvicorn gave up on the request): nothing to say
            pass

"""Replay on several processes: this one reads, worker processes parse and commit (issue 16).

Replay in one process is bound by Python on one core (reading, parsing and
preparing rows take about twice the database's own time per event). Here the
reading process hands whole batches of raw inputs (bytes: cheap to send) to
`processes` worker processes; each parses its batch and commits it with its
own connection, through the same Pipeline as everywhere else. Batches commit
in any order, which the merge rules allow (any split of the events, applied in
any order, leaves the same tables), and writers take turns on the database
(store/batch.py's lock), so their parsing overlaps the other's writes.

What changes against one process, and only that:
- Batches are committed out of order. A batch the database cannot take stops
  the run (DatabaseUnavailable, as before), but a later batch may already be
  committed by then; replay is safe to repeat, so run it again.
- The totals arrive batch by batch in reading order (`on_batch`).
- At most 2 x `processes` batches are read ahead, so memory stays flat.
- A worker process that dies (killed, out of memory) stops the run with
  WorkerProcessDied; what was committed stays, and replay is safe to repeat.
- Ctrl-C or SIGTERM lets the batches in flight finish; a second Ctrl-C
  stops the workers at once (their transactions roll back).

Workers are spawned (not forked: the reading process holds connections and
threads), each with its own engine from the database URL, the same logging
settings, and the interpreter settings of `tuning.throughput_mode`.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field

from consumer.core import Counts, Input
from consumer.pipeline import Pipeline

log = logging.getLogger(__name__)

READ_AHEAD = 2  # batches per worker process, queued or running
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker process needs to build its Pipeline and log as the reading process does."""

    database_url: str
    store_user_names: bool
    history: bool
    log_level: str = "WARNING"
    log_format: str = "auto"
    log_levels: str = ""
    secrets: tuple[str, ...] = ()
    parent: int = field(default_factory=os.getpid)  # the reading process


class WorkerProcessDied(RuntimeError):
    """A worker process ended without a result (killed, out of memory): the run stops."""

    def __init__(self) -> None:
        super().__init__("a replay worker process ended abruptly (killed, or out of memory?); the batches committed "
                         "before it stay committed and replay is safe to repeat: run it again (with fewer "
                         "--processes or a smaller --batch-size if memory ran out)")


_pipeline: Pipeline | None = None


def _tie_to_parent(parent: int) -> None:
    """A worker ends with the reading process (`parent`): SIGTERM when it dies (Linux), and Ctrl-C is the reading
    process's to handle (a terminal sends it to the whole group): it lets the batches in flight finish, then stops.

    The worker starts with SIGINT blocked (`_spawning`), so a Ctrl-C during its start is not a traceback of its own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError) as error:  # no prctl: an orphan then ends when its queue closes
            log.warning("worker process not tied to its parent: %s", error)
        if os.getppid() != parent:  # the parent died before prctl (it may itself be PID 1, in a container)
            os._exit(1)


def _start_worker(setup: WorkerSetup) -> None:
    """In each worker process, once: tied to the reading process, logging, interpreter settings, an engine and a
    Pipeline."""
    global _pipeline
    _tie_to_parent(setup.parent)
    from consumer.logs import configure_logging
    from consumer.store.engine import make_engine
    from consumer.tuning import throughput_mode

    configure_logging(setup.log_level, setup.log_format, setup.log_levels, setup.secrets)
    throughput_mode().__enter__()  # for the life of the process
    _pipeline = Pipeline(make_engine(setup.database_url), setup.store_user_names, setup.history)


def _process(inputs: list[Input]) -> Counts:
    assert _pipeline is not None, "the worker process was not started"
    return _pipeline.process(inputs)  # DatabaseUnavailable travels back to the reading process


def process_batches(batches: Iterable[Sequence[Input]], setup: WorkerSetup, processes: int,
                    on_batch: Callable[[Counts], None] | None = None) -> Counts:
    """Parse and commit every batch on `processes` worker processes; returns the totals (see the module's notes)."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_start_worker, initargs=(setup,))
    try:
        with _terminate_as_interrupt():
            totals = _run(pool, batches, processes, on_batch)
    except BaseException:
        # A batch failed (or the run was interrupted): start nothing more, let the running batches end.
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except BaseException:  # a second Ctrl-C while they end: stop them now (their transactions roll back)
            _stop_now(pool)
            raise
        raise
    pool.shutdown(wait=True)
    return totals


def _run(pool: ProcessPoolExecutor, batches: Iterable[Sequence[Input]], processes: int,
         on_batch: Callable[[Counts], None] | None) -> Counts:
    totals = Counts()
    pending: deque[Future[Counts]] = deque()

    def take_oldest() -> None:
        try:
            counts = pending.popleft().result()
        except BrokenProcessPool as error:
            raise WorkerProcessDied() from error
        totals.add(counts)
        if on_batch is not None:
            on_batch(totals)

    for batch in batches:  # on an error, process_batches's shutdown cancels the batches not started
        with _spawning():  # submit starts a worker process when none is idle
            pending.append(pool.submit(_process, list(batch)))
        while len(pending) >= READ_AHEAD * processes:
            take_oldest()
    while pending:
        take_oldest()
    return totals


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (an orchestrator stopping the run) ends it as Ctrl-C does: the batches in flight finish, the workers
    end, and the exit is clean (no process or semaphore left behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _spawning() -> Iterator[None]:
    """SIGINT blocked in this thread while a worker process may be started: the worker inherits the mask, so a
    Ctrl-C before it has set its own handling (`_tie_to_parent`) waits for that and is then ignored there; here it
    is delivered as soon as the mask is restored (never lost)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Terminate the worker processes and leave without waiting for them (a second interruption)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public handle on them
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
    pool.shutdown(wait=False, cancel_futures=True)

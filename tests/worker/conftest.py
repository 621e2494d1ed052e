"""Fixtures of the in-process worker tests: a fake clock, a stub queue on it, and a worker to start."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from consumer.pipeline import Pipeline
from consumer.worker import Worker, WorkerOptions
from tests.worker.fake_clock import FakeClock
from tests.worker.harness import RecordingHooks, Running
from tests.worker.stub_queue import StubQueue

OPTIONS = WorkerOptions(receivers=1, wait_time_seconds=20, batch_size=100, flush_interval=0.5, shutdown_grace=10)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> StubQueue:
    return StubQueue(clock, visibility_timeout=30, max_receive_count=5)


@pytest.fixture
def hooks(clock: FakeClock) -> RecordingHooks:
    return RecordingHooks(clock)


@pytest.fixture
def start(clock: FakeClock, queue: StubQueue, hooks: RecordingHooks, sqlite_engine: Engine) -> Iterator[Callable[..., Running]]:
    """Start a worker on `queue` (or `on`), on SQLite unless `engine` or `pipeline` is given; stopped at the end of the test."""
    started: list[Running] = []

    def start_worker(engine: Engine | None = None, pipeline: Pipeline | None = None, on: StubQueue | None = None,
                     start: bool = True, **options: object) -> Running:
        pipeline = pipeline or Pipeline(engine or sqlite_engine)
        worker_options = WorkerOptions(**{**OPTIONS.__dict__, **options})  # type: ignore[arg-type]
        worker = Worker(on or queue, pipeline, worker_options, hooks=hooks, clock=clock)
        running = Running(worker, clock, start=start)
        started.append(running)
        return running

    yield start_worker
    for running in started:
        if running.thread.is_alive():
            gate = getattr(running.worker.pipeline, "gate", None)
            if gate is not None:
                gate.set()
            running.worker.stop()
            running.finish()


"""Replay events from files through the same pipeline the SQS worker uses.

Files that cannot be used whole (unreadable, damaged, not events) do not
stop the run: the reader reports them into a `ReadReport` and goes on, so
every batch read is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from sqlalchemy import Engine

from consumer.core import Counts, Input
from consumer.pipeline import Pipeline
from consumer.sources.files import ReadReport, read_inputs
from consumer.tuning import throughput_mode


def batched(inputs: Iterable[Input], size: int) -> Iterator[list[Input]]:
    iterator = iter(inputs)
    while batch := list(islice(iterator, size)):
        yield batch


def replay(
    paths: Iterable[str],
    engine: Engine,
    batch_size: int,
    on_batch: Callable[[Counts], None] | None = None,
    report: ReadReport | None = None,
    store_user_names: bool = True,
) -> Counts:
    """Apply every input found under `paths`; returns the totals.

    Parsing overlaps the database: while one thread commits batch N, the
    caller's thread reads and parses batch N+1. Memory stays flat: inputs
    are streamed and at most two batches are held. `on_batch` receives the
    running totals after each committed batch. Files that could not be
    read whole are listed in `report` (and logged, one line each).
    `store_user_names` false keeps students' ids only (see Pipeline).
    """
    pipeline = Pipeline(engine, store_user_names)
    totals = Counts()

    def committed(pending: Future[Counts]) -> None:
        totals.add(pending.result())  # re-raises DatabaseUnavailable from the writer
        if on_batch is not None:
            on_batch(totals)

    with throughput_mode(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer") as writer:
        pending: Future[Counts] | None = None
        for batch in batched(read_inputs(paths, report), batch_size):
            items = pipeline.parse(batch)
            if pending is not None:
                committed(pending)
            pending = writer.submit(pipeline.commit, items)
        if pending is not None:
            committed(pending)
    return totals

"""Replay events from files through the same pipeline the SQS worker uses.

Files that cannot be used whole (unreadable, damaged, not events) do not
stop the run: the reader reports them into a `ReadReport` and goes on, so
every batch read is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from sqlalchemy import Engine

from consumer.committer import Committer
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

    Parsing overlaps the database (`Committer`, as in the worker): while one
    thread commits batch N, the caller's thread reads and parses batch N+1,
    and a batch the database cannot take stops the run (DatabaseUnavailable)
    with the batches before it committed. Memory stays flat: inputs
    are streamed and at most two batches are held. `on_batch` receives the
    running totals after each committed batch. Files that could not be
    read whole are listed in `report` (and logged, one line each).
    `store_user_names` false keeps students' ids only (see Pipeline).
    """
    totals = Counts()
    with throughput_mode(), Committer[None](Pipeline(engine, store_user_names)) as committer:
        for commit in committer.commit_all(batched(read_inputs(paths, report), batch_size), tag=None):
            totals.add(commit.counts_or_raise())
            if on_batch is not None:
                on_batch(totals)
    return totals

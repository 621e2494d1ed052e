"""Replay events from files through the same pipeline the SQS worker uses."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from sqlalchemy import Engine

from consumer.pipeline import Counts, Pipeline
from consumer.sources import Input
from consumer.sources.files import read_inputs


def batched(inputs: Iterable[Input], size: int) -> Iterator[list[Input]]:
    iterator = iter(inputs)
    while batch := list(islice(iterator, size)):
        yield batch


def replay(
    paths: Iterable[str],
    engine: Engine,
    batch_size: int,
    on_batch: Callable[[Counts], None] | None = None,
) -> Counts:
    """Apply every input found under `paths`; returns the totals.

    Memory stays flat: inputs are streamed and only one batch is held.
    `on_batch` receives the running totals after each committed batch.
    """
    pipeline = Pipeline(engine)
    totals = Counts()
    for batch in batched(read_inputs(paths), batch_size):
        totals.add(pipeline.process(batch))
        if on_batch is not None:
            on_batch(totals)
    return totals

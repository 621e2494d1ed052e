"""Replay events from files and S3 archives through the same pipeline the SQS worker uses.

Files and objects that cannot be used whole (unreadable, damaged, not
events) do not stop the run: the readers report them into a `ReadReport` and
go on, so every batch read is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import groupby, islice
from typing import TypedDict

from sqlalchemy import Engine

from consumer.committer import Committer
from consumer.core import Counts, Input
from consumer.pipeline import Pipeline
from consumer.sources.files import ReadReport, read_inputs
from consumer.sources.s3 import S3Archive, is_s3_url
from consumer.tuning import throughput_mode


class WorkerLogging(TypedDict, total=False):
    """How worker processes log (consumer/parallel.py): the settings the command configured its own logging with."""

    log_level: str
    log_format: str
    log_levels: str
    secrets: tuple[str, ...]


def batched(inputs: Iterable[Input], size: int) -> Iterator[list[Input]]:
    iterator = iter(inputs)
    while batch := list(islice(iterator, size)):
        yield batch


def read_sources(sources: Iterable[str], report: ReadReport, s3: S3Archive | None = None) -> Iterator[Input]:
    """The inputs of local paths and s3:// URLs, source after source in the order given.

    The one place that tells the two apart, so `replay` and `send` read any
    mix of them. `s3` reads the URLs (its window, client and tally; a default
    one, made on the first URL, when None).
    """
    for remote, group in groupby(sources, is_s3_url):
        if remote:
            s3 = s3 if s3 is not None else S3Archive()
            yield from s3.read(group, report)
        else:
            yield from read_inputs(group, report)


def replay(
    paths: Iterable[str],
    engine: Engine,
    batch_size: int,
    on_batch: Callable[[Counts], None] | None = None,
    report: ReadReport | None = None,
    store_user_names: bool = True,
    s3: S3Archive | None = None,
    history: bool = True,
    processes: int = 1,
    worker_logging: WorkerLogging | None = None,
) -> Counts:
    """Apply every input found under `paths` (files, directories, s3:// URLs read by `s3`); returns the totals.

    Parsing overlaps the database (`Committer`, as in the worker): while one
    thread commits batch N, the caller's thread reads and parses batch N+1,
    and a batch the database cannot take stops the run (DatabaseUnavailable)
    with the batches before it committed. Memory stays flat: inputs
    are streamed and at most two batches are held. `on_batch` receives the
    running totals after each committed batch. Files and objects that could
    not be read whole are listed in `report` (and logged, one line each).
    `store_user_names` false keeps students' ids only, `history` false writes
    no history (see Pipeline).

    With `processes` above 1, on Postgres, worker processes parse and commit
    the batches this process reads (consumer/parallel.py: batches then commit
    out of order), logging as `worker_logging` says; SQLite, whose writers
    lock the whole file, always takes the single-process path.
    """
    totals = Counts()
    inputs = read_sources(paths, report if report is not None else ReadReport(), s3)
    if processes > 1 and engine.dialect.name == "postgresql":
        from consumer.parallel import WorkerSetup, process_batches

        setup = WorkerSetup(engine.url.render_as_string(hide_password=False), store_user_names, history,
                            **(worker_logging or {}))
        with throughput_mode():
            return process_batches(batched(inputs, batch_size), setup, processes, on_batch)
    with throughput_mode(), Committer[None](Pipeline(engine, store_user_names, history)) as committer:
        for commit in committer.commit_all(batched(inputs, batch_size), tag=None):
            totals.add(commit.counts_or_raise())
            if on_batch is not None:
                on_batch(totals)
    return totals

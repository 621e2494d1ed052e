"""The Committer, shared by replay and the worker: the next batch is parsed while the previous one commits, in order."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from consumer.committer import Committer
from consumer.core import DatabaseUnavailable, Input
from tests.worker.harness import GatedPipeline, progress_bodies, progress_rows, wait_for


def inputs(count: int, first_user: int = 1) -> list[Input]:
    return [Input(f"test:{first_user + n}", body) for n, body in enumerate(progress_bodies(count, first_user))]


class Recording(GatedPipeline):
    """Records on which thread, and while what, each parse and commit ran."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.log: list[tuple[str, str, int]] = []

    def parse(self, batch):
        self.log.append(("parse", threading.current_thread().name, len(batch)))
        return super().parse(batch)

    def commit(self, items):
        self.log.append(("commit", threading.current_thread().name, len(items)))
        return super().commit(items)


def test_the_next_batch_is_parsed_while_the_previous_one_commits(sqlite_engine):
    pipeline = Recording(sqlite_engine)
    with Committer[str](pipeline) as committer:
        committer.start(committer.parse(inputs(3)), "first")
        wait_for(pipeline.waiting.is_set, "the first commit to start")
        items = committer.parse(inputs(2, first_user=10))  # while the first commit waits at the gate
        assert committer.pending and not committer.finished()
        pipeline.gate.set()
        first = committer.result()
        committer.start(items, "second")
        second = committer.result()
    assert [(c.tag, c.counts.applied, c.error) for c in (first, second)] == [("first", 3, None), ("second", 2, None)]
    assert [entry[0] for entry in pipeline.log] == ["parse", "commit", "parse", "commit"]
    assert {thread for step, thread, _ in pipeline.log if step == "commit"} != {threading.current_thread().name}
    assert first.finished >= first.started and progress_rows(sqlite_engine) == 5


def test_commit_all_yields_every_commit_in_order(sqlite_engine):
    batches = [inputs(2, first_user=n * 10) for n in range(4)]
    with Committer[str](GatedPipeline(sqlite_engine)) as committer:
        committer.pipeline.gate.set()
        commits = list(committer.commit_all(batches, tag="replay"))
    assert [[item.source for item, _ in c.items] for c in commits] == [[i.source for i in b] for b in batches]
    assert sum(c.counts_or_raise().applied for c in commits) == 8


def test_a_failed_commit_is_returned_not_raised_and_nothing_of_it_is_committed(sqlite_engine):
    with sqlite_engine.begin() as connection:
        connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
    done = threading.Event()
    with Committer[None](GatedPipeline(sqlite_engine), on_done=done.set) as committer:
        committer.pipeline.gate.set()
        committer.start(committer.parse(inputs(2)), None)
        commit = committer.result()
    assert done.is_set() and not committer.busy
    assert isinstance(commit.error, DatabaseUnavailable) and commit.counts is None
    with pytest.raises(DatabaseUnavailable):
        commit.counts_or_raise()


def test_one_commit_at_a_time(sqlite_engine):
    with Committer[None](GatedPipeline(sqlite_engine)) as committer:
        committer.start([], None)
        with pytest.raises(RuntimeError, match="pending"):
            committer.start([], None)
        committer.pipeline.gate.set()
        committer.result()
        with pytest.raises(RuntimeError, match="no commit"):
            committer.result()

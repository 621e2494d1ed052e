"""The intake in-process: group commit, the spool while the database is down, draining, stopping.

A real Pipeline on a real SQLite database and a real Spool in tmp_path; only
"the database is down" is our own switch (`Switchable.down`), a stand-in for
the connection failures the end-to-end tests make with a cut TCP proxy.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, wait

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.backoff import Backoff
from consumer.core import Counts, DatabaseUnavailable, Input
from consumer.pipeline import Pipeline
from consumer.receiver.intake import COMMITTED, SPOOLED, Intake, IntakeHooks, Refused
from consumer.spool import Spool
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.synthetic import generate
from tests.helpers import apply_events, budget, dump_tables

pytestmark = pytest.mark.unit


class Switchable(Pipeline):
    """The real pipeline, whose database can be switched off (commit raises DatabaseUnavailable) and gated."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.down = False
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # a commit has started (and may be waiting at the gate)
        self.commits: list[int] = []

    def commit(self, items):
        self.entered.set()
        self.gate.wait(10)
        if self.down:
            raise DatabaseUnavailable("connection refused (test switch)")
        counts = super().commit(items)
        self.commits.append(len(items))
        return counts

    def probe(self) -> str | None:
        return "down" if self.down else None


class Recorder(IntakeHooks):
    def __init__(self) -> None:
        self.groups: list[int] = []
        self.spooled = 0
        self.drained = Counts()
        self.switches: list[bool] = []

    def on_committed(self, counts: Counts, group: int, seconds: float) -> None:
        self.groups.append(group)

    def on_spooled(self, group: int) -> None:
        self.spooled += group

    def on_drained(self, counts: Counts) -> None:
        self.drained.add(counts)

    def on_database(self, available: bool) -> None:
        self.switches.append(available)


def _database(tmp_path, name: str = "intake.db"):
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    upgrade(engine)
    return engine


def _intake(tmp_path, pipeline: Switchable, hooks: IntakeHooks | None = None, max_bytes: int = 64 << 20,
            commit_deadline: float = 10.0) -> Intake:
    spool = Spool(tmp_path / "spool", max_bytes)
    return Intake(pipeline, spool, max_batch=1000, hooks=hooks, backoff=Backoff(base=0.01, cap=0.05),
                  probe=pipeline.probe, commit_deadline=commit_deadline).start()


def _inputs(count: int, seed: int = 0) -> list[Input]:
    return [Input(f"https:test-{seed}-{i}", payload) for i, payload in enumerate(generate(count, seed))]


def _wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not predicate():
            if done.wait(0.01):
                raise AssertionError(f"timed out waiting for {what}")
    finally:
        deadline.cancel()


def test_concurrent_events_are_committed_in_groups_and_answered_after_their_commit(tmp_path):
    engine = _database(tmp_path)
    pipeline, hooks = Switchable(engine), Recorder()
    intake = _intake(tmp_path, pipeline, hooks)
    try:
        pipeline.gate.clear()  # the first group's commit waits: everything after it piles up behind it
        events = _inputs(200)
        first = intake.submit(events[0])
        assert pipeline.entered.wait(10)  # the first group (this one event) is committing, held at the gate
        rest = [intake.submit(item) for item in events[1:]]
        assert not any(future.done() for future in [first, *rest])  # nothing answered before its commit
        pipeline.gate.set()
        wait([first, *rest], timeout=20)
        assert {future.result() for future in [first, *rest]} == {COMMITTED}
    finally:
        intake.stop()
    assert sum(hooks.groups) == 200
    assert len(hooks.groups) < 200 and max(hooks.groups) > 1  # grouped, not one commit per event
    assert dump_tables(engine) == dump_tables(_reference(tmp_path, events))


def test_while_the_database_is_down_events_are_spooled_then_drained_when_it_is_back(tmp_path):
    engine = _database(tmp_path)
    pipeline, hooks = Switchable(engine), Recorder()
    intake = _intake(tmp_path, pipeline, hooks)
    events = _inputs(300, seed=1)
    try:
        pipeline.down = True
        futures = [intake.submit(item) for item in events]
        wait(futures, timeout=20)
        assert {future.result() for future in futures} == {SPOOLED}
        assert intake.spool.stats().records == 300
        assert not intake.database_ok
        pipeline.down = False
        _wait_for(lambda: intake.spool.stats().records == 0 and intake.database_ok, "the spool to drain")
        later = intake.submit(_inputs(1, seed=2)[0])
        assert later.result(timeout=20) == COMMITTED
    finally:
        intake.stop()
    assert hooks.switches == [False, True]
    assert hooks.drained.read == 300
    assert dump_tables(engine) == dump_tables(_reference(tmp_path, [*events, *_inputs(1, seed=2)]))


def test_a_commit_that_does_not_end_is_not_waited_for_its_group_is_spooled_within_the_deadline(tmp_path):
    """A database that stops answering (no error, no answer) must not hold requests past Canvas's 15 s."""
    engine = _database(tmp_path)
    pipeline, hooks = Switchable(engine), Recorder()
    intake = _intake(tmp_path, pipeline, hooks, commit_deadline=0.3)
    events = _inputs(20, seed=6)
    try:
        pipeline.gate.clear()  # the commit hangs
        futures = [intake.submit(item) for item in events]
        wait(futures, timeout=5)
        assert {future.result() for future in futures} == {SPOOLED}
        assert not intake.database_ok and hooks.switches == [False]
        pipeline.gate.set()  # the database answers again: the hung commit ends, the spool drains
        _wait_for(lambda: intake.spool.stats().records == 0 and intake.database_ok, "the spool to drain")
    finally:
        intake.stop()
    assert dump_tables(engine) == dump_tables(_reference(tmp_path, events))


def test_a_full_spool_refuses_with_503_and_keeps_what_it_acknowledged(tmp_path):
    engine = _database(tmp_path)
    pipeline = Switchable(engine)
    pipeline.down = True
    intake = _intake(tmp_path, pipeline, max_bytes=1 << 20)
    big = Input("https:big", b'{"metadata": {"event_name": "x"}, "body": {"pad": "' + b"a" * 200_000 + b'"}}')
    try:
        answers = []
        for _ in range(8):
            future = intake.submit(big)
            try:
                answers.append(future.result(timeout=20))
            except Refused as refusal:
                answers.append(refusal.kind)
        assert answers[:4] == [SPOOLED] * 4 and "spool_full" in answers
        assert intake.spool.stats().records == answers.count(SPOOLED)
        assert intake.spool_failing  # /readyz says not ready while appends are refused
    finally:
        intake.stop()


def test_stop_answers_every_queued_event_and_refuses_later_ones(tmp_path):
    engine = _database(tmp_path)
    pipeline = Switchable(engine)
    intake = _intake(tmp_path, pipeline)
    pipeline.gate.clear()
    futures = [intake.submit(item) for item in _inputs(50, seed=3)]
    stopper = threading.Thread(target=intake.stop)
    stopper.start()
    _wait_for(lambda: not intake.accepting, "the intake to stop accepting")
    late = intake.submit(_inputs(1, seed=4)[0])
    with pytest.raises(Refused):
        late.result(timeout=5)
    pipeline.gate.set()
    stopper.join(20)
    assert all(future.done() for future in futures)
    assert {future.result() for future in futures} == {COMMITTED}


def test_an_unexpected_error_in_the_write_path_spools_the_group_instead_of_losing_it(tmp_path):
    engine = _database(tmp_path)

    class Buggy(Switchable):
        def commit(self, items):
            if not self.down:
                return super().commit(items)
            raise KeyError("a bug")

    pipeline = Buggy(engine)
    pipeline.down = True
    intake = _intake(tmp_path, pipeline)
    try:
        assert intake.submit(_inputs(1, seed=5)[0]).result(timeout=20) == SPOOLED
        pipeline.down = False
        _wait_for(lambda: intake.spool.stats().records == 0, "the spool to drain")
    finally:
        intake.stop()
    assert dump_tables(engine) == dump_tables(_reference(tmp_path, _inputs(1, seed=5)))


@budget(15)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 40)), min_size=1, max_size=6), st.integers(0, 10_000))
def test_any_sequence_of_outages_ends_with_every_acknowledged_event_in_the_tables(tmp_path_factory, phases, seed):
    """The general rule: whatever the database does meanwhile, every event answered 2xx is applied in the end."""
    tmp_path = tmp_path_factory.mktemp("outages")
    engine = _database(tmp_path)
    pipeline = Switchable(engine)
    intake = _intake(tmp_path, pipeline)
    acknowledged: list[Input] = []
    try:
        for index, (down, count) in enumerate(phases):
            pipeline.down = down
            events = _inputs(count, seed=seed + index)
            futures: list[Future] = [intake.submit(item) for item in events]
            wait(futures, timeout=20)
            for item, future in zip(events, futures, strict=True):
                assert future.result() in (COMMITTED, SPOOLED)
                acknowledged.append(item)
        pipeline.down = False
        _wait_for(lambda: intake.spool.stats().records == 0 and intake.database_ok, "the spool to drain")
    finally:
        intake.stop()
    assert dump_tables(engine) == dump_tables(_reference(tmp_path, acknowledged))


def _reference(tmp_path, inputs: list[Input]):
    engine = _database(tmp_path, f"reference-{len(list(tmp_path.iterdir()))}.db")
    apply_events(engine, [item.payload for item in inputs])
    return engine


def test_a_second_stop_returns_at_once_even_while_a_commit_is_stuck(tmp_path):
    engine = _database(tmp_path)
    pipeline = Switchable(engine)
    intake = _intake(tmp_path, pipeline, commit_deadline=30.0)
    pipeline.gate.clear()  # the commit hangs, past the first stop's timeout
    intake.submit(_inputs(1, seed=7)[0])
    assert pipeline.entered.wait(10)
    intake.stop(timeout=0.2)
    started = threading.Event()
    done = threading.Event()

    def again() -> None:
        started.set()
        intake.stop(timeout=30.0)
        done.set()

    threading.Thread(target=again, daemon=True).start()
    assert started.wait(5) and done.wait(2)  # not another 30 s
    pipeline.gate.set()

"""`canvas-progress run` in-process, on the stub queue: the command builds the worker, reports its totals and its errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import text

import consumer.commands.worker
from consumer import cli
from consumer.clock import REAL_CLOCK
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.worker import Worker
from tests.worker.harness import progress_bodies
from tests.worker.stub_queue import StubQueue


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """cli.main configures the root logger for a process: give the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubQueue:
    """The queue `run` gets instead of SQS (real time: the command runs as it would in production)."""
    queue = StubQueue(REAL_CLOCK, visibility_timeout=1, max_receive_count=1)
    monkeypatch.setattr(consumer.commands.worker, "queue_from", lambda args, settings: queue)
    return queue


def run(database_url: str, *flags: str) -> int:
    return cli.main(["run", "--burst", "--json", "--database-url", database_url, "--metrics-port", "0",
                     "--wait-time-seconds", "0", "--flush-interval", "0.05", "--log-format", "json", *flags])


def test_run_consumes_the_queue_and_prints_its_totals(stub, sqlite_url, capsys):
    stub.send_bodies(*progress_bodies(3))
    assert run(sqlite_url) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals == {"read": 3, "applied": 3, "stale_or_duplicate": 0, "ignored": 0, "rejected": 0, "not_committed": 0}
    assert len(stub) == 0


def test_a_burst_that_could_not_commit_exits_1_and_counts_what_stays_on_the_queue(stub, sqlite_url, capsys):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
    engine.dispose()
    stub.send_bodies(*progress_bodies(3))
    assert run(sqlite_url, "--no-migrate") == 1
    assert json.loads(capsys.readouterr().out)["not_committed"] == 3
    assert len(stub.dead_letters) == 3


def test_a_queue_that_cannot_be_used_is_reported_as_the_queue_s_problem(stub, sqlite_url, capsys):
    stub.unusable = "An error occurred (AccessDenied) when calling the GetQueueAttributes operation: denied"
    assert run(sqlite_url) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"error: cannot use the queue {stub.url}: {stub.unusable}"


def test_a_bug_in_the_worker_is_reported_as_unexpected_not_as_the_queue_s(stub, sqlite_url, capsys, monkeypatch):
    def broken(self: Worker, commit: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(Worker, "_acknowledge", broken)
    stub.send_bodies(*progress_bodies(3))
    assert run(sqlite_url) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("error: unexpected ZeroDivisionError: division by zero") and "queue" not in last

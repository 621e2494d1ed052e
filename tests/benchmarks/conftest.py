"""Running `python -m benchmarks` in this process, and a database holding data that matters."""

from __future__ import annotations

import json
import logging

import pytest

from benchmarks.cli import main
from consumer.store.engine import make_engine
from consumer.tokens import create_token
from tests.benchmarks.tables import row_counts
from tests.factory import sample
from tests.helpers import apply_events


@pytest.fixture
def run(capsys, monkeypatch):
    """Run `python -m benchmarks ARGS` in this process, with `env` added to an environment without
    DATABASE_URL and SQS_QUEUE_URL; returns (exit status, stdout, stderr). The logging setup is put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SQS_QUEUE_URL", raising=False)

    def command(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse: --help, usage errors, no --database-url
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    yield command
    root.handlers[:], root.level = saved[0], saved[1]


@pytest.fixture
def figures(run):
    def command(*argv: str, env: dict[str, str] | None = None) -> dict:
        code, out, err = run(*argv[:1], "--json", *argv[1:], env=env)
        assert code == 0, err[-3000:]
        return json.loads(out)

    return command


@pytest.fixture
def database_with_rows(database):
    """A migrated Postgres database holding what a worker wrote (a course, a student's progress) and an API token."""
    engine = make_engine(database)
    apply_events(engine, [sample("course_completed")])
    create_token(engine, [79], "production dashboards")
    engine.dispose()
    before = row_counts(database)
    assert before["courses"] and before["api_tokens"]
    return database, before

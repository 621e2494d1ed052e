"""The benchmarks (`python -m benchmarks`, beside the package) run end to end and report every figure
(no thresholds: figures are for people).

The benchmarks write and empty the tracker's tables, so they never touch data
that matters: their database comes from --database-url only (never
DATABASE_URL, which names production in a worker's environment), it must
hold no row in any of the tracker's tables, and `replay --sqs` purges only a
queue named by --queue-url that holds no message. They are not part of the
product: neither the wheel nor `canvas-progress` carries them.
"""

import importlib
import json
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from benchmarks.cli import main
from consumer.store.engine import make_engine
from consumer.store.tables import metadata
from consumer.tokens import create_token
from tests.factory import sample
from tests.helpers import AWS_TEST_ENV, apply_events

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-pw"


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


def test_python_m_benchmarks_from_the_repository_root_reports_each_measurement(sqlite_url):
    """The way CI runs it: a subprocess in the repository root, with consumer installed and benchmarks not."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    result = subprocess.run([sys.executable, "-m", "benchmarks", "replay", "--json", "--events", "600", "--naive-events", "100",
                             "--database-url", sqlite_url], capture_output=True, timeout=600, cwd=ROOT, env=environment)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    figures = json.loads(result.stdout)
    assert figures["replay"]["events"] == 600 and figures["replay"]["events_per_second"] > 0
    assert figures["replay"]["peak_rss_mb"] > 0
    assert figures["naive"]["events"] == 100
    assert figures["reference"]["events"] == 600
    assert figures["ratios"]["replay_vs_naive"] > 0
    # it leaves its scratch database as it found it (empty), so it can run there again
    assert row_counts(sqlite_url) == dict.fromkeys(row_counts(sqlite_url), 0)


def test_replay_runs_again_on_the_database_it_emptied(figures, sqlite_url):
    for events in (100, 50):
        assert figures("replay", "--events", str(events), "--naive-events", "10", "--database-url", sqlite_url)["replay"]["events"] == events
        assert set(row_counts(sqlite_url).values()) == {0}


def test_replay_with_sqs_compares_the_worker_with_a_bare_loop(figures, make_queue, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    result = figures(
        "replay", "--events", "400", "--naive-events", "20", "--sqs", "--sqs-events", "300", "--rate", "100", "--duration", "2",
        "--queue-url", queue_url, "--endpoint-url", sqs_endpoint, "--database-url", new_pg_database(), env=AWS_TEST_ENV,
    )
    assert result["worker"]["events"] == 300 and result["bare_loop"]["events"] == 300
    assert result["latency"]["committed"] == 200
    assert 0 < result["latency"]["p99_seconds"] < 30
    assert result["ratios"]["worker_vs_bare_loop"] > 0


def test_bi_times_every_dashboard_query_and_a_report(figures, new_pg_database):
    from benchmarks.bi import QUERIES

    result = figures("bi", "--progress-rows", "100000", "--courses", "100", "--accounts", "5", "--database-url", new_pg_database())
    assert set(result["queries"]) == set(QUERIES)
    assert all(q["median_ms"] > 0 and q["plan"] for q in result["queries"].values())
    assert result["report"]["lines"] == 20 * 1000  # account 2: courses 2, 7, ..., 97, 1000 students each
    # aborted once a fifth was written; the runner may get a chunk or two further before it sees the abort
    assert result["abort"]["status"] == "aborted" and 4000 <= result["abort"]["lines_written_before_abort"] < 20000


def test_bi_refuses_sqlite(run, sqlite_url):
    code, _, err = run("bi", "--database-url", sqlite_url)
    assert code == 2 and "needs a Postgres" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["replay", "bi"])
def test_each_benchmark_explains_itself(run, command):
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "--database-url" in out and "DATABASE_URL" in out and "scratch" in out


def test_the_benchmarks_are_not_in_the_product():
    """Not in the wheel (pyproject's package list), not importable from consumer, not a canvas-progress command."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert packages and all(name == "consumer" or name.startswith("consumer.") for name in packages)
    assert not any(name == "benchmarks" or name.startswith(("benchmarks.", "consumer.bench")) for name in packages)
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "consumer").rglob("__init__.py")}
    assert on_disk <= set(packages)  # every package of the product still ships
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("consumer.bench")
    result = subprocess.run([sys.executable, "-m", "consumer", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "replay" in result.stdout and "bench" not in result.stdout
    for command in ("bench", "bench-bi"):
        result = subprocess.run([sys.executable, "-m", "consumer", command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "invalid choice" in result.stderr


def row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one() for t in metadata.sorted_tables}
    finally:
        engine.dispose()


def with_password(url: str) -> str:
    """The same database, with a password in the URL (the test server trusts local connections): it must never be printed."""
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


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


@pytest.mark.parametrize("command", [["replay", "--events", "100", "--naive-events", "10"], ["bi", "--progress-rows", "1000"]])
def test_a_benchmark_never_takes_its_database_from_database_url(run, command, database_with_rows):
    database, before = database_with_rows
    code, _, stderr = run(*command, env={"DATABASE_URL": with_password(database)})
    assert code == 2, stderr[-3000:]
    assert stderr.count("\n") == 1 and stderr.startswith("error: ")
    assert "--database-url" in stderr and "DATABASE_URL" in stderr
    assert SECRET not in stderr
    assert row_counts(database) == before


@pytest.mark.parametrize("command", [["replay", "--events", "100", "--naive-events", "10"], ["bi", "--progress-rows", "1000"]])
def test_a_benchmark_refuses_a_database_holding_rows(run, command, database_with_rows):
    database, before = database_with_rows
    code, _, stderr = run(*command, "--database-url", with_password(database))
    assert code == 2, stderr[-3000:]
    line = stderr.strip()
    assert len(stderr.splitlines()) == 1 and line.startswith("error: refusing to run")
    assert "table " in line and make_url(database).database in line and "***" in line
    assert SECRET not in line
    assert row_counts(database) == before


def test_any_of_the_trackers_tables_counts(run, database):
    """Rows only in the quarantine: still not a scratch database."""
    engine = make_engine(database)
    apply_events(engine, [b"{not json"])
    engine.dispose()
    code, _, stderr = run("replay", "--events", "100", "--database-url", database)
    assert code == 2 and "rejected_events" in stderr
    assert row_counts(database)["rejected_events"] == 1


def test_a_benchmark_refuses_a_sqlite_database_holding_rows(run, sqlite_engine, sqlite_url):
    create_token(sqlite_engine, [79])
    code, _, stderr = run("replay", "--events", "100", "--database-url", sqlite_url)
    assert code == 2 and "api_tokens" in stderr
    assert row_counts(sqlite_url)["api_tokens"] == 1


def test_replay_sqs_never_purges_the_queue_of_sqs_queue_url(run, make_queue, sqs_client, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    code, _, stderr = run("replay", "--events", "100", "--sqs", "--database-url", new_pg_database(),
                          env={**AWS_TEST_ENV, "SQS_QUEUE_URL": queue_url, "AWS_ENDPOINT_URL_SQS": sqs_endpoint})
    assert code == 2 and "--queue-url" in stderr, stderr[-3000:]


def test_replay_sqs_refuses_a_queue_holding_messages(run, make_queue, sqs_client, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    sqs_client.send_message(QueueUrl=queue_url, MessageBody="a message that matters")
    code, _, stderr = run("replay", "--events", "100", "--sqs", "--queue-url", queue_url, "--database-url", new_pg_database(),
                          env={**AWS_TEST_ENV, "AWS_ENDPOINT_URL_SQS": sqs_endpoint})
    assert code == 2 and queue_url in stderr, stderr[-3000:]
    received = sqs_client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in received] == ["a message that matters"]

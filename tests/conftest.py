"""Shared fixtures: real databases (SQLite file and Postgres) migrated by our own migrations.

Postgres: TEST_DATABASE_URL names a server and a user allowed to create
databases (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres);
without it a throwaway cluster is started from the local binaries. Tests
that need Postgres are never skipped: if no server can be had they fail.

The suite runs under pytest-xdist (`-n` in pyproject.toml): session fixtures
run once per worker, so every database, queue, role and port a test makes is
uniquely named, and what is shared on the machine (the ministack virtualenv)
is prepared under a file lock.

Markers: every test is `unit` or `integration` (rule in `is_integration`);
`python -m pytest -m unit` is the quick local loop.
"""

from __future__ import annotations

import ast
import fcntl
import functools
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from consumer.config import Settings
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.store.tables import metadata
from tests.factory import SampleExpectations
from tests.factory import sample_expectations as derive_sample_expectations
from tests.helpers import AWS_TEST_ENV
from tests.pg_cluster import ThrowawayCluster
from tests.sqs_server import CACHE, SqsServer, ministack_binary

POSTGRES_FIXTURES = {"postgres_server_url", "pg_database", "pg_engine", "new_pg_database"}
# Fixtures that start a server: the SQS emulator, the Reports API server.
SERVER_FIXTURES = {"sqs_endpoint", "api"}
# A module starts processes when it imports one of these (modules, or names from a module).
PROCESS_IMPORTS = {"subprocess", "pty", "tests.api.server", "tests.pg_cluster", "tests.helpers.cli", "tests.helpers.start_worker",
                   "tests.receiver.server", "tests.jwks_keys"}
# Tests that take longest (their modules), started first so that no worker is left with a long one at the end.
# Order only: a module missing here, or gone, changes nothing else.
SLOW_FIRST = [
    "tests/api/test_schemathesis.py", "tests/worker/test_end_to_end.py", "tests/receiver/test_receive_faults.py",
    "tests/test_replay_s3.py", "tests/test_misconfiguration.py",
    "tests/api/test_jobs.py", "tests/api/test_hostile_values.py", "tests/api/test_error_messages.py",
    "tests/reports/test_report_files.py", "tests/store/test_bi_role.py", "tests/test_quarantine.py", "tests/test_privacy.py",
    "tests/test_cli.py", "tests/benchmarks/test_run.py", "tests/api/test_hosts.py", "tests/test_logs.py",
    "tests/events/test_total_parsing.py",
]
# Modules whose tests share a module fixture but each take long: every worker that takes one of them sets the
# fixture up again (a server or a seeded database: a second or two), and the tests run side by side.
SPREAD = {"tests/api/test_schemathesis.py", "tests/api/test_hostile_values.py", "tests/api/test_error_messages.py",
          "tests/reports/test_report_files.py"}


def uses_postgres(item: pytest.Item) -> bool:
    """A Postgres fixture, or a parametrized fixture's postgresql case (`engine`, or one of a module's own)."""
    callspec = getattr(item, "callspec", None)
    return bool(set(getattr(item, "fixturenames", ())) & POSTGRES_FIXTURES) or (
        callspec is not None and any(isinstance(value, str) and value == "postgresql" for value in callspec.params.values())
    )


@functools.cache
def starts_processes(path: Path) -> bool:
    """Whether the module imports subprocess, pty, or a helper that starts the command line, a server or a cluster."""
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            names = {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        else:
            continue
        if names & PROCESS_IMPORTS:
            return True
    return False


def is_integration(item: pytest.Item) -> bool:
    """Integration: needs Postgres (a fixture, or a parametrized fixture's postgresql case), starts a server (a
    fixture), or lives in a module that starts processes. Every other test is a unit test: in-process, on
    SQLite files at most."""
    return (uses_postgres(item) or bool(set(getattr(item, "fixturenames", ())) & SERVER_FIXTURES)
            or starts_processes(item.path))


TESTS = Path(__file__).resolve().parent
MODULE_FIXTURE = re.compile(r"""scope=["'](module|package|class)["']""")


@functools.cache
def has_module_fixtures(module: str) -> bool:
    """Whether the test module (a path relative to the repository), or a conftest.py above it under tests/,
    defines a fixture shared by several tests (module, package or class scope)."""
    path = TESTS.parent / module
    places = [path, *(folder / "conftest.py" for folder in path.parents if folder == TESTS or TESTS in folder.parents)]
    return any(place.is_file() and MODULE_FIXTURE.search(place.read_text()) for place in places)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadscope, where a scope is a module only when the module shares a fixture between its tests (the
    API server, a seeded database, every case run at once) and is not in SPREAD: those run on one worker, set
    up once. Every other test is a scope of its own, sent to whichever worker is free. (xdist's loadgroup would
    say this with markers, but it does not group under pytest 9.2: pytest-dev/pytest-xdist#1386.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if has_module_fixtures(module) and module not in SPREAD else nodeid

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if uses_postgres(item):
            item.add_marker(pytest.mark.postgres)
        item.add_marker(pytest.mark.integration if is_integration(item) else pytest.mark.unit)
    first = {module: rank for rank, module in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: first.get(item.nodeid.split("::", 1)[0], len(first)))  # stable: the rest keep their order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Every test leaves the root logger as it found it. A command run in-process configures logging
    (consumer.logs.configure_logging replaces the root handlers, whose redacting filter turns a record's
    exc_info into text): left in place, it changed the records a later test's caplog saw in the same process."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


_skipped_postgres: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "postgres" in report.keywords:
        _skipped_postgres.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A skipped Postgres test would turn a broken store green: count it as a failure.
    if _skipped_postgres:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _skipped_postgres:
        terminalreporter.write_line(f"FAILED: {len(_skipped_postgres)} Postgres test(s) were skipped; they must run")


@pytest.fixture(scope="session")
def sample_expectations() -> SampleExpectations:
    """What sample_events/ holds (inputs, outcomes, rows per table, applied and stale in one batch), derived by
    parsing it with the pure parser: tests compare with these instead of numbers copied from a run."""
    return derive_sample_expectations()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield Settings(database_url=configured).database_url
        return
    cluster = ThrowawayCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def new_pg_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """A factory of empty Postgres databases, all dropped at the end of the session."""
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"canvas_progress_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_database(new_pg_database: Callable[[], str]) -> str:
    url = new_pg_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Engine]:
    engine = make_engine(pg_database)
    with engine.begin() as connection:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'course_progress.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each integration test runs on both databases."""
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture(scope="session")
def ministack() -> None:
    """The cached ministack virtualenv, created by one process at a time: xdist workers (and other test runs)
    wait on a file lock instead of racing to create and fill the same directory."""
    if os.environ.get("MINISTACK_BIN"):
        return
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / "ministack-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        ministack_binary()


@pytest.fixture(scope="session")
def sqs_endpoint(ministack: None) -> Iterator[str]:
    """A real SQS HTTP endpoint (ministack) for the whole session (one per xdist worker)."""
    server = SqsServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def sqs_client(sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    import boto3

    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_endpoint(sqs_endpoint: str) -> str:
    """A real S3 HTTP endpoint: the session's ministack, which serves S3 beside SQS."""
    return sqs_endpoint


@pytest.fixture
def s3_client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    import boto3

    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def make_queue(sqs_client):
    """Create a fresh queue (and its dead-letter queue); returns (queue_url, dlq_url)."""
    import json

    def create(visibility_timeout: int = 30, max_receive_count: int = 5) -> tuple[str, str]:
        name = f"canvas-live-events-{uuid.uuid4().hex[:10]}"
        dlq = sqs_client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
        attributes = {"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": redrive}
        return sqs_client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"], dlq

    return create


@pytest.fixture
def database(new_pg_database) -> str:
    """A migrated, empty Postgres database."""
    from consumer.store.migrate import upgrade

    url = new_pg_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url

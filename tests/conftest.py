"""Shared fixtures: real databases (SQLite file and Postgres) migrated by our own migrations.

Postgres: TEST_DATABASE_URL names a server and a user allowed to create
databases (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres);
without it a throwaway cluster is started from the local binaries. Tests
that need Postgres are never skipped: if no server can be had they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from consumer.config import Settings
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.store.tables import metadata
from tests.helpers import AWS_TEST_ENV
from tests.pg_cluster import ThrowawayCluster
from tests.sqs_server import SqsServer

POSTGRES_FIXTURES = {"postgres_server_url", "pg_database", "pg_engine", "new_pg_database"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        uses_pg_param = callspec is not None and callspec.params.get("engine") == "postgresql"
        if names & POSTGRES_FIXTURES or uses_pg_param:
            item.add_marker(pytest.mark.postgres)


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
def sqs_endpoint() -> Iterator[str]:
    """A real SQS HTTP endpoint (ministack) for the whole session."""
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

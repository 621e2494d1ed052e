"""Helpers shared by test modules: reading back what the store wrote, running the command line and the
worker, waiting on conditions, Hypothesis budgets, and a database that refuses one row."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, select, text

from consumer.core import Counts, Input
from consumer.pipeline import Pipeline
from consumer.store.tables import STATE_TABLES, rejected_events
from tests.factory import encode

AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def dump_tables(engine: Engine) -> dict[str, list[tuple]]:
    """Every tracked table's rows, ordered by primary key: what BI would see."""
    with engine.connect() as connection:
        return {
            table.name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))]
            for table in STATE_TABLES
        }


def rejected_rows(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(rejected_events).order_by(rejected_events.c.id))]


def apply_events(engine: Engine, events: list, batch_size: int = 1000) -> Counts:
    """Run events (dicts or raw bytes) through the real pipeline, in batches."""
    pipeline = Pipeline(engine)
    totals = Counts()
    inputs = [Input(f"test:{n}", e if isinstance(e, bytes) else encode(e)) for n, e in enumerate(events, 1)]
    for start in range(0, len(inputs), batch_size):
        totals.add(pipeline.process(inputs[start : start + batch_size]))
    return totals


FAST = ["--wait-time-seconds", "1", "--flush-interval", "0.3", "--log-format", "json", "--metrics-port", "0"]


def environment(endpoint: str, database_url: str) -> dict[str, str]:
    return {**os.environ, **AWS_TEST_ENV, "AWS_ENDPOINT_URL_SQS": endpoint, "DATABASE_URL": database_url}


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consumer", *args], env=env, capture_output=True, timeout=timeout)


def start_worker(queue_url: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    with open(log, "ab") as stream:
        return subprocess.Popen([sys.executable, "-m", "consumer", "run", "--queue-url", queue_url, *FAST, *args], env=env, stdout=stream, stderr=stream)


def on_queue(client, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def progress_rows(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM course_progress")).scalar_one()
    finally:
        engine.dispose()


HYPOTHESIS_LONG = os.environ.get("HYPOTHESIS_PROFILE", "") == "long"


def budget(examples: int) -> settings:
    """Hypothesis settings for `examples` examples, derandomized (a red build is reproducible);
    HYPOTHESIS_PROFILE=long: 25 times more, with fresh randomness and the example database."""
    return settings(
        max_examples=examples * 25 if HYPOTHESIS_LONG else examples,
        deadline=None,
        derandomize=not HYPOTHESIS_LONG,
        database=None if not HYPOTHESIS_LONG else settings.default.database,
        suppress_health_check=list(HealthCheck),
    )


def refuse_user_666(engine: Engine) -> None:
    """Make the database itself refuse one row (the way a constraint or a trigger would)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE course_progress ADD CONSTRAINT no_666 CHECK (user_id <> 666)"))
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER no_666 BEFORE INSERT ON course_progress WHEN NEW.user_id = 666 "
                    "BEGIN SELECT RAISE(ABORT, 'user 666 is refused'); END"
                )
            )


def undo_refusal(engine: Engine) -> None:
    """Take back `refuse_user_666`."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE course_progress DROP CONSTRAINT no_666"))
        else:
            connection.execute(text("DROP TRIGGER no_666"))

"""What the command modules share: one-line errors, the database and queue they open, SQS options."""

from __future__ import annotations

import argparse

from sqlalchemy import Engine

from consumer.config import Settings
from consumer.store.engine import make_engine
from consumer.store.migrate import current_revision, head_revision, upgrade


class CommandError(Exception):
    """A failure to report as one line, with an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def open_database(settings: Settings, migrate: bool) -> Engine:
    """An engine on a database whose schema is at head (upgrading it unless told not to)."""
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
        return engine
    with engine.connect() as connection:
        current = current_revision(connection)
    if current != head_revision():
        raise CommandError(
            f"the database schema is at {current or 'nothing'}, not {head_revision()}: "
            "run `canvas-progress migrate` (or drop --no-migrate)"
        )
    return engine


def migrated(settings: Settings) -> Engine:
    return open_database(settings, migrate=False)


def sqs_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue-url", dest="sqs_queue_url", help="SQS queue URL (env SQS_QUEUE_URL)")
    parser.add_argument(
        "--endpoint-url", help="SQS endpoint, e.g. a local emulator (default: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, or AWS)"
    )


def queue_from(args: argparse.Namespace, settings: Settings):  # noqa: ANN202
    from consumer.sources.sqs import SqsQueue, make_client

    if not settings.sqs_queue_url:
        raise CommandError("no queue: set SQS_QUEUE_URL or pass --queue-url", exit_code=2)
    return SqsQueue(make_client(args.endpoint_url, settings.sqs_queue_url), settings.sqs_queue_url)


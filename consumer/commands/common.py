"""What the command modules share: one-line errors, the database and queue they open, SQS options."""

from __future__ import annotations

import argparse

from sqlalchemy import Engine

from consumer.config import Settings
from consumer.settings_flags import add_setting_flag
from consumer.store.engine import make_engine
from consumer.store.migrate import current_revision, schema_problem, upgrade
from consumer.text import one_line


class CommandError(Exception):
    """A failure to report as one line, with an exit code (1: runtime, 2: usage or configuration)."""

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
        problem = schema_problem(current_revision(connection))
    if problem is not None:
        raise problem
    return engine


def at_current_schema(settings: Settings) -> Engine:
    """The database, which must already be at the newest schema revision (it is not migrated)."""
    return open_database(settings, migrate=False)


def check_can_listen(host: str, port: int, host_setting: str, port_setting: str) -> None:
    """Fail in one line before starting when the address cannot be bound (uvicorn would log and exit).

    `host_setting` and `port_setting` name the settings in the message, e.g. "API_HOST / --host".
    """
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise CommandError(f"cannot listen on {host} ({host_setting}): {error.strerror}", exit_code=2) from error
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as error:
            raise CommandError(f"cannot listen on {host}:{port} ({host_setting}, {port_setting}): {error.strerror}") from error


def sqs_options(parser: argparse.ArgumentParser, queue_url_help: str | None = None) -> None:
    """--queue-url (the setting sqs_queue_url; `queue_url_help` replaces its help) and --endpoint-url."""
    add_setting_flag(parser, "sqs_queue_url", help=queue_url_help)
    parser.add_argument(
        "--endpoint-url", help="SQS endpoint, e.g. a local emulator (default: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, or AWS)"
    )


# SQS error codes that mean "this queue does not exist" (query and JSON protocols).
_NO_SUCH_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_from(args: argparse.Namespace, settings: Settings, check: bool = True):
    """The queue named by --queue-url / SQS_QUEUE_URL; with `check`, it must exist and be reachable.

    Raises CommandError: exit 2 when the AWS configuration cannot work (no
    such profile, no credentials, a bad endpoint URL), 1 when the queue
    cannot be used (it does not exist, SQS cannot be reached or refuses).
    A principal that may send but not read the queue's attributes is let
    through: SendMessage is all `send` needs.
    """
    from consumer.core import ConfigurationError
    from consumer.sources.sqs import SqsQueue, make_client

    if not settings.sqs_queue_url:
        raise CommandError("no queue: set SQS_QUEUE_URL or pass --queue-url", exit_code=2)
    try:
        sqs = SqsQueue(make_client(args.endpoint_url, settings.sqs_queue_url), settings.sqs_queue_url)
    except ConfigurationError as error:
        raise CommandError(str(error), exit_code=2) from error
    if check:
        check_queue(sqs)
    return sqs


def check_queue(sqs) -> None:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    try:
        sqs.attributes("QueueArn")
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        if code in _NO_SUCH_QUEUE:
            raise CommandError(f"the queue {sqs.url} does not exist (SQS_QUEUE_URL / --queue-url)") from error
        if code in ("AccessDenied", "AccessDeniedException"):
            return  # may still be allowed to send or receive; the call that is refused will say so
        raise CommandError(f"cannot use the queue {sqs.url}: SQS refused ({code}): {one_line(message)}") from error
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise CommandError(
            f"no usable AWS credentials for the queue {sqs.url} ({one_line(str(error))}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance or pod role",
            exit_code=2,
        ) from error
    except BotoCoreError as error:
        raise CommandError(f"cannot reach the queue {sqs.url}: {one_line(str(error))}") from error


"""The `canvas-progress` / `python -m consumer` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from sqlalchemy.exc import OperationalError

from consumer import __version__
from consumer.commands import api, bench, database, ops, replay, worker
from consumer.commands.common import CommandError
from consumer.config import Settings
from consumer.logs import configure_logging
from consumer.pipeline import DatabaseUnavailable
from consumer.store.engine import display_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canvas-progress",
        description=(
            "Canvas LMS Live Events consumer: turns course, section and course-progress events "
            "into current tables (courses, course_sections, course_progress, users)."
        ),
        epilog="Settings come from the environment (DATABASE_URL, BATCH_SIZE, LOG_LEVEL, LOG_FORMAT); "
        "flags override them. Run `canvas-progress COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        help="SQLAlchemy database URL (env DATABASE_URL; default sqlite:///./course_progress.db). "
        "Postgres: postgresql+psycopg://user:password@host:5432/dbname",
    )
    common.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (env LOG_LEVEL; default INFO)")
    common.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        help="log lines on stderr (env LOG_FORMAT; default auto: text on a terminal, json otherwise)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for family in (database, replay, worker, ops, api, bench):
        family.register(commands, common)
    return parser


_SETTINGS = (
    "database_url", "batch_size", "log_level", "log_format", "sqs_queue_url",
    "receivers", "wait_time_seconds", "flush_interval", "shutdown_grace", "metrics_port",
    "api_host", "api_port", "report_workers", "report_lease", "public_url", "forwarded_allow_ips",
)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in _SETTINGS if getattr(args, name, None) is not None}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as error:
        print(f"error: invalid setting: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except (DatabaseUnavailable, OperationalError) as error:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        print(f"error: cannot use the database at {display_url(settings.database_url)}: {detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


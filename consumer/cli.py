"""The `canvas-progress` / `python -m consumer` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from consumer import __version__
from consumer.config import Settings
from consumer.console import ProgressLine, print_counts, print_table
from consumer.logs import configure_logging
from consumer.pipeline import DatabaseUnavailable
from consumer.store.engine import display_url, make_engine
from consumer.store.migrate import current_revision, head_revision, upgrade

log = logging.getLogger("consumer")


class CommandError(Exception):
    """A failure to report as one line, with an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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

    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="create or upgrade the tables to the newest schema",
        description="Upgrade the database schema to the newest revision (Alembic). Safe to run from "
        "several processes at once: on Postgres an advisory lock serialises them.",
    )
    migrate.set_defaults(handler=cmd_migrate)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="apply events from files (NDJSON, JSON array or object, gzip) to the tables",
        description="Apply Canvas Live Events from files or directories (recursively) to the tables. "
        "A file may be NDJSON/JSON Lines, a JSON array or JSON object(s), optionally gzip-compressed; "
        "'-' reads standard input. Malformed inputs are stored in rejected_events and do not stop the "
        "run. Exit status 0 when the run finished (rejections included), 1 when the database cannot "
        "be reached, 2 when a path does not exist.",
    )
    replay.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for stdin")
    replay.add_argument("--batch-size", type=int, help="events per transaction (env BATCH_SIZE; default 1000)")
    replay.add_argument("--json", action="store_true", help="print the end-of-run summary as JSON")
    replay.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    replay.set_defaults(handler=cmd_replay)

    summary = commands.add_parser(
        "summary",
        parents=[common],
        help="show per-course completion: students tracked, completed, completion rate",
        description="Print one row per tracked course: students with progress, how many completed, "
        "and the completion rate.",
    )
    summary.add_argument("--limit", type=int, help="show at most this many courses")
    summary.add_argument("--json", action="store_true", help="print the rows as JSON")
    summary.set_defaults(handler=cmd_summary)

    generate = commands.add_parser(
        "generate",
        help="write seeded synthetic events as NDJSON (load tests, demos)",
        description="Write N realistic synthetic Canvas Live Events as NDJSON to standard output: about 60%% "
        "progress/completed, 20%% section, 10%% course and 10%% untracked events, with 10%% duplicate "
        "deliveries, shuffled. The same seed gives the same events.",
    )
    generate.add_argument("--events", type=int, default=100_000, help="how many events (default 100000)")
    generate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    generate.add_argument("--courses", type=int, default=200, help="distinct courses (default 200)")
    generate.add_argument("--students", type=int, default=20_000, help="distinct students (default 20000)")
    generate.set_defaults(handler=cmd_generate)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in ("database_url", "batch_size", "log_level", "log_format")
        if getattr(args, name, None) is not None
    }
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


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with engine.connect() as connection:
        revision = current_revision(connection)
    print(f"database {display_url(settings.database_url)} is at schema revision {revision}")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.replay import replay
    from consumer.sources.files import missing_paths

    missing = missing_paths(args.paths)
    if missing:
        raise CommandError(f"no such file or directory: {', '.join(missing)}", exit_code=2)
    engine = open_database(settings, migrate=not args.no_migrate)
    progress = ProgressLine()
    started = time.monotonic()
    try:
        counts = replay(args.paths, engine, settings.batch_size, on_batch=progress.update)
    except OSError as error:  # unreadable file, broken gzip stream
        raise CommandError(f"cannot read input: {error}") from error
    finally:
        progress.close()
    seconds = time.monotonic() - started
    log.info("replay finished", extra={**counts.as_dict(), "seconds": round(seconds, 3)})
    if args.json:
        rate = counts.read / seconds if seconds > 0 else 0.0
        print(json.dumps({**counts.as_dict(), "seconds": round(seconds, 3), "events_per_second": round(rate, 1)}))
    else:
        print_counts(counts, seconds)
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.synthetic import generate

    out = sys.stdout.buffer
    for payload in generate(args.events, args.seed, args.courses, args.students):
        out.write(payload + b"\n")
    out.flush()
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.summary import HEADERS, course_summary

    engine = open_database(settings, migrate=False)
    try:
        with engine.connect() as connection:
            rows = course_summary(connection, args.limit)
    except DBAPIError as error:
        if isinstance(error, OperationalError):
            raise
        raise CommandError(f"cannot read the tables: {error.orig}") from error
    if args.json:
        print(json.dumps([dict(zip(HEADERS, row, strict=True)) for row in rows]))
    elif not rows:
        print("no courses tracked yet: replay some events first (canvas-progress replay sample_events/)")
    else:
        print_table(HEADERS, rows)
    return 0

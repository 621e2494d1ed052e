"""Commands about the database itself: migrate, summary, bi-role."""

from __future__ import annotations

import argparse
import json
import logging

from sqlalchemy.exc import DBAPIError, OperationalError

from consumer.commands.arguments import positive_int
from consumer.commands.common import CommandError, open_database
from consumer.config import Settings
from consumer.console import print_table
from consumer.store.engine import display_url, make_engine
from consumer.store.migrate import current_revision, upgrade
from consumer.text import one_line, safe_text

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="create or upgrade the tables to the newest schema",
        description="Upgrade the database schema to the newest revision (Alembic). Safe to run from "
        "several processes at once: on Postgres an advisory lock serialises them.",
    )
    migrate.set_defaults(handler=cmd_migrate)

    summary = commands.add_parser(
        "summary",
        parents=[common],
        help="show per-course completion: students tracked, completed, completion rate",
        description="Print one row per tracked course: students with progress, how many completed, "
        "and the completion rate.",
    )
    summary.add_argument("--limit", type=positive_int, help="show at most this many courses")
    summary.add_argument("--json", action="store_true", help="print the rows as JSON")
    summary.set_defaults(handler=cmd_summary)

    bi_role = commands.add_parser(
        "bi-role",
        parents=[common],
        help="create the read-only bi_reader role for BI tools (Postgres)",
        description="Create the NOLOGIN role bi_reader with SELECT on the tracked tables and the BI views "
        "(course_completion, account_completion, progress_distribution, data_freshness), and optionally a "
        "login user that is a member of it. Run it as a user allowed to create roles; safe to run again. "
        "The password is read from the BI_PASSWORD environment variable, never from the command line: a new "
        "login needs it; an existing login gets it when it is set and keeps its password when it is not.",
    )
    bi_role.add_argument("--login", help="also create this LOGIN user as a member of bi_reader (password from BI_PASSWORD; "
                         "without it an existing login keeps its password)")
    bi_role.set_defaults(handler=cmd_bi_role)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with engine.connect() as connection:
        revision = current_revision(connection)
    print(f"database {display_url(settings.database_url)} is at schema revision {revision}")
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


def cmd_bi_role(args: argparse.Namespace, settings: Settings) -> int:
    import os

    import psycopg

    from consumer.store.bi import grant_bi_reader

    engine = open_database(settings, migrate=False)
    try:
        statements = grant_bi_reader(engine, args.login, os.environ.get("BI_PASSWORD"))
    except ValueError as error:
        raise CommandError(str(error), exit_code=2) from error
    except DBAPIError as error:
        if isinstance(error, OperationalError):
            raise
        raise CommandError(f"cannot create the role: {one_line(str(error.orig))}") from error
    except psycopg.Error as error:  # the role statements run on the driver's connection: its errors come unwrapped
        if isinstance(error, psycopg.OperationalError):
            raise
        raise CommandError(f"cannot create the role: {one_line(str(error))}") from error
    for statement in statements:
        print(safe_text(statement) + ";")  # the login's name is the operator's, but may hold control characters
    return 0


"""Commands about the database itself: migrate, summary, bi-role, bi-settings."""

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
        description="Create the NOLOGIN role bi_reader with SELECT on the tracked tables (course_progress_history "
        "included), bi_settings and the BI views (course_completion, account_completion, progress_distribution, "
        "data_freshness, course_progress_daily, stalled_students), and optionally a "
        "login user that is a member of it. Run it as a user allowed to create roles; safe to run again. "
        "The password is read from the BI_PASSWORD environment variable, never from the command line: a new "
        "login needs it; an existing login gets it when it is set and keeps its password when it is not.",
    )
    bi_role.add_argument("--login", help="also create this LOGIN user as a member of bi_reader (password from BI_PASSWORD; "
                         "without it an existing login keeps its password)")
    bi_role.set_defaults(handler=cmd_bi_role)

    bi_settings = commands.add_parser(
        "bi-settings",
        parents=[common],
        help="show or change what the BI views read from bi_settings (the stalled_students threshold)",
        description="Print the settings the BI views read (the table bi_settings), or change them. "
        "stalled_students lists the students not completed whose newest progress event is older than "
        "--stalled-after-days days (14 until changed). The views read the table on every query: a change "
        "shows at once in every BI tool.",
    )
    bi_settings.add_argument("--stalled-after-days", type=days_argument, metavar="DAYS",
                             help="days without a progress event after which a student not completed is stalled (0-3650)")
    bi_settings.add_argument("--json", action="store_true", help="print the settings as JSON")
    bi_settings.set_defaults(handler=cmd_bi_settings)


def days_argument(text: str) -> int:
    """A whole number of days, 0 to 3650 (argparse type): ASCII digits only."""
    import re

    if not re.fullmatch(r"[0-9]{1,5}", text.strip()):
        shown = safe_text(repr(text if len(text) <= 20 else text[:20] + "..."))
        raise argparse.ArgumentTypeError(f"not a whole number of days (0 to 3650): {shown}")
    value = int(text.strip())
    if not 0 <= value <= 3650:
        raise argparse.ArgumentTypeError(f"{value} days is out of range: give 0 to 3650")
    return value


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



def cmd_bi_settings(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from consumer.store.tables import bi_settings

    engine = open_database(settings, migrate=False)
    try:
        with engine.begin() as connection:
            if args.stalled_after_days is not None:
                _set_row(connection, bi_settings, {"id": 1, "stalled_after_days": args.stalled_after_days})
            days = connection.execute(select(bi_settings.c.stalled_after_days).where(bi_settings.c.id == 1)).scalar()
    except DBAPIError as error:
        if isinstance(error, OperationalError):
            raise
        raise CommandError(f"cannot use bi_settings: {one_line(str(error.orig))}") from error
    if days is None:  # the row was deleted: the view falls back to its default
        days = STALLED_AFTER_DAYS
    if args.json:
        print(json.dumps({"stalled_after_days": days}))
    else:
        print(f"stalled_after_days = {days}")
    return 0


STALLED_AFTER_DAYS = 14  # what stalled_students uses while bi_settings has no row (migration 0008)


def _set_row(connection, table, values: dict) -> None:
    """Insert or replace the one row of a settings table."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(table).values(**values)
    connection.execute(insert.on_conflict_do_update(index_elements=["id"], set_={k: v for k, v in values.items() if k != "id"}))

"""Personal data: scrub-users clears the students' names and emails already stored."""

from __future__ import annotations

import argparse
import json
import logging

from consumer.commands.common import at_current_schema
from consumer.config import Settings

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    scrub = commands.add_parser(
        "scrub-users",
        parents=[common],
        help="set every stored student name and email to NULL, and delete report files that list them",
        description="Clear the personal data already stored about students: users.name and users.email become "
        "NULL (ids and event times stay; the tie ranks that progress events left, digests of their content, "
        "names included, keep only their completion bit), and the report files that list students' names (course_progress_csv) "
        "are deleted, their jobs marked deleted (a running one stops). Quarantined payloads are left as received, "
        "for `rejected retry`; `rejected purge --expired` removes them after REJECTED_RETENTION_DAYS. Set "
        "STORE_USER_NAMES=false (or --no-user-names) for the worker and replay first, or new events store names "
        "again. Exit status: 0 done, 1 the database failed, 2 a bad option.",
    )
    scrub.add_argument("--dry-run", action="store_true", help="count what would be cleared and deleted, change nothing")
    scrub.add_argument("--json", action="store_true", help="print the counts as JSON")
    scrub.set_defaults(handler=cmd_scrub_users)


def cmd_scrub_users(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.privacy import scrub_users

    result = scrub_users(at_current_schema(settings), dry_run=args.dry_run)
    if settings.store_user_names and not args.dry_run:
        log.warning("STORE_USER_NAMES is true: names and emails from events arriving from now on will be stored again")
    if args.json:
        print(json.dumps({**result.as_dict(), "rejected_retention_days": settings.rejected_retention_days}))
        return 0
    verb = ("would clear", "would delete") if args.dry_run else ("cleared", "deleted")
    print(f"{verb[0]} the name and email of {result.users:,} users; {verb[1]} {result.report_files:,} report files listing "
          f"students' names; quarantined payloads keep theirs until purged (REJECTED_RETENTION_DAYS="
          f"{settings.rejected_retention_days})")
    return 0

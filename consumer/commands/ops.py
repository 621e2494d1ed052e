"""Operations commands: status and the quarantine (rejected list, show, retry, purge)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone

from consumer.commands.arguments import id_argument, non_negative_int, positive_int
from consumer.commands.common import CommandError, at_current_schema, queue_from, sqs_options
from consumer.config import Settings
from consumer.console import print_table
from consumer.events.redact import REDACTED
from consumer.settings_flags import add_setting_flags
from consumer.store.engine import display_url, hide_password, make_engine
from consumer.text import safe_text

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status",
        parents=[common],
        help="queue depth, in-flight, dead letters, rejected count and data freshness; exit 1 if unhealthy",
        description="Report queue depth, in-flight and dead-letter messages (when SQS_QUEUE_URL is set), "
        "the receiver's spool (when SPOOL_DIR holds one), the number of quarantined inputs, and the newest event time per table with its lag. Exit status "
        "1 when something is unhealthy (database or queue unreachable, dead letters above --max-dead-letters, "
        "data older than --max-lag, a spooled event older than --max-spool-age), so cron jobs and monitors can use it.",
    )
    sqs_options(status)
    add_setting_flags(status, "rejected_retention_days", "spool_dir")
    status.add_argument("--max-spool-age", type=float, default=300.0,
                        help="unhealthy when the receiver's spool (SPOOL_DIR) holds an event older than this many "
                        "seconds (default 300)")
    status.add_argument("--max-lag", type=float, help="unhealthy when the newest event is older than this many seconds")
    status.add_argument("--max-dead-letters", type=int, default=0, help="unhealthy above this many dead letters (default 0)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=cmd_status)

    rejected = commands.add_parser(
        "rejected",
        help="inspect the quarantine (rejected_events), retry inputs after a fix, purge old ones",
        description="Inspect quarantined inputs, re-apply them after a fix, and purge old ones. The quarantine "
        "holds one row per distinct payload, with how often and when it was last seen. A retry parses each "
        "stored payload with the current code; inputs that now apply are written and removed from the "
        "quarantine in the same transaction, the others stay with their reason updated.",
    )
    rejected_commands = rejected.add_subparsers(dest="rejected_command", metavar="ACTION", required=True)
    listing = rejected_commands.add_parser("list", parents=[common], help="quarantined inputs, the most recently seen first")
    listing.add_argument("--limit", type=positive_int, default=50, help="how many (default 50)")
    listing.add_argument("--offset", type=non_negative_int, default=0, help="skip this many (default 0)")
    listing.add_argument("--json", action="store_true", help="print the rows as JSON")
    listing.set_defaults(handler=cmd_rejected_list)
    show = rejected_commands.add_parser("show", parents=[common], help="one quarantined input, with its payload")
    show.add_argument("id", type=id_argument, help="the rejected_events id")
    show.add_argument("--raw", action="store_true", help="write only the payload to stdout, byte for byte as received except "
                      "for credentials: the values of access_token and similar query parameters are stored as [redacted]")
    show.set_defaults(handler=cmd_rejected_show)
    retry = rejected_commands.add_parser("retry", parents=[common], help="re-apply quarantined inputs with the current code")
    retry.add_argument("ids", type=id_argument, nargs="*", metavar="ID", help="rejected_events ids to retry")
    retry.add_argument("--all", action="store_true", help="retry every quarantined input")
    retry.add_argument("--json", action="store_true", help="print the result as JSON")
    retry.set_defaults(handler=cmd_rejected_retry)
    purge = rejected_commands.add_parser(
        "purge",
        parents=[common],
        help="delete quarantined inputs last seen before a date (--before), older than the retention (--expired), or all",
        description="Delete quarantined inputs. Their payloads may hold personal data (names, emails): run "
        "`rejected purge --expired` daily (cron, the Kubernetes CronJob in deploy/) to keep them no longer than "
        "REJECTED_RETENTION_DAYS after they were last seen. Times are UTC.",
    )
    what = purge.add_mutually_exclusive_group()
    what.add_argument("--before", metavar="DATE", help="rows last seen before this ISO 8601 date or date-time, e.g. "
                      "2024-05-01 (midnight UTC) or 2024-05-01T12:00:00Z (no offset: UTC)")
    what.add_argument("--expired", action="store_true",
                      help="rows last seen more than REJECTED_RETENTION_DAYS (--rejected-retention-days) days ago")
    what.add_argument("--all", action="store_true", help="every row")
    add_setting_flags(purge, "rejected_retention_days")
    purge.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    purge.add_argument("--json", action="store_true", help="print the result as JSON")
    purge.set_defaults(handler=cmd_rejected_purge)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.status import collect

    # An unreachable or missing queue is part of the report (exit 1, unhealthy), not an error.
    sqs = queue_from(args, settings, check=False) if settings.sqs_queue_url else None
    status = collect(make_engine(settings.database_url), sqs, args.max_lag, args.max_dead_letters,
                     rejected_retention_days=settings.rejected_retention_days, spool_dir=settings.spool_dir,
                     max_spool_age=args.max_spool_age)
    # A driver's or the queue's error text may quote the database URL or pieces of its password.
    status.database = hide_password(status.database, settings.database_url)
    status.problems = [hide_password(problem, settings.database_url) for problem in status.problems]
    if args.json:
        print(status.as_json())
        return 0 if status.healthy else 1
    lines = [f"database       {display_url(settings.database_url)}: {status.database}"]
    if status.queue:
        lines += [f"queue          {status.queue}", f"  visible      {status.queue_visible}", f"  in flight    {status.queue_in_flight}",
                  f"  delayed      {status.queue_delayed}", f"dead letters   {status.dead_letter_visible} ({status.dead_letter_queue})"]
    lines.append(f"rejected       {status.rejected} distinct inputs ({status.rejected_deliveries} deliveries)"
                 + (f", {status.rejected_expired} past the retention" if status.rejected_expired else ""))
    if status.spool_dir is not None:
        age = status.spool_oldest_age_seconds
        lines.append(f"spool          {status.spool_records} events, {status.spool_bytes:,} bytes in {status.spool_dir}"
                     + (f" (oldest {age:,.0f}s)" if age is not None else ""))
    for table, newest in status.newest_event_time.items():
        lag = status.lag_seconds[table]
        lines.append(f"{table:<17}newest event {newest or '-'}" + (f"  (lag {lag:,.0f}s)" if lag is not None else ""))
    lines.append("healthy" if status.healthy else "UNHEALTHY: " + "; ".join(status.problems))
    print("\n".join(safe_text(line) for line in lines))  # error texts are the servers': escape what a terminal acts on
    return 0 if status.healthy else 1


def cmd_rejected_list(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import count_rejected, list_rejected

    with at_current_schema(settings).connect() as connection:
        rows = list_rejected(connection, args.limit, args.offset)
        total = count_rejected(connection)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    print_table(("id", "last_seen_at", "seen", "source", "event_name", "reason"),
                [(r["id"], r["last_seen_at"].isoformat(timespec="seconds"), r["times_seen"], r["source"], r["event_name"], _cut(r["reason"], 80))
                 for r in rows])
    print(f"{len(rows)} of {total} quarantined inputs (distinct payloads)")
    return 0


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_rejected_show(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import get_rejected

    with at_current_schema(settings).connect() as connection:
        row = get_rejected(connection, args.id)
    if row is None:
        raise CommandError(f"no rejected input with id {args.id}")
    if args.raw:
        if sys.stdout.isatty():
            # The bytes are the sender's: escape sequences in them would drive the terminal.
            raise CommandError("--raw writes the payload byte for byte, terminal escape sequences included: redirect it "
                               "(> payload.json, | jq), or leave out --raw to see it with control characters escaped", exit_code=2)
        sys.stdout.buffer.write(row["payload"])
        sys.stdout.buffer.flush()
        if REDACTED.encode() in row["payload"]:
            print(f"note: raw except for credentials: query parameters such as access_token were stored as {REDACTED}", file=sys.stderr)
        return 0
    for name in ("id", "received_at", "last_seen_at", "times_seen", "first_source", "source", "event_name", "receive_count", "reason"):
        print(f"{name:<14}{safe_text(str(row[name]))}")
    print(f"payload (as received, except credentials in query strings, stored as {REDACTED}):")
    # The payload is the sender's: escape what a terminal would act on (--raw gives the bytes).
    text = row["payload"].decode("utf-8", "backslashreplace")
    print("\n".join(safe_text(line) for line in text.split("\n")))
    return 0


def cmd_rejected_retry(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import retry

    if not args.ids and not args.all:
        raise CommandError("name the ids to retry, or pass --all", exit_code=2)
    result = retry(at_current_schema(settings), None if args.all else args.ids, store_user_names=settings.store_user_names,
                   history=settings.history)
    if args.json:
        print(json.dumps(result.__dict__))
    else:
        print(f"retried {result.retried}: {result.applied} applied and removed from the quarantine, "
              f"{result.still_rejected} still rejected" + (f", {result.missing} ids not found" if result.missing else ""))
    return 0


def parse_utc(option: str, text: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or date-time (UTC unless it names an offset)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{option}: not an ISO 8601 date or date-time, e.g. 2024-05-01 or 2024-05-01T12:00:00Z (got {text!r})", exit_code=2
        ) from None
    try:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except OverflowError:
        raise CommandError(f"{option}: out of the range of dates (got {text!r})", exit_code=2) from None


def cmd_rejected_purge(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import purge, retention_cutoff

    if args.before is not None:
        before: datetime | None = parse_utc("--before", args.before)
        scope = f"last seen before {before.isoformat()}"
    elif args.expired:
        before = retention_cutoff(settings.rejected_retention_days)
        scope = f"last seen before {before.isoformat()} (REJECTED_RETENTION_DAYS={settings.rejected_retention_days})"
    elif args.all:
        before, scope = None, "(all)"
    else:
        raise CommandError("say what to purge: --expired (older than REJECTED_RETENTION_DAYS), --before DATE, or --all", exit_code=2)
    deleted = purge(at_current_schema(settings), before, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"deleted": deleted, "last_seen_before": before.isoformat() if before else None, "dry_run": args.dry_run}))
    else:
        print(f"{'would purge' if args.dry_run else 'purged'} {deleted} quarantined inputs {scope}")
    return 0

"""Operations commands: status and the quarantine (rejected list, show, retry)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from consumer.commands.common import CommandError, migrated, queue_from, sqs_options
from consumer.config import Settings
from consumer.console import print_table
from consumer.store.engine import display_url, make_engine

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status",
        parents=[common],
        help="queue depth, in-flight, dead letters, rejected count and data freshness; exit 1 if unhealthy",
        description="Report queue depth, in-flight and dead-letter messages (when SQS_QUEUE_URL is set), "
        "the number of quarantined inputs, and the newest event time per table with its lag. Exit status "
        "1 when something is unhealthy (database or queue unreachable, dead letters above --max-dead-letters, "
        "data older than --max-lag), so cron jobs and monitors can use it.",
    )
    sqs_options(status)
    status.add_argument("--max-lag", type=float, help="unhealthy when the newest event is older than this many seconds")
    status.add_argument("--max-dead-letters", type=int, default=0, help="unhealthy above this many dead letters (default 0)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=cmd_status)

    rejected = commands.add_parser(
        "rejected",
        help="inspect the quarantine (rejected_events) and retry inputs after a fix",
        description="Inspect quarantined inputs and re-apply them after a fix. A retry parses each stored "
        "payload with the current code; inputs that now apply are written and removed from the quarantine "
        "in the same transaction, the others stay with their reason updated.",
    )
    rejected_commands = rejected.add_subparsers(dest="rejected_command", metavar="ACTION", required=True)
    listing = rejected_commands.add_parser("list", parents=[common], help="newest quarantined inputs first")
    listing.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many (default 0)")
    listing.add_argument("--json", action="store_true", help="print the rows as JSON")
    listing.set_defaults(handler=cmd_rejected_list)
    show = rejected_commands.add_parser("show", parents=[common], help="one quarantined input, with its payload")
    show.add_argument("id", type=int, help="the rejected_events id")
    show.add_argument("--raw", action="store_true", help="write only the payload, byte for byte, to stdout")
    show.set_defaults(handler=cmd_rejected_show)
    retry = rejected_commands.add_parser("retry", parents=[common], help="re-apply quarantined inputs with the current code")
    retry.add_argument("ids", type=int, nargs="*", metavar="ID", help="rejected_events ids to retry")
    retry.add_argument("--all", action="store_true", help="retry every quarantined input")
    retry.add_argument("--json", action="store_true", help="print the result as JSON")
    retry.set_defaults(handler=cmd_rejected_retry)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.status import collect

    sqs = queue_from(args, settings) if settings.sqs_queue_url else None
    status = collect(make_engine(settings.database_url), sqs, args.max_lag, args.max_dead_letters)
    if args.json:
        print(status.as_json())
    else:
        print(f"database       {display_url(settings.database_url)}: {status.database}")
        if status.queue:
            print(f"queue          {status.queue}")
            print(f"  visible      {status.queue_visible}")
            print(f"  in flight    {status.queue_in_flight}")
            print(f"  delayed      {status.queue_delayed}")
            print(f"dead letters   {status.dead_letter_visible} ({status.dead_letter_queue})")
        print(f"rejected       {status.rejected}")
        for table, newest in status.newest_event_time.items():
            lag = status.lag_seconds[table]
            print(f"{table:<17}newest event {newest or '-'}" + (f"  (lag {lag:,.0f}s)" if lag is not None else ""))
        print("healthy" if status.healthy else "UNHEALTHY: " + "; ".join(status.problems))
    return 0 if status.healthy else 1


def cmd_rejected_list(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import count_rejected, list_rejected

    with migrated(settings).connect() as connection:
        rows = list_rejected(connection, args.limit, args.offset)
        total = count_rejected(connection)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    print_table(("id", "received_at", "source", "event_name", "reason"),
                [(r["id"], r["received_at"].isoformat(timespec="seconds"), r["source"], r["event_name"], _cut(r["reason"], 90)) for r in rows])
    print(f"{len(rows)} of {total} quarantined inputs")
    return 0


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_rejected_show(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import get_rejected

    with migrated(settings).connect() as connection:
        row = get_rejected(connection, args.id)
    if row is None:
        raise CommandError(f"no rejected input with id {args.id}")
    if args.raw:
        sys.stdout.buffer.write(row["payload"])
        sys.stdout.buffer.flush()
        return 0
    for name in ("id", "received_at", "source", "event_name", "receive_count", "reason"):
        print(f"{name:<14}{row[name]}")
    print("payload:")
    print(row["payload"].decode("utf-8", "backslashreplace"))
    return 0


def cmd_rejected_retry(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import retry

    if not args.ids and not args.all:
        raise CommandError("name the ids to retry, or pass --all", exit_code=2)
    result = retry(migrated(settings), None if args.all else args.ids)
    if args.json:
        print(json.dumps(result.__dict__))
    else:
        print(f"retried {result.retried}: {result.applied} applied and removed from the quarantine, "
              f"{result.still_rejected} still rejected" + (f", {result.missing} ids not found" if result.missing else ""))
    return 0


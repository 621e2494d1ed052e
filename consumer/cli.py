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
    replay.add_argument("--batch-size", type=int, help="events per transaction (env BATCH_SIZE; default 5000)")
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

    run = commands.add_parser(
        "run",
        parents=[common],
        help="consume Live Events from SQS until stopped (the long-running worker)",
        description="Consume Canvas Live Events from an SQS queue: long-poll with several receivers, commit "
        "batches (at most --flush-interval after receipt), then delete the committed messages. Bad messages "
        "go to rejected_events and are deleted; when the database is down nothing is deleted and the worker "
        "backs off. SIGTERM/SIGINT finish the in-flight batch, release unstarted messages and exit 0. "
        "Region and credentials come from the standard AWS environment; AWS_ENDPOINT_URL_SQS or "
        "--endpoint-url point it at an emulator.",
    )
    _sqs_options(run)
    run.add_argument("--batch-size", type=int, help="most messages per transaction (env BATCH_SIZE; default 5000)")
    run.add_argument("--receivers", type=int, help="concurrent receive loops (env RECEIVERS; default 4)")
    run.add_argument("--wait-time-seconds", type=int, help="long-poll wait, 0-20 (env WAIT_TIME_SECONDS; default 20)")
    run.add_argument("--flush-interval", type=float, help="longest a message waits for its batch to start committing (env FLUSH_INTERVAL; default 0.5)")
    run.add_argument("--shutdown-grace", type=float, help="seconds to finish up after SIGTERM (env SHUTDOWN_GRACE; default 30)")
    run.add_argument("--metrics-port", type=int, help="port of /metrics, /healthz, /readyz (env METRICS_PORT; default 9100; 0: off)")
    run.add_argument("--burst", action="store_true", help="drain the queue, then exit 0 once it stays empty")
    run.add_argument("--json", action="store_true", help="print the totals as JSON on exit")
    run.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    run.set_defaults(handler=cmd_run)

    send = commands.add_parser(
        "send",
        parents=[common],
        help="enqueue events from files to SQS (backfills, demos)",
        description="Send events from the replay file formats to an SQS queue (SendMessageBatch), with the "
        "event_name and event_time message attributes Canvas sets. Inputs are sent as they are, malformed "
        "ones included, so the worker can quarantine them.",
    )
    _sqs_options(send)
    send.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for stdin")
    send.add_argument("--json", action="store_true", help="print the totals as JSON")
    send.set_defaults(handler=cmd_send)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="queue depth, in-flight, dead letters, rejected count and data freshness; exit 1 if unhealthy",
        description="Report queue depth, in-flight and dead-letter messages (when SQS_QUEUE_URL is set), "
        "the number of quarantined inputs, and the newest event time per table with its lag. Exit status "
        "1 when something is unhealthy (database or queue unreachable, dead letters above --max-dead-letters, "
        "data older than --max-lag), so cron jobs and monitors can use it.",
    )
    _sqs_options(status)
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

    bi_role = commands.add_parser(
        "bi-role",
        parents=[common],
        help="create the read-only bi_reader role for BI tools (Postgres)",
        description="Create the NOLOGIN role bi_reader with SELECT on the tracked tables and the BI views "
        "(course_completion, account_completion, progress_distribution, data_freshness), and optionally a "
        "login user that is a member of it. Run it as a user allowed to create roles; safe to run again. "
        "The password is read from the BI_PASSWORD environment variable, never from the command line.",
    )
    bi_role.add_argument("--login", help="also create this LOGIN user as a member of bi_reader (password from BI_PASSWORD)")
    bi_role.set_defaults(handler=cmd_bi_role)

    bench = commands.add_parser(
        "bench",
        parents=[common],
        help="measure replay (and the worker) against a naive consumer and the database's own limit",
        description="Generate N seeded synthetic events and measure, against the same database: (a) our "
        "replay, in its own process (events/s, peak RSS); (b) a naive tutorial consumer (json.loads, pydantic, "
        "ORM merge, commit per event) on a subset; (c) the write-path reference: the same rows written with "
        "no parsing (COPY + merge on Postgres). With --sqs, also (d) our worker against a bare "
        "receive+delete loop on the same queue and concurrency, and the receipt-to-commit latency of "
        "events arriving at --rate per second. The tables are emptied between measurements: use a "
        "scratch database.",
    )
    bench.add_argument("--events", type=int, default=100_000, help="events to generate (default 100000)")
    bench.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    bench.add_argument("--batch-size", type=int, help="events per transaction (env BATCH_SIZE; default 5000)")
    bench.add_argument("--naive-events", type=int, default=2000, help="events for the naive baseline (default 2000)")
    bench.add_argument("--sqs", action="store_true", help="also measure the worker on an SQS queue (needs --queue-url)")
    _sqs_options(bench)
    bench.add_argument("--receivers", type=int, help="receivers for the worker and the bare loop (default 4)")
    bench.add_argument("--sqs-events", type=int, default=20_000, help="events drained through SQS (default 20000)")
    bench.add_argument("--rate", type=int, default=500, help="arrival rate for the latency measurement (default 500/s)")
    bench.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals for the latency measurement (default 20)")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.set_defaults(handler=cmd_bench)

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


def _sqs_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue-url", dest="sqs_queue_url", help="SQS queue URL (env SQS_QUEUE_URL)")
    parser.add_argument(
        "--endpoint-url", help="SQS endpoint, e.g. a local emulator (default: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, or AWS)"
    )


_SETTINGS = (
    "database_url", "batch_size", "log_level", "log_format", "sqs_queue_url",
    "receivers", "wait_time_seconds", "flush_interval", "shutdown_grace", "metrics_port",
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


def _queue(args: argparse.Namespace, settings: Settings):  # noqa: ANN202
    from consumer.sources.sqs import SqsQueue, make_client

    if not settings.sqs_queue_url:
        raise CommandError("no queue: set SQS_QUEUE_URL or pass --queue-url", exit_code=2)
    return SqsQueue(make_client(args.endpoint_url, settings.sqs_queue_url), settings.sqs_queue_url)


def readiness(engine: Engine, sqs) -> tuple[bool, str]:  # noqa: ANN001
    """Can the worker do its job right now? (database and queue both answer)"""
    from sqlalchemy import text as sql

    problems = []
    try:
        with engine.connect() as connection:
            connection.execute(sql("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means not ready; the reason is reported
        problems.append(f"database: {str(error).splitlines()[0]}")
    try:
        sqs.visibility_timeout()
    except Exception as error:  # noqa: BLE001
        problems.append(f"queue: {str(error).splitlines()[0]}")
    return (not problems, "; ".join(problems) or "database and queue reachable")


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from consumer.backoff import Backoff
    from consumer.observability import HealthServer, Heartbeat
    from consumer.pipeline import Pipeline
    from consumer.worker import Worker, WorkerOptions, hard_exit_after

    sqs = _queue(args, settings)
    stopping = threading.Event()
    worker: Worker | None = None

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("received %s", signal.Signals(signum).name)
        hard_exit_after(settings.shutdown_grace)
        if worker is not None:
            worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    engine = make_engine(settings.database_url)
    heartbeat = Heartbeat()
    health = None
    if settings.metrics_port:
        health = HealthServer(settings.metrics_port, heartbeat, lambda: readiness(engine, sqs)).start()
    backoff = Backoff(base=1.0, cap=30.0)
    while not stopping.is_set():  # the database may come up after the worker: wait for it
        heartbeat.beat()
        try:
            if args.no_migrate:
                open_database(settings, migrate=False)
            else:
                upgrade(engine)
            break
        except (OperationalError, DatabaseUnavailable) as error:
            delay = backoff.next_delay()
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            log.error("database %s unavailable at start: %s; retrying in %.1fs", display_url(settings.database_url), detail, delay)
            stopping.wait(delay)
    if stopping.is_set():
        return 0
    options = WorkerOptions(
        receivers=settings.receivers,
        wait_time_seconds=settings.wait_time_seconds,
        batch_size=settings.batch_size,
        flush_interval=settings.flush_interval,
        shutdown_grace=settings.shutdown_grace,
        burst=args.burst,
    )
    worker = Worker(sqs, Pipeline(engine), options)
    worker.heartbeat = heartbeat
    try:
        totals = worker.run()
    except Exception as error:  # the queue itself is unusable (no such queue, no permission)
        raise CommandError(f"cannot use the queue {settings.sqs_queue_url}: {error}") from error
    finally:
        if health is not None:
            health.stop()
    if args.json:
        print(json.dumps(totals.as_dict()))
    return 0


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.replay import batched
    from consumer.sources.files import missing_paths, read_inputs
    from consumer.sources.sqs import message_attributes

    missing = missing_paths(args.paths)
    if missing:
        raise CommandError(f"no such file or directory: {', '.join(missing)}", exit_code=2)
    sqs = _queue(args, settings)
    sent = failed = 0
    progress = ProgressLine()
    started = time.monotonic()
    try:
        for chunk in batched(read_inputs(args.paths), 100):
            bad = sqs.send([(item.payload, message_attributes(item.payload)) for item in chunk])
            for index in bad:
                log.error("could not send %s", chunk[index].source)
            failed += len(bad)
            sent += len(chunk) - len(bad)
            progress.update_text(f"{sent:,} sent  {failed:,} failed  {sent / max(time.monotonic() - started, 1e-9):,.0f} messages/s")
    finally:
        progress.close()
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps({"sent": sent, "failed": failed, "seconds": round(seconds, 3)}))
    else:
        print(f"sent {sent:,} messages ({failed:,} failed) in {seconds:.2f}s")
    return 1 if failed else 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.bench import run as bench

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.sqs and not settings.sqs_queue_url:
        raise CommandError("--sqs needs a queue: set SQS_QUEUE_URL or pass --queue-url", exit_code=2)
    engine = open_database(settings, migrate=True)
    say(f"generating {args.events:,} events (seed {args.seed})")
    folder, path = bench.scratch_file(args.events, args.seed)
    results: dict[str, bench.Result] = {}
    with folder:
        bench.empty_tables(engine)
        say("measuring our replay")
        results["replay"] = bench.our_replay(settings.database_url, path, settings.batch_size)
        bench.empty_tables(engine)
        say("measuring the write-path reference")
        results["reference"] = bench.write_path_reference(engine, path, settings.batch_size)
        bench.empty_tables(engine)
        say(f"measuring the naive consumer on {min(args.naive_events, args.events):,} events")
        results["naive"] = bench.naive_baseline(engine, path, min(args.naive_events, args.events))
        if args.sqs:
            sqs = _queue(args, settings)
            count = min(args.sqs_events, args.events)
            sqs_folder, sqs_path = bench.scratch_file(count, args.seed)
            with sqs_folder:
                bench.empty_tables(engine)
                say(f"measuring our worker and a bare receive+delete loop on {count:,} messages")
                results["worker"], results["bare_loop"] = bench.worker_against_bare_loop(
                    engine, sqs, sqs_path, settings.receivers, settings.batch_size
                )
                bench.empty_tables(engine)
                say(f"measuring latency at {args.rate}/s for {args.duration:.0f}s")
                results["latency"] = bench.latency_at_rate(engine, sqs, path, args.rate, args.duration, settings.receivers)
        bench.empty_tables(engine)
    replay_rate = results["replay"].rate
    ratios = {
        "replay_vs_naive": round(replay_rate / results["naive"].rate, 1) if results["naive"].rate else None,
        "replay_vs_reference": round(replay_rate / results["reference"].rate, 3) if results["reference"].rate else None,
    }
    if "worker" in results:
        ratios["worker_vs_bare_loop"] = round(results["worker"].rate / results["bare_loop"].rate, 3)
    if args.json:
        print(json.dumps({"events": args.events, "seed": args.seed, **{k: r.as_dict() for k, r in results.items()}, "ratios": ratios}))
        return 0
    for result in results.values():
        extra = "  ".join(f"{k}={v}" for k, v in result.extra.items())
        print(f"{result.name:<24}{result.rate:>12,.0f} events/s  {result.events:>10,} events in {result.seconds:8.2f}s  {extra}")
    for name, value in ratios.items():
        print(f"{name:<24}{value!s:>12}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.status import collect

    sqs = _queue(args, settings) if settings.sqs_queue_url else None
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


def _migrated(settings: Settings) -> Engine:
    return open_database(settings, migrate=False)


def cmd_rejected_list(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.quarantine import count_rejected, list_rejected

    with _migrated(settings).connect() as connection:
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

    with _migrated(settings).connect() as connection:
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
    result = retry(_migrated(settings), None if args.all else args.ids)
    if args.json:
        print(json.dumps(result.__dict__))
    else:
        print(f"retried {result.retried}: {result.applied} applied and removed from the quarantine, "
              f"{result.still_rejected} still rejected" + (f", {result.missing} ids not found" if result.missing else ""))
    return 0


def cmd_bi_role(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from consumer.store.bi import grant_bi_reader

    engine = open_database(settings, migrate=False)
    try:
        statements = grant_bi_reader(engine, args.login, os.environ.get("BI_PASSWORD"))
    except ValueError as error:
        raise CommandError(str(error), exit_code=2) from error
    except DBAPIError as error:
        if isinstance(error, OperationalError):
            raise
        raise CommandError(f"cannot create the role: {str(error.orig).splitlines()[0]}") from error
    for statement in statements:
        print(statement + ";")
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

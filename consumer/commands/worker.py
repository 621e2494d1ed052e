"""Commands that talk to SQS: run (the worker) and send."""

from __future__ import annotations

import argparse
import json
import logging
import time

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from consumer.commands.common import CommandError, open_database, queue_from, sqs_options
from consumer.config import Settings
from consumer.console import ProgressLine
from consumer.core import DatabaseUnavailable
from consumer.events.reasons import one_line
from consumer.store.engine import display_url, hide_password, make_engine
from consumer.store.migrate import upgrade

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    sqs_options(run)
    run.add_argument("--batch-size", type=int, help="most messages per transaction (env BATCH_SIZE; default 5000)")
    run.add_argument("--receivers", type=int, help="concurrent receive loops (env RECEIVERS; default 4)")
    run.add_argument("--wait-time-seconds", type=int, help="long-poll wait, 0-20 (env WAIT_TIME_SECONDS; default 20)")
    run.add_argument("--flush-interval", type=float, help="longest a message waits for its batch to start committing (env FLUSH_INTERVAL; default 0.5)")
    run.add_argument("--shutdown-grace", type=float, help="seconds to finish up after SIGTERM (env SHUTDOWN_GRACE; default 30)")
    run.add_argument("--metrics-port", type=int, help="port of /metrics, /healthz, /readyz (env METRICS_PORT; default 9100; 0: off)")
    run.add_argument("--metrics-host",
                     help="address of /metrics, /healthz, /readyz (env METRICS_HOST; default 127.0.0.1; 0.0.0.0 in a container)")
    run.add_argument("--no-user-names", dest="store_user_names", action="store_const", const=False,
                     help="store students' ids only, never their names or emails (env STORE_USER_NAMES=false)")
    run.add_argument(
        "--burst", action="store_true",
        help="drain the queue, then exit once it stays empty: 0 when everything received was committed, "
        "1 when some messages could not be committed (they stay on the queue)",
    )
    run.add_argument("--json", action="store_true", help="print the totals as JSON on exit")
    run.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    run.set_defaults(handler=cmd_run)

    send = commands.add_parser(
        "send",
        parents=[common],
        help="enqueue events from files to SQS (backfills, demos)",
        description="Send events from the replay file formats to an SQS queue (SendMessageBatch), with the "
        "event_name and event_time message attributes Canvas sets. Inputs are sent byte for byte, malformed "
        "ones included, so the worker can quarantine them; an input SQS cannot carry (not valid UTF-8, or a "
        "character SQS refuses) is never altered: it is named on stderr, counted as failed, and the run exits 1.",
    )
    sqs_options(send)
    send.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for stdin")
    send.add_argument("--json", action="store_true", help="print the totals as JSON")
    send.set_defaults(handler=cmd_send)


def readiness(engine: Engine, sqs, database_url: str) -> tuple[bool, str]:
    """Can the worker do its job right now? (database and queue both answer) The reason is for the log only."""
    from sqlalchemy import text as sql

    problems = []
    try:
        with engine.connect() as connection:
            connection.execute(sql("SELECT 1"))
    except Exception as error:  # any failure means not ready; the reason is logged
        problems.append(f"database {display_url(database_url)}: {one_line(str(getattr(error, 'orig', None) or error))}")
    try:
        sqs.visibility_timeout()
    except Exception as error:
        problems.append(f"queue {sqs.url}: {one_line(str(error))}")
    return (not problems, hide_password("; ".join(problems), database_url) or "database and queue reachable")


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from consumer.backoff import Backoff
    from consumer.observability import HealthServer, Heartbeat
    from consumer.pipeline import Pipeline
    from consumer.worker import Worker, WorkerOptions, hard_exit_after

    sqs = queue_from(args, settings)
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
        try:
            health = HealthServer(settings.metrics_port, heartbeat, lambda: readiness(engine, sqs, settings.database_url),
                                  host=settings.metrics_host).start()
        except OSError as error:  # an address this machine does not have, a name that does not resolve, a port in use
            raise CommandError(
                f"cannot listen on {settings.metrics_host} port {settings.metrics_port} (METRICS_HOST / --metrics-host, "
                f"METRICS_PORT / --metrics-port): {error.strerror or error}", exit_code=2,
            ) from error
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
            detail = hide_password(one_line(str(getattr(error, "orig", None) or error)), settings.database_url)
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
    worker = Worker(sqs, Pipeline(engine, settings.store_user_names), options)
    worker.heartbeat = heartbeat
    try:
        totals = worker.run()
    except Exception as error:  # the queue itself is unusable (no such queue, no permission)
        raise CommandError(f"cannot use the queue {settings.sqs_queue_url}: {error}") from error
    finally:
        if health is not None:
            health.stop()
    not_committed = len(worker.not_committed)
    if args.json:
        print(json.dumps({**totals.as_dict(), "not_committed": not_committed}))
    if not_committed:
        # Stopped while holding messages no batch could commit: they are still on the queue.
        log.error("%d messages could not be committed and stay on the queue for redelivery", not_committed)
    return 1 if not_committed and args.burst else 0


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    """Send every input as it is; one that SQS cannot carry unchanged is reported by source and not sent.

    Exit 1 at the end when an input was not sent or a file could not be read whole (one line each above).
    """
    from consumer.replay import batched
    from consumer.sources.files import ReadReport, display_name, missing_paths, read_inputs
    from consumer.sources.sqs import message_attributes

    missing = missing_paths(args.paths)
    if missing:
        raise CommandError(f"no such file or directory: {', '.join(map(display_name, missing))}", exit_code=2)
    sqs = queue_from(args, settings)
    report = ReadReport()
    sent = failed = 0
    progress = ProgressLine()
    started = time.monotonic()
    try:
        for chunk in batched(read_inputs(args.paths, report), 100):
            failures = sqs.send([(item.payload, message_attributes(item.payload)) for item in chunk])
            for failure in failures:
                log.error("not sent %s: %s", chunk[failure.index].source, failure.reason)
            failed += len(failures)
            sent += len(chunk) - len(failures)
            progress.update_text(f"{sent:,} sent  {failed:,} failed  {sent / max(time.monotonic() - started, 1e-9):,.0f} messages/s")
    finally:
        progress.close()
    seconds = time.monotonic() - started
    files = report.as_dict()
    if args.json:
        print(json.dumps({"sent": sent, "failed": failed, **files, "seconds": round(seconds, 3)}))
    else:
        skipped = "".join(f", {count:,} {key.replace('_', ' ')}" for key, count in files.items() if count)
        print(f"sent {sent:,} messages ({failed:,} failed{skipped}) in {seconds:.2f}s")
    not_whole = report.not_whole
    if failed or not_whole:
        problems = [f"{failed:,} inputs not sent"] if failed else []
        problems += [f"{not_whole:,} files not read whole"] if not_whole else []
        raise CommandError(f"{' and '.join(problems)} (see the lines above)")
    return 0


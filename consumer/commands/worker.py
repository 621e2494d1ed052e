"""Commands that talk to SQS: run (the worker) and send."""

from __future__ import annotations

import argparse
import json
import logging
import time

from consumer.commands.common import CommandError, open_database, queue_from, sqs_options
from consumer.commands.replay import SOURCE_HELP, SourcesProgress, add_window_flags, check_sources, not_whole_message
from consumer.config import Settings
from consumer.settings_flags import add_setting_flags
from consumer.store.engine import make_engine
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
    add_setting_flags(run, "batch_size", "receivers", "wait_time_seconds", "flush_interval", "shutdown_grace",
                      "metrics_port", "metrics_host", "store_user_names", "history")
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
        help="enqueue events from files or S3 to SQS (backfills, demos)",
        description="Send events from the replay file formats, in files or S3 objects (s3://BUCKET/PREFIX, "
        "--since/--until as for replay), to an SQS queue (SendMessageBatch), with the "
        "event_name and event_time message attributes Canvas sets. Inputs are sent byte for byte, malformed "
        "ones included, so the worker can quarantine them; an input SQS cannot carry (not valid UTF-8, or a "
        "character SQS refuses) is never altered: it is named on stderr, counted as failed, and the run exits 1.",
    )
    sqs_options(send)
    send.add_argument("paths", nargs="+", metavar="PATH", help=SOURCE_HELP)
    add_window_flags(send)
    send.add_argument("--json", action="store_true", help="print the totals as JSON")
    send.set_defaults(handler=cmd_send)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Build the worker from the settings, run it until it stops (consumer.worker owns signals and shutdown), report."""
    from consumer.observability import HealthServer, PrometheusHooks
    from consumer.pipeline import Pipeline
    from consumer.readiness import worker_ready
    from consumer.sources.sqs import QueueUnavailable
    from consumer.worker import Worker, WorkerOptions

    sqs = queue_from(args, settings)
    engine = make_engine(settings.database_url)

    def prepare_database() -> None:  # the worker retries it while the database is unavailable
        if args.no_migrate:
            open_database(settings, migrate=False).dispose()
        else:
            upgrade(engine)

    hooks = PrometheusHooks()
    options = WorkerOptions.from_settings(settings, burst=args.burst)
    worker = Worker(sqs, Pipeline(engine, settings.store_user_names, settings.history), options, hooks=hooks, prepare=prepare_database,
                    handle_signals=True)
    health = None
    if settings.metrics_port:
        try:
            health = HealthServer(settings.metrics_port, hooks.heartbeat, lambda: worker_ready(engine, sqs),
                                  host=settings.metrics_host).start()
        except OSError as error:  # an address this machine does not have, a name that does not resolve, a port in use
            raise CommandError(
                f"cannot listen on {settings.metrics_host} port {settings.metrics_port} (METRICS_HOST / --metrics-host, "
                f"METRICS_PORT / --metrics-port): {error.strerror or error}", exit_code=2,
            ) from error
    try:
        totals = worker.run()
    except QueueUnavailable as error:  # no such queue, no permission; anything else is not the queue's fault
        raise CommandError(f"cannot use the queue {sqs.url}: {error}") from error
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

    Exit 1 at the end when an input was not sent or a file or S3 object could not be read whole (one line
    each above).
    """
    from consumer.replay import batched, read_sources
    from consumer.sources.files import ReadReport
    from consumer.sources.sqs import message_attributes

    s3 = check_sources(args)
    sqs = queue_from(args, settings)
    report = ReadReport()
    sent = failed = 0
    progress = SourcesProgress(s3.tally if s3 is not None else None)
    started = time.monotonic()
    try:
        for chunk in batched(read_sources(args.paths, report, s3), 100):
            failures = sqs.send([(item.payload, message_attributes(item.payload)) for item in chunk])
            for failure in failures:
                log.error("not sent %s: %s", chunk[failure.index].source, failure.reason)
            failed += len(failures)
            sent += len(chunk) - len(failures)
            progress.update_text(f"{sent:,} sent  {failed:,} failed  {sent / max(time.monotonic() - started, 1e-9):,.0f} messages/s")
    finally:
        progress.close()
    seconds = time.monotonic() - started
    files = {**report.as_dict(), **(s3.tally.as_dict() if s3 is not None else {})}
    if args.json:
        print(json.dumps({"sent": sent, "failed": failed, **files, "seconds": round(seconds, 3)}))
    else:
        skipped = "".join(f", {count:,} {key.replace('_', ' ')}" for key, count in files.items() if count)
        print(f"sent {sent:,} messages ({failed:,} failed{skipped}) in {seconds:.2f}s")
    not_whole = report.not_whole
    if failed or not_whole:
        problems = [f"{failed:,} inputs not sent"] if failed else []
        problems += [f"{not_whole_message(not_whole, s3 is not None)} not read whole"] if not_whole else []
        raise CommandError(f"{' and '.join(problems)} (see the lines above)")
    return 0


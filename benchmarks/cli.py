"""`python -m benchmarks`: the command line of the benchmarks (the measurements live beside it, in this package).

It is consumer's command line with another parser: the settings, the
one-line errors and the exit statuses are those of `canvas-progress`
(consumer.cli.main). One rule is its own: the database comes from
--database-url only, checked while parsing, before anything is opened.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine

from consumer import cli
from consumer.commands.arguments import positive_int
from consumer.commands.common import CommandError, queue_from, sqs_options
from consumer.config import Settings
from consumer.settings_flags import add_setting_flag, add_setting_flags, setting_help
from consumer.store.engine import display_url, make_engine
from consumer.store.migrate import upgrade

log = logging.getLogger("consumer")

PROG = "python -m benchmarks"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, build_parser())


class Parser(cli.Parser):
    """consumer's parser (usage errors as one line, exit status 2), refusing a command line without --database-url."""

    def parse_args(self, args=None, namespace=None):  # argparse's signature
        parsed = super().parse_args(args, namespace)
        problem = missing_database_url(parsed.command, parsed.database_url, os.environ)
        if problem:
            self.exit(cli.USAGE, f"error: {problem}\n")
        return parsed


def missing_database_url(command: str, database_url: str | None, environ: Mapping[str, str]) -> str | None:
    """Why the command line cannot run (no --database-url; DATABASE_URL is never used), or None."""
    if database_url:
        return None
    message = f"{PROG} {command} needs --database-url naming a scratch database: it empties the tracker's tables"
    configured = environ.get("DATABASE_URL")
    if configured:
        message += f"; it never uses DATABASE_URL (set here, to {display_url(configured)})"
    return message


DATABASE_URL_HELP = (
    "the scratch database (required; never taken from DATABASE_URL): empty or new, since the benchmark writes "
    "and empties the tracker's tables. Postgres: postgresql+psycopg://user:password@host:5432/dbname"
)
QUEUE_URL_HELP = "the scratch queue --sqs uses (required with it; never taken from SQS_QUEUE_URL): empty, since it is purged"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="The benchmarks of canvas-progress, run from the repository root (they are not installed with "
        "the package). Each writes and empties the tracker's tables, so it runs only on a scratch database named "
        "by --database-url (never DATABASE_URL) that holds no row in those tables.",
        epilog=f"Run `{PROG} COMMAND --help` for a command's options. Exit status: 0 done, 1 the database or the "
        "queue failed or refused, 2 a bad flag, setting or path, no --database-url, or a database (or queue) "
        "holding data; errors are one line on stderr.",
    )
    common = cli.common_options(DATABASE_URL_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="measure replay (and the worker) against a naive consumer and the database's own limit",
        description="Generate N seeded synthetic events and measure, against the same database: (a) our "
        "replay, in its own process (events/s, peak RSS); (b) a naive tutorial consumer (json.loads, pydantic, "
        "ORM merge, commit per event) on a subset; (c) the write-path reference: the same rows written with "
        "no parsing (COPY + merge on Postgres); (d) on Postgres, the physical reference: only the progress rows, "
        "made beforehand, binary COPY into a bare table with no trigger and one newest-wins merge per 50,000 rows, "
        "and the same with the progress events' history rows in a second bare table. "
        "With --sqs, also (e) our worker against a bare "
        "receive+delete loop on the same queue and concurrency, and the receipt-to-commit latency of "
        "events arriving at --rate per second. The tables are emptied between measurements, so the "
        "database must be named by --database-url (never DATABASE_URL) and hold no row in the tracker's tables; "
        "likewise --sqs purges the queue, which must be named by --queue-url and be empty.",
    )
    replay.add_argument("--events", type=positive_int, default=100_000, help="events to generate (default 100000)")
    replay.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_setting_flags(replay, "batch_size")
    replay.add_argument("--naive-events", type=positive_int, default=2000, help="events for the naive baseline (default 2000)")
    replay.add_argument("--sqs", action="store_true", help="also measure the worker on an SQS queue (needs --queue-url)")
    sqs_options(replay, QUEUE_URL_HELP)
    add_setting_flag(replay, "receivers", help=setting_help("receivers", "receivers for the worker and the bare loop"))
    replay.add_argument("--sqs-events", type=positive_int, default=20_000, help="events drained through SQS (default 20000)")
    replay.add_argument("--rate", type=positive_int, default=500, help="arrival rate for the latency measurement (default 500/s)")
    replay.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals for the latency measurement (default 20)")
    replay.add_argument("--json", action="store_true", help="print the figures as JSON")
    replay.set_defaults(handler=cmd_replay)

    receive = commands.add_parser(
        "receive",
        parents=[common],
        help="measure the HTTPS receiver: signed events from concurrent senders, and the spool",
        description="Start a real `canvas-progress receive` on loopback and POST N signed events (RS256, a key made "
        "here) from --senders concurrent keep-alive connections: events/s, p50/p99 request latency, 2xx'd events, "
        "and whether every 2xx'd event is in the tables afterwards (checked key by key against the pure merge). "
        "With --spool-events, also fill the spool of a receiver whose database is unreachable, then time a new "
        "receiver draining it into the database. The database must be a scratch one named by --database-url.",
    )
    receive.add_argument("--events", type=positive_int, default=40_000, help="signed events to send (default 40000)")
    receive.add_argument("--senders", type=positive_int, default=64, help="concurrent connections (default 64)")
    receive.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    receive.add_argument("--spool-events", type=int, default=20_000,
                         help="events for the spool measurement, 0 to skip it (default 20000)")
    receive.add_argument("--json", action="store_true", help="print the figures as JSON")
    receive.set_defaults(handler=cmd_receive)

    bi_command = commands.add_parser(
        "bi",
        parents=[common],
        help="time the dashboard views and report jobs at scale (Postgres scratch database)",
        description="Load --progress-rows course_progress rows (default 1,000,000) over --courses courses in "
        "--accounts accounts, then print the median and worst time of each dashboard query (with --plans, "
        "its EXPLAIN ANALYZE plan), the throughput of an account-wide course_progress_csv report, and how "
        "long a running report takes to stop after an abort. It writes and empties the tracker's tables, so the "
        "database must be named by --database-url (never DATABASE_URL) and hold no row in them.",
    )
    bi_command.add_argument("--progress-rows", type=positive_int, default=1_000_000, help="course_progress rows (default 1000000)")
    bi_command.add_argument("--courses", type=positive_int, default=2000, help="courses (default 2000)")
    bi_command.add_argument("--accounts", type=positive_int, default=40, help="accounts (default 40)")
    bi_command.add_argument("--plans", action="store_true", help="also print each query's plan")
    bi_command.add_argument("--json", action="store_true", help="print the figures as JSON")
    bi_command.set_defaults(handler=cmd_bi)

    trend_command = commands.add_parser(
        "trend",
        parents=[common],
        help="time the daily trend view (course_progress_daily) at 10,000,000 history rows (Postgres scratch database)",
        description="Load --history-rows rows of course_progress_history (default 10,000,000; courses of 20 to 2,000 "
        "students over a term, in --accounts accounts, written in time order), fill course_progress_daily_changes "
        "with daily.rebuild, VACUUM ANALYZE, then print the median and worst time of the trend queries a BI tool "
        "sends (a typical course, the largest course, four weeks of one course, one account day by day and week by "
        "week) with the server's default "
        "settings, whether JIT compiled them, and their plans (with --plans). With --compare-view, the same queries "
        "on a view created in the scratch database only, computing the same figures directly from the history "
        "(it fails if the two views return different rows). It writes and empties the tracker's tables, so the database must be named "
        "by --database-url (never DATABASE_URL) and hold no row in them.",
    )
    trend_command.add_argument("--history-rows", type=positive_int, default=10_000_000,
                               help="course_progress_history rows (default 10000000)")
    trend_command.add_argument("--accounts", type=positive_int, default=100, help="accounts (default 100)")
    trend_command.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    trend_command.add_argument("--repeats", type=positive_int, default=7, help="timed runs of each query (default 7)")
    trend_command.add_argument("--compare-view", action="store_true",
                               help="also time a view computing the same figures from the history")
    trend_command.add_argument("--plans", action="store_true", help="also print each query's plan")
    trend_command.add_argument("--json", action="store_true", help="print the figures as JSON")
    trend_command.set_defaults(handler=cmd_trend)

    from benchmarks import dashboard

    dashboard.add_command(commands, common)
    return parser


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks import run as bench

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.sqs and not args.sqs_queue_url:
        raise CommandError(f"{PROG} replay --sqs needs --queue-url naming a scratch queue: it purges it (it never uses SQS_QUEUE_URL)", exit_code=2)
    sqs = None
    if args.sqs:
        from benchmarks.scratch import NotAScratchQueue, refuse_unless_empty_queue

        sqs = queue_from(args, settings)
        try:
            refuse_unless_empty_queue(sqs, f"{PROG} replay")
        except NotAScratchQueue as error:
            raise CommandError(str(error), exit_code=2) from error
    engine = scratch_database(settings, f"{PROG} replay")
    say(f"generating {args.events:,} events (seed {args.seed})")
    folder, path = bench.scratch_file(args.events, args.seed)
    results: dict[str, bench.Result] = {}
    with folder, emptied_after(engine):
        bench.empty_tables(engine)
        say("measuring our replay")
        results["replay"] = bench.our_replay(settings.database_url, path, settings.batch_size)
        bench.empty_tables(engine)
        say("measuring our replay in one process (REPLAY_PROCESSES=1)")
        results["replay_one_process"] = bench.our_replay(settings.database_url, path, settings.batch_size, processes=1)
        results["replay_one_process"].name = "our replay, one process"
        bench.empty_tables(engine)
        say("measuring our replay with HISTORY=false")
        results["replay_no_history"] = bench.our_replay(settings.database_url, path, settings.batch_size, history=False)
        bench.empty_tables(engine)
        say("measuring the write-path reference")
        results["reference"] = bench.write_path_reference(engine, path, settings.batch_size)
        bench.empty_tables(engine)
        if engine.dialect.name == "postgresql":  # a COPY reference: Postgres only
            say("measuring the physical reference (bare table, binary COPY + merge per 50,000 rows, no triggers)")
            results["physical"] = bench.physical_reference(engine, path)
            say("measuring the physical reference with the history rows (a second bare table, in the same transactions)")
            results["physical_history"] = bench.physical_reference(engine, path, history=True)
        say(f"measuring the naive consumer on {min(args.naive_events, args.events):,} events")
        results["naive"] = bench.naive_baseline(engine, path, min(args.naive_events, args.events))
        if sqs is not None:
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
    replay_rate = results["replay"].rate
    ratios = {
        "replay_vs_naive": round(replay_rate / results["naive"].rate, 1) if results["naive"].rate else None,
        "replay_vs_reference": round(replay_rate / results["reference"].rate, 3) if results["reference"].rate else None,
        # The stricter, independent reference (issue 16: at least 0.5).
        "replay_vs_physical": round(replay_rate / results["physical"].rate, 3) if "physical" in results and results["physical"].rate else None,
        # How much of the physical reference the history's rows alone take from it (no Python, no trigger).
        "physical_history_vs_physical": round(results["physical_history"].rate / results["physical"].rate, 3)
        if "physical" in results and results["physical"].rate else None,
        # What keeping the history costs: the share of replay's throughput it takes.
        "history_cost": round(1 - replay_rate / results["replay_no_history"].rate, 3) if results["replay_no_history"].rate else None,
    }
    if "worker" in results:
        ratios["worker_vs_bare_loop"] = round(results["worker"].rate / results["bare_loop"].rate, 3)
    if args.json:
        print(json.dumps({"events": args.events, "seed": args.seed, **{k: r.as_dict() for k, r in results.items()}, "ratios": ratios}))
        return 0
    width = max(len(name) for name in [*(result.name for result in results.values()), *ratios]) + 2
    for result in results.values():
        extra = "  ".join(f"{k}={v}" for k, v in result.extra.items())
        print(f"{result.name:<{width}}{result.rate:>12,.0f} events/s  {result.events:>10,} events in {result.seconds:8.2f}s  {extra}")
    for name, value in ratios.items():
        print(f"{name:<{width}}{value!s:>12}")
    return 0


def cmd_receive(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks import receive as bench

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    engine = scratch_database(settings, f"{PROG} receive")
    figures: dict[str, object] = {}
    with emptied_after(engine):
        figures["throughput"] = bench.throughput(engine, settings.database_url, args.events, args.senders, args.seed, say)
        if args.spool_events > 0:
            from benchmarks.run import empty_tables

            empty_tables(engine)
            figures["spool"] = bench.spool(engine, settings.database_url, args.spool_events, args.senders, args.seed, say)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, values in figures.items():
            print(f"{name}: " + "  ".join(f"{key}={value}" for key, value in values.items()))
    problems = [name for name, values in figures.items() if not values["all_present"]]
    if problems:
        raise CommandError(f"2xx'd events missing from the tables after: {', '.join(problems)}")
    return 0


def scratch_database(settings: Settings, command: str) -> Engine:
    """The --database-url engine, once it is known to hold no data of the tracker's; migrated."""
    from benchmarks.scratch import NotAScratchDatabase, refuse_unless_empty

    engine = make_engine(settings.database_url)
    try:
        refuse_unless_empty(engine, command)  # before migrating: not even the schema of a real database is touched
    except NotAScratchDatabase as error:
        engine.dispose()
        raise CommandError(str(error), exit_code=2) from error
    upgrade(engine)
    return engine


@contextmanager
def emptied_after(engine: Engine) -> Iterator[None]:
    """Empty the tables at the end, however the benchmark ends: they were empty at the start, all rows are its own.
    Then close the engine's connections."""
    from benchmarks.run import empty_tables

    try:
        yield
    finally:
        try:
            empty_tables(engine)
        except Exception:  # the benchmark's own error, if any, is the one to report
            log.warning("could not empty the benchmark's tables", exc_info=True)
        engine.dispose()


def cmd_bi(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    if engine.dialect.name != "postgresql":
        raise CommandError(f"{PROG} bi needs a Postgres --database-url (a scratch database: it empties the tables)", exit_code=2)
    engine = scratch_database(settings, f"{PROG} bi")
    with emptied_after(engine):
        return _bi(args, engine)


def _bi(args: argparse.Namespace, engine: Engine) -> int:
    from benchmarks import bi

    print(f"loading {args.progress_rows:,} progress rows over {args.courses:,} courses in {args.accounts} accounts",
          file=sys.stderr, flush=True)
    loaded = bi.load(engine, args.progress_rows, args.courses, args.accounts)
    print("timing the dashboard queries", file=sys.stderr, flush=True)
    queries = bi.time_queries(engine)
    account = 7 % args.accounts
    print(f"running an account-wide course_progress_csv report (account {account})", file=sys.stderr, flush=True)
    report = bi.report_run(engine, account)
    abort = bi.abort_latency(engine, account, after_lines=max(1, report["lines"] // 5))
    figures = {"progress_rows": args.progress_rows, "load_seconds": round(loaded, 1), "queries": queries,
               "report": report, "abort": abort}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for name, result in queries.items():
        print(f"{name:28} median {result['median_ms']:8.2f} ms   worst {result['max_ms']:8.2f} ms")
        if args.plans:
            print("    " + "\n    ".join(result["plan"]))
    print(f"report: {report['lines']:,} lines in {report['seconds']} s ({report['lines_per_second']:,} lines/s, "
          f"{report['file_mb']} MB)")
    print(f"abort: the running report stopped {abort['stopped_after_s']} s after the abort, at line "
          f"{abort['lines_written_before_abort']:,} of {report['lines']:,} ({abort['status']})")
    return 0


def cmd_trend(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    if engine.dialect.name != "postgresql":
        raise CommandError(f"{PROG} trend needs a Postgres --database-url (a scratch database: it empties the tables)",
                           exit_code=2)
    engine = scratch_database(settings, f"{PROG} trend")
    with emptied_after(engine):
        return _trend(args, engine)


def _trend(args: argparse.Namespace, engine: Engine) -> int:
    from benchmarks import trend

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    say(f"loading {args.history_rows:,} history rows in {args.accounts} accounts (seed {args.seed})")
    loaded = trend.load(engine, args.history_rows, args.accounts, args.seed, say)
    say("filling course_progress_daily_changes with daily.rebuild")
    daily_rows, rebuild_seconds = trend.rebuild_daily(engine)
    say(f"  {daily_rows:,} rows in {rebuild_seconds:.1f} s; VACUUM ANALYZE")
    vacuum_seconds = trend.vacuum_analyze(engine)
    subjects = trend.pick_subjects(engine)
    views = [trend.DAILY, trend.DIRECT] if args.compare_view else [trend.DAILY]
    try:
        if args.compare_view:
            trend.create_compared_view(engine)
        results, same_rows = trend.time_views(engine, subjects, views, args.repeats, say)
    finally:
        if args.compare_view:
            with engine.begin() as connection:
                trend.drop_compared_view(connection)
    figures = {
        "history_rows": loaded.history_rows, "courses": loaded.courses, "students": loaded.students,
        "accounts": args.accounts, "seed": args.seed, "load_seconds": round(loaded.seconds, 1),
        "daily_changes_rows": daily_rows, "rebuild_seconds": round(rebuild_seconds, 1),
        "vacuum_analyze_seconds": round(vacuum_seconds, 1), "server": trend.server_settings(engine),
        "subjects": {"typical": subjects.typical, "largest": subjects.largest,
                     "window": [str(day) for day in subjects.window], "account": subjects.account,
                     "weeks": [str(subjects.weeks[0]), subjects.weeks[1]]},
        "queries": results, "same_rows": same_rows,
    }
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        _print_trend(figures, args.plans)
    disagreeing = [name for name, same in same_rows.items() if not same]
    if disagreeing:
        raise CommandError(f"the compared views returned different rows for: {', '.join(disagreeing)}")
    return 0


def _print_trend(figures: dict, plans: bool) -> None:
    server, subjects = figures["server"], figures["subjects"]
    print(f"history: {figures['history_rows']:,} rows, {figures['courses']:,} courses, {figures['students']:,} "
          f"enrolments, {figures['accounts']} accounts; loaded in {figures['load_seconds']} s")
    print(f"daily changes: {figures['daily_changes_rows']:,} rows from daily.rebuild in {figures['rebuild_seconds']} s; "
          f"VACUUM ANALYZE {figures['vacuum_analyze_seconds']} s")
    print(f"server: PostgreSQL {server['server_version']}, jit={server['jit']}, jit_above_cost={server['jit_above_cost']}")
    for name in ("typical", "largest"):
        course = subjects[name]
        print(f"{name} course: {course['course_id']} ({course['history_rows']:,} history rows, {course['students']:,} "
              f"students, {course['days']} days)")
    account = subjects["account"]
    print(f"account: {account['account_id']} ({account['courses']} courses, {account['history_rows']:,} history rows); "
          f"4 weeks: {subjects['window'][0]} to {subjects['window'][1]}; weekly: {subjects['weeks'][1]} Sundays from "
          f"{subjects['weeks'][0]}")
    for name, views in figures["queries"].items():
        for view, result in views.items():
            jit = "no" if result["jit"] is None else (
                f"yes: {result['jit']['functions']} functions, {result['jit']['ms']} ms; "
                f"median with jit=off {result['median_ms_jit_off']:.2f} ms")
            print(f"{name:22} {view:24} median {result['median_ms']:9.2f} ms  worst {result['max_ms']:9.2f} ms  "
                  f"{result['rows']:5} rows  cost {result['cost']:>12,.0f}  JIT {jit}")
            if plans:
                print("    " + "\n    ".join(result["plan"]))
        if name in figures["same_rows"]:
            print(f"{'':22} the views {'agree' if figures['same_rows'][name] else 'DISAGREE'}")

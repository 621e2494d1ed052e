"""Commands that read event files: replay, generate."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from consumer.commands.common import CommandError, open_database
from consumer.config import Settings
from consumer.console import ProgressLine, print_counts
from consumer.settings_flags import add_setting_flags

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="apply events from files (NDJSON, JSON array or object, gzip) to the tables",
        description="Apply Canvas Live Events from files or directories (recursively, in name order, hidden "
        "names skipped) to the tables. A file may be NDJSON/JSON Lines, a JSON array or JSON object(s), "
        "optionally gzip-compressed; '-' reads standard input. Each JSON value is one input, its source "
        "FILE:LINE (FILE:LINE#N when a line holds several); a malformed one is stored in rejected_events "
        "and does not stop the run. Files that are not events (SQLite databases, other binary data) are "
        "skipped with one line each. Unreadable files and directories, dangling links, compressed formats "
        "other than gzip, and damaged gzip data (read up to the damage) get one line each too, and make the "
        "exit status 1 once everything readable is applied. Exit status: 0 when everything was read "
        "(rejections and skipped files included), 1 when a file could not be read whole or the database "
        "cannot be used, 2 when a path does not exist.",
    )
    replay.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for stdin")
    add_setting_flags(replay, "batch_size")
    replay.add_argument("--json", action="store_true", help="print the end-of-run summary as JSON")
    add_setting_flags(replay, "store_user_names")
    replay.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    replay.set_defaults(handler=cmd_replay)

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


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.replay import replay
    from consumer.sources.files import ReadReport, display_name, missing_paths

    missing = missing_paths(args.paths)
    if missing:
        raise CommandError(f"no such file or directory: {', '.join(map(display_name, missing))}", exit_code=2)
    engine = open_database(settings, migrate=not args.no_migrate)
    report = ReadReport()  # files that could not be used whole: each logged as one line when met
    progress = ProgressLine()
    started = time.monotonic()
    try:
        counts = replay(args.paths, engine, settings.batch_size, on_batch=progress.update, report=report,
                        store_user_names=settings.store_user_names)
    finally:
        progress.close()
    seconds = time.monotonic() - started
    totals = {**counts.as_dict(), **report.as_dict()}
    log.info("replay finished", extra={**totals, "seconds": round(seconds, 3)})
    if args.json:
        rate = counts.read / seconds if seconds > 0 else 0.0
        print(json.dumps({**totals, "seconds": round(seconds, 3), "events_per_second": round(rate, 1)}))
    else:
        print_counts(counts, seconds, more=_file_rows(report.as_dict()))
    if report.failed:  # after the summary: everything readable is committed by now
        not_whole = report.not_whole
        raise CommandError(
            f"{not_whole} file{'s' if not_whole != 1 else ''} could not be read whole (see the lines above); "
            "everything that could be read was applied"
        )
    return 0


_FILE_ROWS = {"files_skipped": "files skipped (not events)", "files_unreadable": "files not read", "files_damaged": "files damaged (read in part)"}


def _file_rows(files: dict[str, int]) -> list[tuple[str, int]]:
    """Rows for the text summary: only the kinds of file problem that happened."""
    return [(_FILE_ROWS[key], count) for key, count in files.items() if count]


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.synthetic import generate

    out = sys.stdout.buffer
    for payload in generate(args.events, args.seed, args.courses, args.students):
        out.write(payload + b"\n")
    out.flush()
    return 0


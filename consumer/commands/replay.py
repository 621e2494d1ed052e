"""Commands that read event files: replay, generate; and what `replay` and `send` share about their sources
(local paths and s3:// URLs, checked before any work; --since / --until; the progress line)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from consumer.commands.common import CommandError, open_database
from consumer.config import Settings
from consumer.console import ProgressLine, print_counts
from consumer.settings_flags import add_setting_flags
from consumer.store.engine import url_secrets

if TYPE_CHECKING:  # imported when used: the command line starts without the readers
    from consumer.sources.s3 import S3Archive, S3Tally

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="apply events from files or S3 (NDJSON, JSON array or object, gzip) to the tables",
        description="Apply Canvas Live Events from files or directories (recursively, in name order, hidden "
        "names skipped) or S3 archives (s3://BUCKET/PREFIX, in key order) to the tables. A file or object may be "
        "NDJSON/JSON Lines, a JSON array or JSON object(s), concatenated or not, optionally gzip-compressed; '-' "
        "reads standard input. Each JSON value is one input, its source FILE:LINE (FILE:LINE#N when a line holds "
        "several; s3://BUCKET/KEY:LINE for objects); a malformed one is stored in rejected_events "
        "and does not stop the run. Files that are not events (SQLite databases, other binary data) are "
        "skipped with one line each. Unreadable files and directories, dangling links, compressed formats "
        "other than gzip, damaged gzip data (read up to the damage) and S3 objects that cannot be fetched or "
        "whose transfer breaks get one line each too, and make the exit status 1 once everything readable is "
        "applied. S3 uses the standard AWS environment (credentials, AWS_PROFILE, AWS_ENDPOINT_URL_S3). Exit "
        "status: 0 when everything was read (rejections and skipped files included), 1 when a file could not be "
        "read whole, S3 refuses or cannot be reached (no such bucket, access denied) or the database cannot be "
        "used, 2 when a path does not exist, an S3 URL is bad or names nothing, or there are no AWS credentials.",
    )
    replay.add_argument("paths", nargs="+", metavar="PATH", help=SOURCE_HELP)
    add_window_flags(replay)
    add_setting_flags(replay, "batch_size", "replay_processes")
    replay.add_argument("--json", action="store_true", help="print the end-of-run summary as JSON")
    add_setting_flags(replay, "store_user_names", "history")
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


SOURCE_HELP = "file, directory, - for stdin, or s3://BUCKET[/PREFIX] (an object, or every object under PREFIX/)"


def add_window_flags(parser: argparse.ArgumentParser) -> None:
    """--since / --until: which S3 objects to read, by date (see consumer.sources.s3)."""
    parser.add_argument(
        "--since", type=_time("--since"), metavar="TIME",
        help="read only S3 objects dated TIME or later (inclusive). An object's date is its key's YYYY/MM/DD[/HH] "
        "partition, a day or an hour, read whole when TIME falls inside it; else its LastModified. TIME is "
        "YYYY-MM-DD or an ISO 8601 time, UTC unless it has an offset",
    )
    parser.add_argument("--until", type=_time("--until"), metavar="TIME",
                        help="read only S3 objects dated before TIME (exclusive; the same dates and forms)")


def _time(flag: str) -> Callable[[str], datetime]:
    """The argparse type of a --since / --until value: a bad one is a usage error naming the flag and the value."""

    def parse(text: str) -> datetime:
        from consumer.sources.s3 import parse_time

        try:
            return parse_time(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = flag  # argparse names the type in some messages
    return parse


def check_sources(args: argparse.Namespace) -> S3Archive | None:
    """Before any work: local paths must exist and S3 URLs name something S3 lets us list.

    Returns the archive that reads the URLs (None without any). Exit 2 for a
    missing path, a bad URL, one that names nothing, no AWS credentials, or
    --since/--until without an S3 source or with an empty window; 1 when S3
    refuses or cannot be reached (no such bucket, access denied).
    """
    from consumer.sources.files import display_name, missing_paths
    from consumer.sources.s3 import S3Archive, S3Unavailable, Window, is_s3_url

    urls = [source for source in args.paths if is_s3_url(source)]
    missing = missing_paths(source for source in args.paths if not is_s3_url(source))
    if missing:
        raise CommandError(f"no such file or directory: {', '.join(map(display_name, missing))}", exit_code=2)
    window = Window(args.since, args.until)
    if not urls:
        if not window.everything:
            raise CommandError("--since and --until select S3 objects by date, and no s3:// source was given", exit_code=2)
        return None
    if window.since is not None and window.until is not None and window.since >= window.until:
        raise CommandError(f"--since {window.since.isoformat()} is not before --until {window.until.isoformat()}: "
                           "nothing would be read", exit_code=2)
    archive = S3Archive(window=window)
    try:
        archive.check(urls)  # a bad URL, no credentials, nothing there: ConfigurationError (exit 2)
    except S3Unavailable as error:
        raise CommandError(str(error)) from error
    return archive


class SourcesProgress(ProgressLine):
    """The progress line, with the S3 objects and bytes read so far when the sources include S3."""

    def __init__(self, tally: S3Tally | None) -> None:
        super().__init__()
        self.tally = tally

    def update_text(self, text: str) -> None:
        super().update_text(text if self.tally is None else f"{text}  {self.tally}")


def not_whole_message(count: int, s3: bool) -> str:
    what = "file or S3 object" if s3 else "file"
    plural = "files or S3 objects" if s3 else "files"
    return f"{count:,} {what if count == 1 else plural}"


# Below this many bytes of input, starting worker processes (about 0.3 s: each imports the package) costs more
# than they save (about 7 us an event on 2 cores): 16 MiB is about 30,000 events.
SMALL_INPUT_BYTES = 16 * 1024 * 1024


def replay_processes(settings: Settings, paths: Sequence[str] = ()) -> int:
    """REPLAY_PROCESSES, with 0 (the default) as one per CPU core this process may use, at most 4; and one for
    `paths` that are only local files (no directory, S3 or standard input) smaller than SMALL_INPUT_BYTES in all."""
    if settings.replay_processes:
        return settings.replay_processes
    if paths and _local_bytes(paths) < SMALL_INPUT_BYTES:
        return 1
    return max(1, min(4, usable_cores()))


def _local_bytes(paths: Sequence[str]) -> float:
    """The size of `paths` when each is a local regular file (gzip counted as 8 times its size), else infinity."""
    from consumer.sources.s3 import is_s3_url

    total = 0.0
    for path in paths:
        if path == "-" or is_s3_url(path) or not os.path.isfile(path):
            return float("inf")
        total += os.path.getsize(path) * (8 if path.endswith(".gz") else 1)
    return total


def usable_cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The cores this process may run on, bounded by its cgroup's CPU quota (a container's CPU limit: 1.5 CPUs
    gives 2), which neither the affinity mask nor os.cpu_count() shows."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with open(cpu_max) as limits:
            quota, period = limits.read().split()[:2]
        if quota != "max" and int(period) > 0:
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):  # no cgroup v2 limit to read: the affinity mask stands
        pass
    return cores


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.parallel import WorkerProcessDied
    from consumer.replay import replay
    from consumer.sources.files import ReadReport

    s3 = check_sources(args)
    engine = open_database(settings, migrate=not args.no_migrate)
    report = ReadReport()  # files that could not be used whole: each logged as one line when met
    progress = SourcesProgress(s3.tally if s3 is not None else None)
    started = time.monotonic()
    try:
        counts = replay(args.paths, engine, settings.batch_size, on_batch=progress.update, report=report,
                        store_user_names=settings.store_user_names, s3=s3, history=settings.history,
                        processes=replay_processes(settings, args.paths), worker_logging={
                            "log_level": settings.log_level, "log_format": settings.log_format,
                            "log_levels": settings.log_levels, "secrets": tuple(url_secrets(settings.database_url))})
    except WorkerProcessDied as error:
        raise CommandError(str(error)) from error
    finally:
        progress.close()
    seconds = time.monotonic() - started
    totals = {**counts.as_dict(), **report.as_dict(), **(s3.tally.as_dict() if s3 is not None else {})}
    log.info("replay finished", extra={**totals, "seconds": round(seconds, 3)})
    if args.json:
        rate = counts.read / seconds if seconds > 0 else 0.0
        print(json.dumps({**totals, "seconds": round(seconds, 3), "events_per_second": round(rate, 1)}))
    else:
        print_counts(counts, seconds, more=_file_rows(report.as_dict()) + (_s3_rows(s3.tally) if s3 is not None else []))
    if report.failed:  # after the summary: everything readable is committed by now
        raise CommandError(
            f"{not_whole_message(report.not_whole, s3 is not None)} could not be read whole (see the lines above); "
            "everything that could be read was applied"
        )
    return 0


_FILE_ROWS = {"files_skipped": "files skipped (not events)", "files_unreadable": "files not read", "files_damaged": "files damaged (read in part)"}


def _file_rows(files: dict[str, int]) -> list[tuple[str, int]]:
    """Rows for the text summary: only the kinds of file problem that happened."""
    return [(_FILE_ROWS[key], count) for key, count in files.items() if count]


def _s3_rows(tally: S3Tally) -> list[tuple[str, int]]:
    return [("S3 objects read", tally.objects), ("S3 objects outside the dates", tally.outside_window),
            ("S3 bytes read", tally.bytes)]


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.synthetic import generate

    out = sys.stdout.buffer
    for payload in generate(args.events, args.seed, args.courses, args.students):
        out.write(payload + b"\n")
    out.flush()
    return 0


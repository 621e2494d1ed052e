"""The benchmark: each measurement is one function whose docstring says what it times.

All measurements use the same generated events and the same database;
tables are emptied between them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from consumer.core import Tracked
from consumer.events.merge import newest_per_key
from consumer.events.parse import parse_event
from consumer.hooks import CommittedBatch, WorkerHooks
from consumer.pipeline import Pipeline
from consumer.replay import batched
from consumer.sources.files import read_inputs
from consumer.sources.sqs import Queue
from consumer.store.batch import write_batch
from consumer.store.staging import write_transaction
from consumer.store.tables import metadata
from consumer.synthetic import generate
from consumer.worker import Worker, WorkerOptions


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "seconds": round(self.seconds, 3), "events_per_second": round(self.rate, 1), **self.extra}


def empty_tables(engine: Engine) -> None:
    """Empty every tracker table: only for a database the benchmark checked was empty (benchmarks/scratch.py)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))
        else:
            # Twice: deleting course_progress rows fires the triggers that keep course_progress_stats.
            for table in [*reversed(metadata.sorted_tables), *reversed(metadata.sorted_tables)]:
                connection.execute(table.delete())


def write_events(path: Path, count: int, seed: int) -> None:
    with open(path, "wb") as out:
        for payload in generate(count, seed):
            out.write(payload + b"\n")


def _tree_rss_kb(pid: int) -> int:
    """The resident memory of a process and all its descendants (Linux /proc), in kB; 0 once it is gone."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            stack += [int(child) for child in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def our_replay(database_url: str, path: Path, batch_size: int, history: bool = True, processes: int | None = None) -> Result:
    """`canvas-progress replay` in a process of its own (with `--no-history` unless `history`; REPLAY_PROCESSES as
    set, or `processes`). Peak RSS: the largest sum over the process and its worker processes, sampled every
    50 ms (and the reading process's own peak, from the kernel)."""
    command = [sys.executable, "-m", "consumer", "replay", str(path), "--json", "--no-migrate", "--log-level", "WARNING",
               "--database-url", database_url, "--batch-size", str(batch_size), *(() if history else ("--no-history",)),
               *(() if processes is None else ("--processes", str(processes)))]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_tree = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak_tree[0] = max(peak_tree[0], _tree_rss_kb(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = process.stdout.read()  # type: ignore[union-attr]
    stderr = process.stderr.read()  # type: ignore[union-attr]
    done.set()
    sampler.join()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"replay failed: {stderr.decode()[-2000:]}")
    summary = json.loads(stdout)
    peak_mb = max(usage.ru_maxrss, peak_tree[0]) / 1024  # kilobytes on Linux
    name = "our replay" if history else "our replay, no history"
    return Result(name, summary["read"], summary["seconds"], {
        "peak_rss_mb": round(peak_mb, 1), "reader_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "process_seconds": round(seconds, 3)})


def naive_baseline(engine: Engine, path: Path, count: int) -> Result:
    """The tutorial consumer (json.loads, pydantic, ORM merge, commit per event) on the first `count` events."""
    from benchmarks.naive import naive_consume

    payloads = [item.payload for item, _ in zip(read_inputs([str(path)]), range(count), strict=False)]
    started = time.monotonic()
    naive_consume(engine, payloads)
    return Result("naive consumer", len(payloads), time.monotonic() - started)


def write_path_reference(engine: Engine, path: Path, batch_size: int) -> Result:
    """The physical limit: only the database writes of the same rows (COPY + merge on Postgres),
    with reading, parsing, validation and collapsing done beforehand and not timed."""
    timed = 0.0
    events = 0
    for batch in batched(read_inputs([str(path)]), batch_size):
        outcomes = [parse_event(item.payload) for item in batch]
        rows = newest_per_key(row for outcome in outcomes if isinstance(outcome, Tracked) for row in outcome.rows)
        events += len(batch)
        started = time.monotonic()
        with write_transaction(engine) as connection:
            write_batch(connection, rows)
        timed += time.monotonic() - started
    name = "COPY reference" if engine.dialect.name == "postgresql" else "write-path reference"
    return Result(name, events, timed)


PHYSICAL_BATCH = 50_000


@dataclass(frozen=True)
class _Bare:
    """One bare table of the physical reference: shaped like the table of `kind` (a row kind), its primary key
    only, and an unlogged staging table; its rows are merged newest first (the kind's time, then rank)."""

    kind: type

    @property
    def table(self) -> str:
        return f"bench_physical_{self.kind.TABLE}"

    @property
    def staging(self) -> str:
        return f"{self.table}_staging"

    def create(self) -> list[str]:
        like, key = self.kind.TABLE, ", ".join(self.kind.KEY)
        return [f"DROP TABLE IF EXISTS {self.table}, {self.staging}",
                f"CREATE TABLE {self.table} (LIKE {like} INCLUDING DEFAULTS, PRIMARY KEY ({key}))",
                f"CREATE UNLOGGED TABLE {self.staging} (LIKE {like} INCLUDING DEFAULTS)"]

    def copy(self) -> str:
        return f"COPY {self.staging} ({', '.join(self.kind._fields)}) FROM STDIN (FORMAT BINARY)"

    def merge(self) -> str:
        kind = self.kind
        columns, key, newer = ", ".join(kind._fields), ", ".join(kind.KEY), (kind.TIME, kind.RANK)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in kind._fields if c not in kind.KEY)
        order = ", ".join(f"{c} DESC" for c in newer)
        stored = ", ".join(f"{self.table}.{c}" for c in newer)
        sent = ", ".join(f"EXCLUDED.{c}" for c in newer)
        return (f"INSERT INTO {self.table} ({columns}) SELECT DISTINCT ON ({key}) {columns} FROM {self.staging} "
                f"ORDER BY {key}, {order} ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE ({stored}) < ({sent})")


def physical_reference(engine: Engine, path: Path, batch_size: int = PHYSICAL_BATCH, history: bool = False) -> Result:
    """The database's own write limit for this stream, independent of our write path (issue 16): the progress rows
    the events give, made beforehand and not timed, written to a bare table shaped like course_progress (primary key
    only: no trigger, no other index, no other table) as binary COPY into an unlogged staging table, then one
    `INSERT ... SELECT DISTINCT ON (key) ... ORDER BY key, time DESC, rank DESC ON CONFLICT DO UPDATE ... WHERE
    newer` per `batch_size` rows, one transaction each. Timed: the COPY and the merge. Counted: every event read
    (as replay counts them), so the rate compares with replay's.

    With `history`, each transaction also writes the progress events' history rows the same way into a second bare
    table shaped like course_progress_history: the least a database does for what the contract asks of a progress
    event (its current row and its history row; not the daily figures, the counters, the users)."""
    if engine.dialect.name != "postgresql":
        raise ValueError("the physical reference needs Postgres")
    from consumer.events.progress import HistoryRow, ProgressRow
    from consumer.store.copy import copy_types
    from consumer.store.upsert import staging_table

    bares = [_Bare(ProgressRow), *([_Bare(HistoryRow)] if history else [])]
    events = 0
    rows: dict[type, list[tuple]] = {bare.kind: [] for bare in bares}
    for item in read_inputs([str(path)]):
        events += 1
        outcome = parse_event(item.payload)
        if isinstance(outcome, Tracked):
            for row in outcome.rows:
                if type(row) in rows:
                    rows[type(row)].append(tuple(row))
    progress_rows = len(rows[ProgressRow])
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        with driver.transaction():
            for bare in bares:
                for statement in bare.create():
                    driver.execute(statement)
        steps = [(bare, bare.copy(), copy_types(staging_table(bare.kind)), bare.merge()) for bare in bares]
        timed = 0.0
        for start in range(0, max(len(batch) for batch in rows.values()), batch_size):
            started = time.monotonic()
            with driver.transaction():
                for bare, copy_sql, types, merge in steps:
                    with driver.cursor().copy(copy_sql) as copy:
                        copy.set_types(types)
                        for row in rows[bare.kind][start : start + batch_size]:
                            copy.write_row(row)
                    driver.execute(merge)
                    driver.execute(f"TRUNCATE {bare.staging}")
            timed += time.monotonic() - started
        with driver.transaction():
            stored = driver.execute(f"SELECT count(*) FROM {bares[0].table}").fetchone()[0]
            for bare in bares:
                driver.execute(f"DROP TABLE {bare.table}, {bare.staging}")
    finally:
        raw.close()
    keys = len({(row[0], row[1]) for row in rows[ProgressRow]})
    if stored != keys:  # the merge kept one row per (course, user), or the reference measured something else
        raise RuntimeError(f"the physical reference stored {stored} rows for {keys} (course, user) keys")
    extra = {"history_rows": len(rows[HistoryRow])} if history else {}
    name = "physical reference + history" if history else "physical reference"
    return Result(name, events, timed, {"progress_rows": progress_rows, "stored": stored, **extra, "batch": batch_size})


class _Committed(WorkerHooks):
    """The benchmarks' view of the worker: how many messages are committed, and each one's receipt-to-commit time."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.latencies: list[float] = []
        self.all_committed = threading.Event()

    def on_batch_committed(self, batch: CommittedBatch) -> None:
        self.latencies.extend(batch.committed_at - message.received_at for message in batch.messages)
        if len(self.latencies) >= self.expected:
            self.all_committed.set()


def _start_worker(engine: Engine, queue: Queue, hooks: WorkerHooks, **options: Any) -> tuple[Worker, threading.Thread]:
    worker = Worker(queue, Pipeline(engine), WorkerOptions(**options), hooks=hooks)
    thread = threading.Thread(target=worker.run, name="benchmark-worker", daemon=True)
    thread.start()
    return worker, thread


def worker_against_bare_loop(engine: Engine, queue: Queue, path: Path, receivers: int, batch_size: int) -> tuple[Result, Result]:
    """Our worker, then a bare ReceiveMessage + DeleteMessageBatch loop with the same concurrency,
    each draining the same events from the same queue."""
    payloads = [item.payload for item in read_inputs([str(path)])]
    _fill(queue, payloads)
    committed = _Committed(len(payloads))
    started = time.monotonic()
    worker, thread = _start_worker(engine, queue, committed, receivers=receivers, wait_time_seconds=1, batch_size=batch_size)
    if not committed.all_committed.wait(timeout=600):
        raise RuntimeError(f"the worker committed {len(committed.latencies)} of {len(payloads)} messages in 600 s")
    ours = Result("our worker", len(payloads), time.monotonic() - started, {"receivers": receivers})
    worker.stop()
    thread.join(timeout=60)

    _fill(queue, payloads)
    deleted = 0
    lock = threading.Lock()

    def bare() -> None:
        nonlocal deleted
        while True:
            with lock:
                if deleted >= len(payloads):
                    return
            messages = queue.receive(1)
            if messages:
                queue.delete(messages)
                with lock:
                    deleted += len(messages)

    started = time.monotonic()
    threads = [threading.Thread(target=bare) for _ in range(receivers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ours, Result("bare receive+delete", len(payloads), time.monotonic() - started, {"receivers": receivers})


def latency_at_rate(engine: Engine, queue: Queue, path: Path, rate: int, duration: float, receivers: int) -> Result:
    """Events arriving at `rate` per second for `duration` seconds: receipt-to-commit latency of each."""
    payloads = [item.payload for item, _ in zip(read_inputs([str(path)]), range(int(rate * duration)), strict=False)]
    committed = _Committed(len(payloads))
    worker, thread = _start_worker(engine, queue, committed, receivers=receivers, wait_time_seconds=20)
    started = time.monotonic()
    for n in range(0, len(payloads), 10):  # SendMessageBatch of 10, paced
        queue.send([(p, {}) for p in payloads[n : n + 10]])
        pause = started + (n + 10) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    committed.all_committed.wait(timeout=30)
    worker.stop()
    thread.join(timeout=60)
    ordered = sorted(committed.latencies)

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    within = sum(1 for value in ordered if value <= 1.0) / len(payloads) if payloads else 0.0
    return Result(
        "latency at rate", len(payloads), duration,
        {"rate": rate, "committed": len(ordered), "p50_seconds": round(percentile(0.50), 3), "p99_seconds": round(percentile(0.99), 3),
         "max_seconds": round(ordered[-1], 3) if ordered else None, "share_within_1s": round(within, 4)},
    )


def _fill(queue: Queue, payloads: list[bytes]) -> None:
    """Purge the (scratch) queue, wait until it is empty, then send `payloads`."""
    from concurrent.futures import ThreadPoolExecutor

    queue.purge()
    deadline = time.monotonic() + 60  # SQS may take up to 60 s to purge
    while sum(astuple(queue.counts())) and time.monotonic() < deadline:
        time.sleep(0.2)
    chunks = [payloads[n : n + 500] for n in range(0, len(payloads), 500)]
    with ThreadPoolExecutor(8) as pool:
        failed = sum(len(f) for f in pool.map(lambda chunk: queue.send([(p, {}) for p in chunk]), chunks))
    if failed:
        raise RuntimeError(f"{failed} messages could not be sent")


def scratch_file(count: int, seed: int) -> tuple[tempfile.TemporaryDirectory, Path]:
    folder = tempfile.TemporaryDirectory(prefix="canvas-progress-bench-")
    path = Path(folder.name) / f"events-{count}-{seed}.ndjson"
    write_events(path, count, seed)
    return folder, path


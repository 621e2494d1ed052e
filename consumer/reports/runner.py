"""Runs queued report jobs in background threads of the API server.

Each runner thread claims the next queued job (accounts take turns, see
`jobs.claim`), streams its query into CSV (cells as `csv_cells` makes them),
and writes the file in chunks of 1000 lines (or every half second), each
chunk in one transaction with the job's `current_line`, `progress` and
heartbeat. That same conditional UPDATE is how a runner learns that its job
was aborted, cancelled or deleted, so a stop takes effect at the next flush.
A runner whose server dies leaves a heartbeat that goes stale; any runner
then ends that job as failed (`jobs.reap`). Queued jobs simply wait in the
table for the next server to start. A further thread deletes finished
reports, and their files, REPORT_RETENTION_DAYS after they ended.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import Engine

from consumer.reports import jobs
from consumer.reports.catalogue import empty_window
from consumer.reports.csv_cells import csv_row, csv_writer
from consumer.reports.jobs import Job
from consumer.reports.queries import QUERIES, Scope

log = logging.getLogger("consumer.reports")

FINISHED = Counter("canvas_reports_finished_total", "Report jobs run by this server, by report and outcome",
                   ["report", "outcome"])
DURATION = Histogram("canvas_report_seconds", "Time to run one report job", ["report"],
                     buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
LINES = Counter("canvas_report_lines_total", "CSV lines written by completed report jobs", ["report"])

CHUNK_LINES = 1000  # Canvas: current_line "updates every 1000 records"
CHUNK_SECONDS = 0.5
EMPTY_WINDOW = " (end_at is not after start_at, so no row can match)"


class Stopped(Exception):
    """The job was aborted, cancelled or deleted while it ran."""


class ShuttingDown(Exception):
    """The server is stopping; the running job ends failed."""


def file_name(job: Job) -> str:
    context = f"course_{job.course_id}" if job.course_id is not None else f"account_{job.account_id}"
    return f"{job.report}_{context}_{job.id}.csv"


def failure_message(reference: str) -> str:
    """What the Report and Progress say about a failure: the log's reference, never the error's text.

    A driver's message names the database's host, port and name, and SQLAlchemy's
    quotes the statement and its parameters; those go to the log only.
    """
    return f"the report failed (logged as {reference}); start it again, or give the operator this reference"


class ReportRunner:
    """`workers` threads that run report jobs until `stop()`."""

    def __init__(self, engine: Engine, *, workers: int = 1, lease: float = 30.0, poll: float = 1.0,
                 jobs_per_account: int = 10, retention_days: int = 14, sweep_every: float = 3600.0) -> None:
        self.engine = engine
        self.workers = workers
        self.lease = lease
        self.poll = poll
        self.jobs_per_account = jobs_per_account  # the queue's admission limit, applied by the API (jobs.create)
        self.retention_days = retention_days
        self.sweep_every = sweep_every
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"report-runner-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        sweeper = threading.Thread(target=self._sweep_loop, name="report-retention", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                for job_id in jobs.reap(self.engine, self.lease):
                    log.warning("report %s failed: its server stopped while it ran (heartbeat older than %ss)", job_id, self.lease)
                job = jobs.claim(self.engine)
            except Exception:
                log.exception("report runner cannot reach the database; retrying in %ss", self.poll)
                job = None
            if job is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            try:
                self.run(job)
            except Exception:
                # Recording how the job ended failed too (the database went away): this thread goes on, and the
                # job, still `running` with a heartbeat that no longer moves, is failed by `reap` after the lease.
                log.exception("report %s (%s): its end could not be recorded; it fails once its heartbeat is older "
                              "than %ss", job.id, job.report, self.lease)

    def _sweep_loop(self) -> None:
        """Enforce REPORT_RETENTION_DAYS at start and every `sweep_every` seconds (every replica does; it is idempotent)."""
        while not self._stopping.is_set():
            self.sweep()
            self._stopping.wait(self.sweep_every)

    def sweep(self) -> int:
        """Delete finished reports older than the retention, with their files; how many, or 0 after logging a failure."""
        try:
            expired = jobs.expire(self.engine, self.retention_days)
        except Exception:
            log.exception("report retention failed; trying again in %ss", self.sweep_every)
            return 0
        log.info("report retention: deleted %d report(s) and their files, finished more than %d days ago (REPORT_RETENTION_DAYS)",
                 len(expired), self.retention_days)
        return len(expired)

    def run(self, job: Job) -> None:
        started = time.monotonic()
        log.info("report %s (%s) started", job.id, job.report)
        try:
            lines = self._write(job)
        except Stopped:
            jobs.discard_file(self.engine, job.id)
            FINISHED.labels(job.report, "aborted").inc()
            log.info("report %s (%s) stopped at the caller's request", job.id, job.report)
        except ShuttingDown:
            jobs.fail(self.engine, job.id, "the server shut down while this report ran; start it again")
            FINISHED.labels(job.report, "interrupted").inc()
            log.warning("report %s (%s) failed: the server is shutting down", job.id, job.report)
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("report %s (%s) failed (logged as %s)", job.id, job.report, reference)
            FINISHED.labels(job.report, "error").inc()
            jobs.fail(self.engine, job.id, failure_message(reference))
        else:
            elapsed = time.monotonic() - started
            FINISHED.labels(job.report, "complete").inc()
            DURATION.labels(job.report).observe(elapsed)
            LINES.labels(job.report).inc(lines)
            log.info("report %s (%s) complete: %d lines in %.2fs", job.id, job.report, lines, elapsed)

    def _write(self, job: Job) -> int:
        query = QUERIES[job.report](Scope(job.account_id, job.course_id), job.parameters)
        with self.engine.connect() as reader:
            if reader.dialect.name == "postgresql":
                # One snapshot for the count and the rows.
                reader = reader.execution_options(isolation_level="REPEATABLE READ")
            with reader.begin():
                total = reader.execute(query.count).scalar_one()
                rows = reader.execution_options(stream_results=True, yield_per=CHUNK_LINES).execute(query.rows)
                return self._stream(job, total, query.header, rows)

    def _stream(self, job: Job, total: int, header: Iterable[str], rows: Iterable[Any]) -> int:
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(header)
        lines = seq = size = 0
        flushed_at = time.monotonic()

        def flush() -> None:
            nonlocal seq, size, flushed_at
            if self._stopping.is_set():
                raise ShuttingDown
            data = buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            percent = min(99, lines * 100 // total) if total else 0
            with self.engine.begin() as connection:
                if not jobs.advance(connection, job.id, seq=seq, data=data, lines=lines, progress=percent):
                    raise Stopped
            seq += 1
            size += len(data)
            flushed_at = time.monotonic()

        flush()  # the header, and a first heartbeat after the count
        for row in rows:
            writer.writerow(csv_row(row))
            lines += 1
            if lines % CHUNK_LINES == 0 or time.monotonic() - flushed_at >= CHUNK_SECONDS:
                flush()
        flush()
        with self.engine.begin() as connection:
            done = jobs.finish(connection, job.id, lines=lines, file_name=file_name(job), file_size=size,
                               message=f"{lines} rows written" + (EMPTY_WINDOW if empty_window(job.parameters) else ""))
        if not done:
            raise Stopped
        return lines

"""`canvas-progress status`: is the tracker keeping up? For people, cron and monitors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, func, select

from consumer.quarantine import count_deliveries, count_last_seen_before, count_rejected, retention_cutoff
from consumer.sources.sqs import Queue, QueueCounts
from consumer.store.tables import course_progress, course_sections, courses, users
from consumer.text import one_line

_NEWEST = {
    "courses": (courses.c.course_event_time, courses.c.progress_event_time),
    "course_sections": (course_sections.c.last_event_time,),
    "course_progress": (course_progress.c.last_event_time,),
    "users": (users.c.last_event_time,),
}


@dataclass
class Status:
    database: str = "ok"
    queue: str | None = None
    queue_visible: int | None = None
    queue_in_flight: int | None = None
    queue_delayed: int | None = None
    dead_letter_queue: str | None = None
    dead_letter_visible: int | None = None
    rejected: int | None = None  # distinct rejected inputs (quarantine rows)
    rejected_deliveries: int | None = None  # how often they were delivered, in all
    rejected_expired: int | None = None  # rows past REJECTED_RETENTION_DAYS: is `rejected purge --expired` scheduled?
    spool_dir: str | None = None  # the receiver's spool, when there is one in SPOOL_DIR
    spool_records: int | None = None
    spool_bytes: int | None = None
    spool_oldest_age_seconds: float | None = None
    newest_event_time: dict[str, str | None] = field(default_factory=dict)
    lag_seconds: dict[str, float | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> str:
        return json.dumps({**self.__dict__, "healthy": self.healthy})


def collect(
    engine: Engine, sqs: Queue | None, max_lag: float | None, max_dead_letters: int, rejected_retention_days: int | None = None,
    spool_dir: str | None = None, max_spool_age: float | None = None,
) -> Status:
    status = Status()
    if spool_dir is not None:
        _spool_status(spool_dir, status, max_spool_age)
    now = datetime.now(timezone.utc)
    try:
        with engine.connect() as connection:
            status.rejected = count_rejected(connection)
            status.rejected_deliveries = count_deliveries(connection)
            if rejected_retention_days is not None:
                status.rejected_expired = count_last_seen_before(connection, retention_cutoff(rejected_retention_days, now))
            for table, latest in newest_event_times(connection).items():
                status.newest_event_time[table] = latest.isoformat() if latest else None
                status.lag_seconds[table] = round((now - latest).total_seconds(), 1) if latest else None
    except Exception as error:  # reported as a problem, exit status says unhealthy
        status.database = f"unreachable: {_first_line(error)}"
        status.problems.append(f"database {status.database}")
    if max_lag is not None:
        lags = [lag for lag in status.lag_seconds.values() if lag is not None]
        if lags and min(lags) > max_lag:
            status.problems.append(f"newest event is {min(lags):.0f}s old (more than --max-lag {max_lag:.0f}s)")
    if sqs is not None:
        _queue_status(sqs, status, max_dead_letters)
    return status


def newest_event_times(connection: Connection) -> dict[str, datetime | None]:
    """The newest event_time in each tracked table (aware UTC; None while it is empty): one MAX per indexed column.

    `status` and the `canvas_data_newest_event_timestamp_seconds` gauge (consumer.observability.DataFreshness) read it.
    """
    times = {}
    for table, columns in _NEWEST.items():
        newest = [connection.execute(select(func.max(column))).scalar_one() for column in columns]
        newest = [_aware(value) for value in newest if value is not None]
        times[table] = max(newest) if newest else None
    return times


def _spool_status(directory: str, status: Status, max_age: float | None) -> None:
    """The receiver's spool in `directory`, if there is one: events waiting for the database, and how old."""
    import time

    from consumer.spool import read_stats

    try:
        stats = read_stats(directory)
    except OSError as error:
        status.problems.append(f"spool {directory} unreadable: {_first_line(error)}")
        return
    if stats is None:
        return
    status.spool_dir, status.spool_records, status.spool_bytes = directory, stats.records, stats.bytes
    age = stats.age(time.time())
    status.spool_oldest_age_seconds = round(age, 1) if age is not None else None
    if age is not None and max_age is not None and age > max_age:
        status.problems.append(f"the spool holds {stats.records} events, the oldest {age:.0f}s old (more than "
                               f"--max-spool-age {max_age:.0f}s): can the receiver reach the database?")


def _queue_status(sqs: Queue, status: Status, max_dead_letters: int) -> None:
    status.queue = sqs.url
    reading = read_queues(sqs)
    if reading.counts is not None:
        counts = reading.counts
        status.queue_visible, status.queue_in_flight, status.queue_delayed = counts.visible, counts.in_flight, counts.delayed
    if reading.problem is not None:
        status.problems.append(reading.problem)
        return
    assert reading.dead_letter_counts is not None
    status.dead_letter_queue, status.dead_letter_visible = reading.dead_letter_url, reading.dead_letter_counts.visible
    if status.dead_letter_visible > max_dead_letters:
        status.problems.append(f"{status.dead_letter_visible} messages in the dead-letter queue {reading.dead_letter_name}")


NO_DEAD_LETTER_QUEUE = "the queue has no dead-letter queue (RedrivePolicy): poison messages would circulate forever"


@dataclass(frozen=True)
class QueueReading:
    """The queue's and its dead-letter queue's message counts, as far as they could be read, and what went wrong.

    `problem` is None exactly when both counts were read. `status` and the worker's queue gauges
    (consumer.observability.QueueGauges) both read the queues through `read_queues`.
    """

    counts: QueueCounts | None = None
    dead_letter_name: str | None = None
    dead_letter_url: str | None = None
    dead_letter_counts: QueueCounts | None = None
    problem: str | None = None


def read_queues(sqs: Queue) -> QueueReading:
    """GetQueueAttributes on the queue, its RedrivePolicy and its dead-letter queue; a failure becomes `problem`."""
    try:
        counts = sqs.counts()
        policy = sqs.redrive_policy()
    except Exception as error:  # reported as the reading's problem
        return QueueReading(problem=f"queue unreachable: {_first_line(error)}")
    if policy is None:
        return QueueReading(counts, problem=NO_DEAD_LETTER_QUEUE)
    name = policy.dead_letter_name
    try:
        dead_letters = sqs.dead_letter_queue()
        dead_letter_counts = dead_letters.counts() if dead_letters is not None else None
    except Exception as error:  # reported as the reading's problem
        return QueueReading(counts, name, problem=f"dead-letter queue {name} unreachable: {_first_line(error)}")
    if dead_letters is None or dead_letter_counts is None:  # the policy was removed a moment ago
        return QueueReading(counts, problem=NO_DEAD_LETTER_QUEUE)
    return QueueReading(counts, name, dead_letters.url, dead_letter_counts)


def _first_line(error: Exception) -> str:
    return one_line(str(error)) or type(error).__name__


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

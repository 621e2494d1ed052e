"""The gauges the worker and the Reports API read at scrape time (consumer.observability): the queues' message
counts, the oldest message's age, the newest event times; and the hooks the worker calls to feed them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine

from consumer.observability import (
    OLDEST_AGE,
    QUEUE_READ_ERRORS,
    DataFreshness,
    OldestMessageAge,
    PrometheusHooks,
    QueueGauges,
)
from consumer.pipeline import Pipeline
from consumer.sources.sqs import Message, Queue, QueueCounts, sent_timestamp
from consumer.status import NO_DEAD_LETTER_QUEUE, QueueReading, read_queues
from consumer.store.engine import make_engine
from consumer.worker import Worker, WorkerOptions
from tests.factory import progress_event
from tests.helpers import apply_events
from tests.worker.fake_clock import FakeClock
from tests.worker.harness import Running, progress_bodies
from tests.worker.stub_queue import StubQueue


def samples(*collectors) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def message(sent_at: float | None) -> Message:
    return Message("m", "r", b"{}", 1, None, sent_at=sent_at)


class Now:
    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


class Reads:
    """read_queues' stand-in: hands out the given readings in order (the last one again and again), counting calls;
    `gate` holds the reads while it is clear."""

    def __init__(self, *readings: QueueReading | Exception) -> None:
        self.readings = list(readings)
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, queue: Queue) -> QueueReading:
        self.calls += 1
        assert self.gate.wait(10)
        reading = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        if isinstance(reading, Exception):
            raise reading
        return reading


READING = QueueReading(QueueCounts(5, 2, 1), "live-events-dlq", "https://sqs/dlq", QueueCounts(3, 0, 0))


def settled(gauges: QueueGauges) -> None:
    thread = gauges.reading_thread
    if thread is not None:
        thread.join(10)


def test_queue_gauges_serve_both_queues_by_state_after_a_background_read():
    now, reads = Now(), Reads(READING)
    reads.gate.clear()
    gauges = QueueGauges(StubQueue(FakeClock()), read=reads, clock=now)
    assert samples(gauges) == {}  # before the first reading: absent, and the scrape started one
    reads.gate.set()
    settled(gauges)
    assert reads.calls == 1
    assert samples(gauges) == {
        ("canvas_sqs_queue_messages", (("queue", q), ("state", s))): v
        for q, counts in (("source", (5, 2, 1)), ("dead_letter", (3, 0, 0)))
        for s, v in zip(("visible", "in_flight", "delayed"), counts, strict=True)
    }
    assert reads.calls == 1  # within `interval` of the last read, a scrape does not start another


def test_a_scrape_never_waits_for_sqs():
    now, reads = Now(), Reads(READING)
    reads.gate.clear()  # SQS does not answer
    gauges = QueueGauges(StubQueue(FakeClock()), read=reads, clock=now)
    assert samples(gauges) == {}  # answered while the read hangs
    now.value = 100.0
    assert gauges.refresh() is None  # one read at a time
    reads.gate.set()
    settled(gauges)
    assert len(samples(gauges)) == 6


def test_stale_readings_are_dropped_rather_than_served():
    now, reads = Now(), Reads(READING)
    gauges = QueueGauges(StubQueue(FakeClock()), interval=15, stale_after=120, read=reads, clock=now)
    gauges.refresh()
    settled(gauges)
    reads.gate.clear()  # the next reads hang
    now.value = 60.0
    assert len(samples(gauges)) == 6  # a minute old: still served (and a new read started, which hangs)
    now.value = 121.0
    assert samples(gauges) == {}  # past stale_after: absent
    reads.gate.set()
    settled(gauges)
    assert len(samples(gauges)) == 6  # the read came back


def test_failed_reads_are_counted_logged_once_per_change_and_leave_what_could_be_read(caplog):
    source_only = QueueReading(QueueCounts(1, 0, 0), "dlq", problem="dead-letter queue dlq unreachable: AccessDenied")
    unreachable = QueueReading(problem="queue unreachable: timeout")
    now, reads = Now(), Reads(unreachable, unreachable, source_only, READING)
    gauges = QueueGauges(StubQueue(FakeClock()), interval=1, read=reads, clock=now)
    before = QUEUE_READ_ERRORS._value.get()
    with caplog.at_level(logging.INFO, "consumer.observability"):
        for moment in range(4):
            now.value = moment * 10.0
            gauges.refresh()
            settled(gauges)
            served = {labels for _, labels in samples(gauges)}
            if moment < 2:
                assert served == set()
            elif moment == 2:
                assert {dict(labels)["queue"] for labels in served} == {"source"}
    assert QUEUE_READ_ERRORS._value.get() - before == 3
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        f"cannot read the message counts of {gauges.queue.url} for /metrics: queue unreachable: timeout",
        f"cannot read the message counts of {gauges.queue.url} for /metrics: dead-letter queue dlq unreachable: AccessDenied",
        f"cannot read the message counts of {gauges.queue.url} for /metrics: works again",
    ]


def test_a_queue_without_a_dead_letter_queue_is_said_once_and_not_counted_as_a_failure(caplog):
    now = Now()
    gauges = QueueGauges(StubQueue(FakeClock()), interval=1, clock=now)  # the real read_queues: no redrive policy
    before = QUEUE_READ_ERRORS._value.get()
    with caplog.at_level(logging.WARNING, "consumer.observability"):
        for moment in range(3):
            now.value = moment * 10.0
            gauges.refresh()
            settled(gauges)
    assert {dict(labels)["queue"] for _, labels in samples(gauges)} == {"source"}
    assert QUEUE_READ_ERRORS._value.get() == before
    assert [record.getMessage().endswith(NO_DEAD_LETTER_QUEUE) for record in caplog.records] == [True]


def test_read_queues_reads_the_stub_queue_and_its_dead_letter_queue():
    queue = StubQueue(FakeClock(), max_receive_count=3)
    queue.send_bodies(*progress_bodies(4))
    assert queue.dead_letters is not None
    queue.dead_letters.send_bodies(*progress_bodies(2))
    reading = read_queues(queue)
    assert reading.problem is None
    assert (reading.counts, reading.dead_letter_counts) == (QueueCounts(4, 0, 0), QueueCounts(2, 0, 0))
    assert reading.dead_letter_url == queue.dead_letters.url


def test_a_bug_in_a_read_is_logged_and_does_not_end_the_scrapes(caplog):
    now, reads = Now(), Reads(ValueError("boom"), READING)
    gauges = QueueGauges(StubQueue(FakeClock()), interval=1, read=reads, clock=now)
    with caplog.at_level(logging.ERROR, "consumer.observability"):
        gauges.refresh()
        settled(gauges)
    assert samples(gauges) == {} and "reading the queue's message counts failed" in caplog.text
    now.value = 10.0
    gauges.refresh()
    settled(gauges)
    assert len(samples(gauges)) == 6


@pytest.mark.parametrize(("sent", "expected"), [
    ([], 0.0),  # an empty receive: nothing waits
    ([1000.0, 400.0, None], 600.0),  # the oldest of the receive
    ([1001.0], 0.0),  # clocks a little apart never give a negative age
    ([None, None], None),  # no SentTimestamp: unknown, so absent
])
def test_the_oldest_message_age_is_that_of_the_latest_receive(sent: Sequence[float | None], expected: float | None):
    age = OldestMessageAge()
    assert samples(age) == {}  # before the first receive
    age.observe([message(value) for value in sent], now=1000.0)
    assert samples(age) == ({} if expected is None else {("canvas_sqs_oldest_message_age_seconds", ()): expected})


def test_sent_timestamp_is_read_in_seconds_and_a_bad_one_is_logged(caplog):
    assert sent_timestamp({"MessageId": "a", "Attributes": {"SentTimestamp": "1764547200123"}}) == 1764547200.123
    assert sent_timestamp({"MessageId": "b", "Attributes": {}}) is None
    with caplog.at_level(logging.WARNING, "consumer.sources.sqs"):
        assert sent_timestamp({"MessageId": "c", "Attributes": {"SentTimestamp": "\x1b[31mnot a number"}}) is None
    (record,) = caplog.records
    assert "message c: SentTimestamp" in record.getMessage() and "\x1b" not in record.getMessage()


def test_the_freshness_gauge_reads_the_newest_event_time_of_each_table(sqlite_engine: Engine):
    freshness = DataFreshness(sqlite_engine)
    assert samples(freshness) == {("canvas_data_freshness_read_errors_total", ()): 0.0}  # empty tables: no series
    apply_events(sqlite_engine, [progress_event("2026-11-30T10:00:00Z"), progress_event("2026-11-30T09:00:00Z", user_id="9")])
    newest = datetime(2026, 11, 30, 10, tzinfo=timezone.utc).timestamp()
    found = samples(freshness)
    assert found[("canvas_data_newest_event_timestamp_seconds", (("table", "course_progress"),))] == newest
    assert found[("canvas_data_newest_event_timestamp_seconds", (("table", "users"),))] == newest
    assert found[("canvas_data_newest_event_timestamp_seconds", (("table", "courses"),))] == newest
    assert ("canvas_data_newest_event_timestamp_seconds", (("table", "course_sections"),)) not in found


def test_an_unreadable_database_leaves_the_freshness_out_and_is_logged_once(tmp_path, caplog):
    engine = make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")  # no tables: every read fails
    freshness = DataFreshness(engine)
    with caplog.at_level(logging.WARNING, "consumer.observability"):
        for attempt in (1, 2):
            assert samples(freshness) == {("canvas_data_freshness_read_errors_total", ()): float(attempt)}
    (record,) = caplog.records
    assert record.getMessage().startswith("cannot read the newest event times for /metrics: ")
    registry = CollectorRegistry()
    registry.register(freshness)
    assert b"canvas_data_freshness_read_errors_total 3.0" in generate_latest(registry)  # the scrape still answers


class StartedHooks(PrometheusHooks):
    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[Queue, Engine | None]] = []
        self.receives: list[int] = []

    def on_started(self, queue: Queue, engine: Engine | None) -> None:
        self.started.append((queue, engine))

    def on_receive(self, messages: Sequence[Message]) -> None:
        super().on_receive(messages)
        self.receives.append(len(messages))


def test_the_worker_introduces_its_queue_and_reports_every_receive_empty_ones_included(sqlite_engine: Engine):
    clock = FakeClock()
    queue = StubQueue(clock)
    queue.send_bodies(*progress_bodies(3))
    hooks = StartedHooks()
    options = WorkerOptions(receivers=1, wait_time_seconds=20, batch_size=100, flush_interval=0.5, shutdown_grace=10, burst=True)
    running = Running(Worker(queue, Pipeline(sqlite_engine), options, hooks=hooks, clock=clock), clock)
    running.run_until(lambda: not running.thread.is_alive(), "the burst to end")
    assert running.error is None
    assert hooks.started == [(queue, sqlite_engine)]
    assert hooks.receives[0] == 3 and 0 in hooks.receives[1:]  # burst ends after empty receives
    assert OLDEST_AGE.value == 0.0  # the latest receive came back empty

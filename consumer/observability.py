"""Prometheus metrics and the health endpoints of the worker.

The worker reports to `PrometheusHooks`, its hooks object (consumer.hooks),
which keeps the metrics below. `/metrics` is Prometheus text; `/healthz`
answers 200 while the writer loop has beaten within `stale_after` seconds
(a liveness probe restarts a stuck worker); `/readyz` answers 200 when the
database and the queue both answer (consumer.readiness).
Besides what the hooks count, three groups of gauges are read when they are
scraped: the queue's and its dead-letter queue's message counts
(`QueueGauges`, from GetQueueAttributes in a background thread, never on the
worker's own loops), the age of the oldest message in the latest receive
(`OldestMessageAge`), and the newest event time of each tracked table
(`DataFreshness`, also on the Reports API's `/metrics`).
They need no credentials, so they listen on 127.0.0.1 unless METRICS_HOST
says otherwise (0.0.0.0 in a container, for the kubelet), and `/readyz`
answers only "ready" or "not ready": why it is not ready (which names the
database host, port and name, and the queue) goes to the log, once per change.
Anyone who can reach the port must not be able to hurt the worker through
it: a client gets `request_timeout` seconds to send its request, at most
`MAX_CONNECTIONS` are served at once (more are closed at once, so idle
connections cannot take the threads and file descriptors the worker needs
for the database and SQS).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from consumer.hooks import CommittedBatch, WorkerHooks
from consumer.sources.sqs import Message, Queue, QueueCounts
from consumer.status import NO_DEAD_LETTER_QUEUE, QueueReading, newest_event_times, read_queues
from consumer.text import one_line

log = logging.getLogger(__name__)

# Shared with the HTTPS receiver (consumer.receiver.metrics), so one dashboard covers both transports.
EVENTS = Counter("canvas_events_total", "Inputs by event type and outcome", ["event_type", "outcome"])
# The worker's own: registered by `PrometheusHooks` (register_worker_metrics), so that the receiver and the
# Reports API, which import this module, do not serve a worker's metrics (a heartbeat of 0 would look stale).
MESSAGES_RECEIVED = Counter("canvas_sqs_messages_received_total", "SQS messages received", registry=None)
RECEIVE_ERRORS = Counter("canvas_sqs_receive_errors_total", "ReceiveMessage calls that failed", registry=None)
DELETE_ERRORS = Counter("canvas_sqs_delete_errors_total", "Messages whose DeleteMessageBatch entry failed", registry=None)
VISIBILITY_ERRORS = Counter("canvas_sqs_visibility_errors_total", "Messages whose ChangeMessageVisibility entry failed",
                            registry=None)
BATCH_FAILURES = Counter("canvas_batch_failures_total", "Batches not committed (database unavailable); their messages stay on the queue",
                         registry=None)
BATCH_SIZE = Histogram("canvas_batch_size", "Messages per committed batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
                       registry=None)
COMMIT_SECONDS = Histogram("canvas_db_commit_seconds", "Database time to commit one batch", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                           registry=None)
RECEIPT_TO_COMMIT = Histogram("canvas_receipt_to_commit_seconds", "From SQS receipt to database commit, per message",
                              buckets=(0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30), registry=None)
EVENT_LAG = Histogram(
    "canvas_event_lag_seconds", "Commit time minus the event's event_time, per tracked event",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400), registry=None,
)
HEARTBEAT = Gauge("canvas_worker_heartbeat_timestamp_seconds", "Unix time of the writer loop's last beat", registry=None)
IN_FLIGHT = Gauge("canvas_worker_in_flight_messages", "Messages received and not yet deleted or released", registry=None)
QUEUE_READ_ERRORS = Counter("canvas_sqs_queue_read_errors_total",
                            "Reads of the queues' message counts (GetQueueAttributes, for canvas_sqs_queue_messages) that failed",
                            registry=None)


class ChangeLog:
    """Logs a failing read when what went wrong changes, and its recovery once, not at every scrape."""

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.logger = logger
        self.last: str | None = None
        self.lock = threading.Lock()

    def failed(self, detail: str) -> None:
        with self.lock:
            changed, self.last = detail != self.last, detail
        if changed:
            self.logger.warning("%s: %s", self.what, detail)

    def ok(self) -> None:
        with self.lock:
            recovered, self.last = self.last is not None, None
        if recovered:
            self.logger.info("%s: works again", self.what)


class OldestMessageAge(Collector):
    """`canvas_sqs_oldest_message_age_seconds`: how long the oldest message of the latest ReceiveMessage had been
    on the queue when it was received (now minus its SentTimestamp); 0 after a receive that came back empty.

    A sample, not CloudWatch's ApproximateAgeOfOldestMessage: SQS returns up to 10 messages from some of its
    servers, the latest receive of any of the worker's receivers wins, and a failed receive leaves the value as
    it was. Absent until the first receive, and after one whose messages carried no SentTimestamp.
    docs/operations.md says how to read it.
    """

    def __init__(self) -> None:
        self.value: float | None = None

    def observe(self, messages: Sequence[Message], now: float) -> None:
        sent = [message.sent_at for message in messages if message.sent_at is not None]
        if sent:
            self.value = max(0.0, now - min(sent))
        else:  # an empty receive: nothing was waiting; messages without a SentTimestamp: unknown, so absent
            self.value = None if messages else 0.0

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.value is not None:
            yield GaugeMetricFamily("canvas_sqs_oldest_message_age_seconds",
                                    "Age of the oldest message in the latest receive (0 when it was empty)", value=self.value)


OLDEST_AGE = OldestMessageAge()
WORKER_METRICS: tuple[Collector, ...] = (
    MESSAGES_RECEIVED, RECEIVE_ERRORS, DELETE_ERRORS, VISIBILITY_ERRORS, BATCH_FAILURES, BATCH_SIZE, COMMIT_SECONDS,
    RECEIPT_TO_COMMIT, EVENT_LAG, HEARTBEAT, IN_FLIGHT, QUEUE_READ_ERRORS, OLDEST_AGE,
)
_registered = threading.Lock()
_worker_metrics_registered = False


def register_worker_metrics() -> None:
    """Put the worker's metrics in the default registry (what /metrics serves); once per process."""
    global _worker_metrics_registered
    with _registered:
        if not _worker_metrics_registered:
            for metric in WORKER_METRICS:
                REGISTRY.register(metric)
            _worker_metrics_registered = True


class QueueGauges(Collector):
    """`canvas_sqs_queue_messages{queue="source"|"dead_letter", state="visible"|"in_flight"|"delayed"}`: SQS's
    approximate message counts of the worker's queue and of the dead-letter queue its RedrivePolicy names.

    A scrape never waits for SQS: it serves the latest reading and, when that is older than `interval`
    seconds, starts a new one in a background thread (one at a time; `read` is `consumer.status.read_queues`, on
    a queue whose client gives up quickly). A reading older than `stale_after` is not served: the series are
    then absent rather than wrong, as they are before the first reading and for a queue that could not be read.
    A failed read is counted (`canvas_sqs_queue_read_errors_total`) and logged when its reason changes.
    """

    def __init__(self, queue: Queue, interval: float = 15.0, stale_after: float = 120.0,
                 read: Callable[[Queue], QueueReading] = read_queues, clock: Callable[[], float] = time.monotonic) -> None:
        self.queue = queue
        self.interval = interval
        self.stale_after = stale_after
        self.read = read
        self.clock = clock
        self.reading: QueueReading | None = None
        self.read_at = float("-inf")
        self.started_at = float("-inf")
        self.reading_thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.changes = ChangeLog(f"cannot read the message counts of {queue.url} for /metrics", log)

    def refresh(self) -> threading.Thread | None:
        """Start a reading in the background unless one is running or the latest is recent; returns its thread."""
        with self.lock:
            now = self.clock()
            if self.reading_thread is not None or now - self.started_at < self.interval:
                return None
            self.started_at = now
            self.reading_thread = threading.Thread(target=self._read, name="queue-gauges", daemon=True)
        self.reading_thread.start()
        return self.reading_thread

    def _read(self) -> None:
        try:
            reading = self.read(self.queue)
        except Exception as error:  # read_queues reports failures itself: this is a bug, but must not kill the scrape
            log.exception("reading the queue's message counts failed")
            reading = QueueReading(problem=f"reading failed: {one_line(str(error)) or type(error).__name__}")
        if reading.problem is None:
            self.changes.ok()
        else:
            self.changes.failed(reading.problem)
            if reading.problem != NO_DEAD_LETTER_QUEUE:  # not a failure: a queue without one is a configuration
                QUEUE_READ_ERRORS.inc()
        with self.lock:
            self.reading, self.read_at, self.reading_thread = reading, self.clock(), None

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.refresh()
        with self.lock:
            reading, fresh = self.reading, self.clock() - self.read_at <= self.stale_after
        if reading is None or not fresh:
            return
        family = GaugeMetricFamily("canvas_sqs_queue_messages",
                                   "SQS's approximate number of messages, by queue (source, dead_letter) and state",
                                   labels=["queue", "state"])
        for queue, counts in (("source", reading.counts), ("dead_letter", reading.dead_letter_counts)):
            if counts is not None:
                _add_counts(family, queue, counts)
        yield family


def _add_counts(family: GaugeMetricFamily, queue: str, counts: QueueCounts) -> None:
    for state, value in (("visible", counts.visible), ("in_flight", counts.in_flight), ("delayed", counts.delayed)):
        family.add_metric([queue, state], value)


class DataFreshness(Collector):
    """`canvas_data_newest_event_timestamp_seconds{table}`: the newest event_time in each tracked table, read from the
    database at scrape time (one MAX per indexed column, as `canvas-progress status` reads it).

    A table with no rows has no series. When the database cannot be read the family is left out (the scrape
    still answers), the failure counted in `canvas_data_freshness_read_errors_total` (served with it) and logged
    when it changes.
    """

    def __init__(self, engine: Engine, logger: logging.Logger = log) -> None:
        self.engine = engine
        self.changes = ChangeLog("cannot read the newest event times for /metrics", logger)
        self.errors = Counter("canvas_data_freshness_read_errors_total",
                              "Reads of the newest event times (for canvas_data_newest_event_timestamp_seconds) that failed",
                              registry=None)

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            with self.engine.connect() as connection:
                times = newest_event_times(connection)
        except Exception as error:  # a scrape must not fail; /readyz reports the database
            self.errors.inc()
            self.changes.failed(one_line(str(error)) or type(error).__name__)
            yield from self.errors.collect()
            return
        self.changes.ok()
        yield from self.errors.collect()
        family = GaugeMetricFamily("canvas_data_newest_event_timestamp_seconds",
                                   "Unix time of the newest event_time in each tracked table", labels=["table"])
        for table, newest in times.items():
            if newest is not None:
                family.add_metric([table], newest.timestamp())
        yield family


def register_worker_collectors(queue: Queue, engine: Engine | None) -> list[Collector]:
    """The queue gauges (and, with `engine`, the freshness gauge) in the default registry, replacing those of a
    previous worker in this process (tests run several). The first queue reading starts at once."""
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, (QueueGauges, DataFreshness)):
            REGISTRY.unregister(collector)
    gauges = QueueGauges(_quick(queue))
    collectors: list[Collector] = [gauges] + ([DataFreshness(engine)] if engine is not None else [])
    for collector in collectors:
        REGISTRY.register(collector)
    gauges.refresh()
    return collectors


def _quick(queue: Queue) -> Queue:
    """The queue through a client that gives up in seconds (SqsQueue.with_timeouts), so a reading is never stuck."""
    with_timeouts = getattr(queue, "with_timeouts", None)  # SqsQueue; other Queues (tests' stubs) answer at once
    return with_timeouts(connect=3, read=5) if with_timeouts is not None else queue


class Heartbeat:
    """When the writer loop last beat: /healthz reads its age, Prometheus its Unix time."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()
        HEARTBEAT.set(time.time())

    def age(self) -> float:
        return time.monotonic() - self.last


class PrometheusHooks(WorkerHooks):
    """The worker's hooks that keep the metrics above (docs/operations.md lists them) and the `heartbeat`."""

    def __init__(self, heartbeat: Heartbeat | None = None) -> None:
        register_worker_metrics()
        self.heartbeat = heartbeat or Heartbeat()

    def on_beat(self) -> None:
        self.heartbeat.beat()

    def on_started(self, queue: Queue, engine: Engine | None) -> None:
        """The worker is about to receive from `queue` into `engine`: serve their gauges."""
        register_worker_collectors(queue, engine)

    def on_receive(self, messages: Sequence[Message]) -> None:
        """A ReceiveMessage call succeeded (`messages` may be empty)."""
        OLDEST_AGE.observe(messages, time.time())

    def on_received(self, count: int) -> None:
        MESSAGES_RECEIVED.inc(count)

    def on_receive_error(self, error: Exception) -> None:
        RECEIVE_ERRORS.inc()

    def on_in_flight(self, count: int) -> None:
        IN_FLIGHT.set(count)

    def on_batch_committed(self, batch: CommittedBatch) -> None:
        for (event_type, outcome), value in batch.counts.by_type.items():
            if value:
                EVENTS.labels(event_type, outcome).inc(value)
        BATCH_SIZE.observe(len(batch.messages))
        COMMIT_SECONDS.observe(batch.commit_seconds)
        now = datetime.now(timezone.utc)
        for event_time in batch.event_times:
            EVENT_LAG.observe(max(0.0, (now - event_time).total_seconds()))
        for message in batch.messages:
            RECEIPT_TO_COMMIT.observe(batch.committed_at - message.received_at)

    def on_batch_failed(self, error: Exception, messages: int) -> None:
        BATCH_FAILURES.inc()

    def on_delete_failures(self, count: int) -> None:
        DELETE_ERRORS.inc(count)

    def on_visibility_failures(self, count: int) -> None:
        VISIBILITY_ERRORS.inc(count)


class ReadinessLog:
    """Logs why the worker is not ready when that changes, not at every probe (they come every few seconds)."""

    def __init__(self) -> None:
        self.last: tuple[bool, str] | None = None
        self.lock = threading.Lock()

    def record(self, ok: bool, detail: str) -> None:
        with self.lock:
            if (ok, detail) == self.last:
                return
            first, self.last = self.last is None, (ok, detail)
        if not ok:
            log.warning("not ready: %s", detail)
        elif not first:
            log.info("ready again: %s", detail)


MAX_CONNECTIONS = 16  # probes and a scraper need a few; an idle flood gets no more than this


class HealthServer:
    """/metrics, /healthz and /readyz on one port, served from a daemon thread."""

    def __init__(self, port: int, heartbeat: Heartbeat, ready: Callable[[], tuple[bool, str]], stale_after: float = 60.0,
                 host: str = "127.0.0.1", request_timeout: float = 10.0) -> None:
        server = self
        readiness_log = ReadinessLog()

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout  # on the socket: a client that sends nothing is dropped

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    age = heartbeat.age()
                    alive = age <= stale_after
                    self._send(200 if alive else 503, f"{'ok' if alive else 'stale'}: writer loop beat {age:.1f}s ago\n".encode())
                elif path == "/readyz":
                    ok, detail = server.ready()
                    readiness_log.record(ok, detail)  # the detail names hosts and databases: not for anonymous callers
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the logs

        self.ready = ready
        server_class = _IPv6Server if ":" in host else _BoundedServer
        try:
            self.httpd = server_class((host, port), Handler)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            # Another worker on this machine has the port: keep consuming, serve elsewhere.
            self.httpd = server_class((host, 0), Handler)
            log.warning("metrics port %d unavailable (%s): serving on port %d instead", port, error.strerror, self.httpd.server_address[1])
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("metrics and health on %s port %d (/metrics, /healthz, /readyz)", self.host, self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS at once: beyond that a connection is closed unanswered."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _IPv6Server(_BoundedServer):
    address_family = socket.AF_INET6

"""Prometheus metrics and the health endpoints of the worker.

The worker reports to `PrometheusHooks`, its hooks object (consumer.hooks),
which keeps the metrics below. `/metrics` is Prometheus text; `/healthz`
answers 200 while the writer loop has beaten within `stale_after` seconds
(a liveness probe restarts a stuck worker); `/readyz` answers 200 when the
database and the queue both answer (consumer.readiness).
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
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from consumer.hooks import CommittedBatch, WorkerHooks

log = logging.getLogger(__name__)

EVENTS = Counter("canvas_events_total", "Inputs by event type and outcome", ["event_type", "outcome"])
MESSAGES_RECEIVED = Counter("canvas_sqs_messages_received_total", "SQS messages received")
RECEIVE_ERRORS = Counter("canvas_sqs_receive_errors_total", "ReceiveMessage calls that failed")
DELETE_ERRORS = Counter("canvas_sqs_delete_errors_total", "Messages whose DeleteMessageBatch entry failed")
VISIBILITY_ERRORS = Counter("canvas_sqs_visibility_errors_total", "Messages whose ChangeMessageVisibility entry failed")
BATCH_FAILURES = Counter("canvas_batch_failures_total", "Batches not committed (database unavailable); their messages stay on the queue")
BATCH_SIZE = Histogram("canvas_batch_size", "Messages per committed batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000))
COMMIT_SECONDS = Histogram("canvas_db_commit_seconds", "Database time to commit one batch", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RECEIPT_TO_COMMIT = Histogram("canvas_receipt_to_commit_seconds", "From SQS receipt to database commit, per message", buckets=(0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30))
EVENT_LAG = Histogram(
    "canvas_event_lag_seconds", "Commit time minus the event's event_time, per tracked event",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
)
HEARTBEAT = Gauge("canvas_worker_heartbeat_timestamp_seconds", "Unix time of the writer loop's last beat")
IN_FLIGHT = Gauge("canvas_worker_in_flight_messages", "Messages received and not yet deleted or released")


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
        self.heartbeat = heartbeat or Heartbeat()

    def on_beat(self) -> None:
        self.heartbeat.beat()

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

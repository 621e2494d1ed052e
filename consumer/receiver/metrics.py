"""Prometheus metrics of the HTTPS receiver (`receive`); `/metrics` on the receiver's own port serves them.

Every label value is from a fixed set: an outcome, a refusal kind from the
verifier or the intake. Nothing a sender chooses becomes a label. Events by
type and outcome are counted in the same `canvas_events_total` as the SQS
worker's, so one dashboard shows both transports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from consumer.core import Counts
from consumer.observability import EVENTS
from consumer.receiver.intake import IntakeHooks
from consumer.spool import Spool

REQUESTS = Counter(
    "canvas_receiver_requests_total",
    "POSTs to /live-events by outcome: committed, spooled, unverified, too_large, bad_request, unavailable",
    ["outcome"],
)
REQUEST_SECONDS = Histogram(
    "canvas_receiver_request_seconds", "Time to answer a POST to /live-events (verification, commit or spool)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)
UNVERIFIED = Counter("canvas_receiver_unverified_total", "Requests refused with 401, by reason", ["reason"])
GROUP_SIZE = Histogram("canvas_receiver_group_size", "Events per group commit",
                       buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
COMMIT_SECONDS = Histogram("canvas_receiver_commit_seconds", "Database time to commit one group",
                           buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SPOOLED = Counter("canvas_spool_appended_total", "Events appended to the spool (the database could not take them)")
DRAINED = Counter("canvas_spool_drained_total", "Spooled events committed to the database")
REFUSED = Counter("canvas_receiver_refused_total", "Events answered 503 because they could not be made durable",
                  ["reason"])


class ReceiverHooks(IntakeHooks):
    def on_committed(self, counts: Counts, group: int, seconds: float) -> None:
        _count_events(counts)
        GROUP_SIZE.observe(group)
        COMMIT_SECONDS.observe(seconds)

    def on_spooled(self, group: int) -> None:
        SPOOLED.inc(group)

    def on_refused(self, kind: str, group: int) -> None:
        REFUSED.labels(kind).inc(group)

    def on_drained(self, counts: Counts) -> None:
        _count_events(counts)
        DRAINED.inc(counts.read)


def _count_events(counts: Counts) -> None:
    for (event_type, outcome), value in counts.by_type.items():
        if value:
            EVENTS.labels(event_type, outcome).inc(value)


class SpoolGauges(Collector):
    """The spool's depth and age, read at scrape time (O(1): the spool keeps its own totals)."""

    def __init__(self, spool: Spool, database_ok) -> None:
        self.spool = spool
        self.database_ok = database_ok

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.spool.stats()
        yield GaugeMetricFamily("canvas_spool_records", "Events held in the spool, waiting for the database",
                                value=stats.records)
        yield GaugeMetricFamily("canvas_spool_bytes", "Bytes held in the spool", value=stats.bytes)
        yield GaugeMetricFamily("canvas_spool_max_bytes", "SPOOL_MAX_BYTES: past it, events are refused with 503",
                                value=self.spool.max_bytes)
        age = stats.age(time.time())
        yield GaugeMetricFamily("canvas_spool_oldest_age_seconds",
                                "Age of the oldest event in the spool (0 when it is empty)", value=age or 0.0)
        yield GaugeMetricFamily("canvas_receiver_database_ok",
                                "1 while events are committed directly, 0 while they go to the spool",
                                value=1.0 if self.database_ok() else 0.0)


def register_spool(spool: Spool, database_ok) -> SpoolGauges:
    """Register the spool gauges in the default registry (once per process; replaced if called again)."""
    for collector in list(REGISTRY._collector_to_names):  # a second receiver in one process (tests)
        if isinstance(collector, SpoolGauges):
            REGISTRY.unregister(collector)
    gauges = SpoolGauges(spool, database_ok)
    REGISTRY.register(gauges)
    return gauges

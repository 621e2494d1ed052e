"""Prometheus metrics of the API server: requests by route and status, report jobs by status, and the newest
event time of each tracked table (`canvas_data_newest_event_timestamp_seconds`, consumer.observability.DataFreshness).

Report run metrics (duration, lines, outcomes) are counted by the runner
(consumer/reports/runner.py) in the default registry; `/metrics` serves both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from consumer.observability import DataFreshness
from consumer.store.tables import reports

log = logging.getLogger("consumer.api")


class ReportJobs(Collector):
    """Queued and running report jobs across all servers, read from the database at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("canvas_reports_pending", "Report jobs queued (created) or running, all servers",
                                   labels=["status"])
        try:
            with self.engine.connect() as connection:
                counts = dict(connection.execute(
                    select(reports.c.status, func.count()).where(reports.c.status.in_(("created", "running")))
                    .group_by(reports.c.status)
                ).all())
        except Exception as error:  # a scrape must not fail; /readyz reports the database
            log.warning("cannot count report jobs for /metrics: %s", error)
            return
        for status in ("created", "running"):
            family.add_metric([status], counts.get(status, 0))
        yield family


# Methods counted by name; any other (a client may send any token as a method) counts as "other", so a client
# cannot add label values, each a series kept in memory and in every scrape, without bound.
METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def install(app: FastAPI, engine: Engine) -> None:
    registry = CollectorRegistry()
    requests = Counter("canvas_api_requests_total", "API requests by route and status", ["method", "route", "status"],
                       registry=registry)
    seconds = Histogram("canvas_api_request_seconds", "API request time by route", ["route"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    registry.register(ReportJobs(engine))
    registry.register(DataFreshness(engine, log))

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")  # the template, so ids do not become labels
        requests.labels(method_label(request.method), template, str(response.status_code)).inc()
        seconds.labels(template).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", tags=["Health"], summary="Prometheus metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY) + generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

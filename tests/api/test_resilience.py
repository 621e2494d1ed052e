"""What any client can do to the server without a valid token or a valid request.

- close the connection before its body is complete: one INFO line, not a 500
  with two tracebacks at ERROR (an easy way to flood the error log);
- invent HTTP methods: each used to become a label value of
  `canvas_api_requests_total`, a series kept in memory and sent in every scrape;
- arrive while every pooled database connection is busy: 503 with Retry-After
  (the client should retry), not 500 (a bug to report).
"""

from __future__ import annotations

import json
import logging
import socket
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from consumer.api.app import create_app
from consumer.reports.runner import ReportRunner
from consumer.store.engine import make_engine
from consumer.tokens import create_token
from tests.api.asgi import call
from tests.helpers import wait_until


def test_a_client_that_leaves_before_its_body_ends_is_not_an_error(api) -> None:
    started = len(api.server.log_lines())
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", api.server.port)) as client:
            client.sendall(f"POST /api/v1/accounts/79/reports/course_sections_csv HTTP/1.1\r\nHost: localhost\r\n"
                           f"Authorization: Bearer {api.token}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: 1000\r\n\r\n{{\"parameters\": ".encode())
            time.sleep(0.3)

    def logged() -> list[dict]:
        return api.server.log_lines()[started:]

    wait_until(lambda: sum("client disconnected before sending the whole body" in line.get("message", "")
                           for line in logged()) == 3, 10, "three disconnects to be logged")
    assert [line for line in logged() if line.get("level") in ("ERROR", "CRITICAL")] == []
    assert requests.get(f"{api.url}/api/v1/accounts", headers=api.headers(), timeout=10).status_code == 200


def test_invented_methods_add_no_metric_series(api) -> None:
    invented = [f"X{n:03d}{'A' * 200}" for n in range(40)]
    for method in invented:
        with socket.create_connection(("127.0.0.1", api.server.port)) as client:
            client.sendall(f"{method} /api/v1/accounts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            assert client.recv(100).startswith(b"HTTP/1.1 405")
    scrape = requests.get(f"{api.url}/metrics", timeout=10).text
    methods = {sample.labels["method"] for family in text_string_to_metric_families(scrape)
               if family.name == "canvas_api_requests" for sample in family.samples}
    assert methods <= {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "other"}, sorted(methods)[:5]
    counted = sum(sample.value for family in text_string_to_metric_families(scrape) if family.name == "canvas_api_requests"
                  for sample in family.samples if sample.name.endswith("_total") and sample.labels["method"] == "other")
    assert counted >= len(invented)


def test_a_request_that_waits_in_vain_for_a_pooled_connection_gets_503(api_database: str, caplog) -> None:
    engine = make_engine(api_database, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        _, token = create_token(engine, [79], "busy pool")
        app = create_app(engine, ReportRunner(engine))
        with engine.connect(), caplog.at_level(logging.WARNING, logger="consumer.api"):  # the pool's only connection
            answer = call(app, "GET", "/api/v1/accounts/79/reports", headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 503, answer
        assert answer.headers["retry-after"] == "5"
        assert json.loads(answer.body) == {"errors": [{"message": "the database is unavailable; try again shortly"}]}
        assert "database unavailable on GET /api/v1/accounts/79/reports: QueuePool limit" in caplog.text
        assert call(app, "GET", "/api/v1/accounts/79/reports", headers={"Authorization": f"Bearer {token}"}).status == 200
    finally:
        engine.dispose()

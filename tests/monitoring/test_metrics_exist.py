"""Every metric the alert rules and the dashboard name exists on the real /metrics of a running worker
(`canvas-progress run` on the suite's SQS endpoint), receiver (`receive`) and Reports API (`serve`).

Precisely: every canvas_ name in an expression must be declared by a `# TYPE` line of one of the three (a
histogram's _bucket/_sum/_count by its family's line); the gauges read at scrape time (queue counts, oldest
message age, freshness, spool), which have no `# TYPE` line until they have a value, must also have samples,
with the label values the expressions select (both queues, every state); and every label an expression
matches on must be a label of that metric's samples wherever it has samples. Labelled counters that only get
samples once something happens (a report that failed, a 503) are held to their `# TYPE` line and, where the
traffic below made samples, to their label names.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.server import ApiServer
from tests.factory import encode, progress_event
from tests.helpers import environment, on_queue, start_worker, wait_until
from tests.jwks_keys import jwks, new_key
from tests.monitoring.promql import matchers, metric_names, panel_expressions, rule_expressions
from tests.ports import free_port
from tests.receiver.server import Receiver

_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)
SCRAPE_TIME_GAUGES = {
    "canvas_sqs_queue_messages", "canvas_sqs_oldest_message_age_seconds", "canvas_data_newest_event_timestamp_seconds",
    "canvas_spool_records", "canvas_spool_bytes", "canvas_spool_max_bytes", "canvas_spool_oldest_age_seconds",
    "canvas_reports_pending",
}


@dataclass
class Exposition:
    """What /metrics pages declare (`# TYPE` lines: name -> type) and their samples (name -> label sets)."""

    types: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, text: str) -> Exposition:
        self.types.update(dict(_TYPE.findall(text)))
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[sample.name].append(dict(sample.labels))
        return self

    def declares(self, name: str) -> bool:
        if name in self.types:
            return True
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and self.types.get(name.removesuffix(suffix)) in ("histogram", "summary"):
                return True
        return False


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def used_names() -> dict[str, set[str]]:
    """Each canvas_ name in the rules and the panels, and where it is used."""
    where: dict[str, set[str]] = defaultdict(set)
    for origin, expressions in (("rule", rule_expressions()), ("panel", panel_expressions())):
        for key, expr in expressions.items():
            for name in metric_names(expr):
                where[name].add(f"{origin} {key}")
    return where


def test_the_name_extraction_reads_names_and_matchers():
    expr = 'sum by (le) (rate(canvas_db_commit_seconds_bucket{job=~"a|b"}[1m])) / on() canvas_x{queue="dead_letter", state!="x"} > 0'
    assert metric_names(expr) == {"canvas_db_commit_seconds_bucket", "canvas_x"}
    assert metric_names('label_replace(up, "canvas_not_a_metric", "", "", "")') == set()
    assert [(m.metric, m.label, m.op, m.value) for m in matchers(expr)] == [
        ("canvas_db_commit_seconds_bucket", "job", "=~", "a|b"), ("canvas_x", "queue", "=", "dead_letter"), ("canvas_x", "state", "!=", "x")]
    exposition = Exposition(types={"canvas_db_commit_seconds": "histogram", "canvas_events_total": "counter"})
    assert exposition.declares("canvas_db_commit_seconds_bucket") and exposition.declares("canvas_events_total")
    assert not exposition.declares("canvas_events_total_bucket") and not exposition.declares("canvas_db_commit")


@pytest.fixture
def worker_metrics(make_queue, sqs_client, sqs_endpoint, database, tmp_path) -> str:
    """/metrics of a worker that consumed two events, with two messages waiting in its dead-letter queue."""
    queue_url, dead_letter_url = make_queue()
    for n in range(2):
        sqs_client.send_message(QueueUrl=dead_letter_url, MessageBody=f"poison {n}")
    port = free_port()
    worker = start_worker(queue_url, environment(sqs_endpoint, database), tmp_path / "worker.log", "--metrics-port", str(port),
                          "--no-migrate")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: _answers(url), 30, "the worker's /metrics")
        for user in ("1", "2"):
            sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(progress_event("2026-11-30T10:00:00Z", user_id=user)).decode())
        wait_until(lambda: on_queue(sqs_client, queue_url) == 0, 30, "the events to be consumed")

        def complete() -> bool:
            exposition = Exposition().add(scrape(url))
            queues = {(s["queue"], s["state"]) for s in exposition.samples["canvas_sqs_queue_messages"]}
            return (len(queues) == 6 and exposition.samples["canvas_data_newest_event_timestamp_seconds"] != []
                    and exposition.samples["canvas_sqs_oldest_message_age_seconds"] != [])

        wait_until(complete, 30, "the queue, age and freshness gauges")  # the queue gauges read in the background
        return scrape(url)
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()[-3000:]


def _answers(url: str) -> bool:
    try:
        scrape(url)
        return True
    except OSError:
        return False


def test_every_metric_of_the_rules_and_panels_exists_on_the_running_processes(worker_metrics, database, tmp_path):
    worker = Exposition().add(worker_metrics)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_bytes(orjson.dumps(jwks(new_key("monitoring-test"))))
    with Receiver(database, tmp_path / "spool", tmp_path / "receiver.log", "--allow-unsigned", "--jwks-file", str(jwks_file),
                  "--no-migrate").running() as receiver:
        answer = receiver.post(encode(progress_event("2026-11-30T11:00:00Z", user_id="3")))
        assert answer.status == 200, answer
        receiver_text = receiver.get("/metrics").body.decode()
    api = ApiServer(database, tmp_path / "api.log").start()
    try:
        scrape(f"{api.url}/healthz")
        api_text = scrape(f"{api.url}/metrics")
    finally:
        api.stop()
    receiver_exposition, api_exposition = Exposition().add(receiver_text), Exposition().add(api_text)
    everywhere = Exposition().add(worker_metrics).add(receiver_text).add(api_text)

    used = used_names()
    assert len(used) >= 20, sorted(used)
    missing = {name: sorted(where) for name, where in used.items() if not everywhere.declares(name)}
    assert missing == {}, f"named in the rules or panels, served by no process:\n{json.dumps(missing, indent=1)}"
    for name in SCRAPE_TIME_GAUGES & set(used):
        assert everywhere.samples[name], f"{name} has no samples on any process"
    for matcher in (m for expr in [*rule_expressions().values(), *panel_expressions().values()] for m in matchers(expr)):
        samples = everywhere.samples.get(matcher.metric, [])
        assert all(matcher.label in labels for labels in samples), f"{matcher}: not a label of {matcher.metric}"
        if matcher.op == "=" and matcher.metric in SCRAPE_TIME_GAUGES:
            assert any(labels[matcher.label] == matcher.value for labels in samples), f"{matcher}: no such sample"

    # Where each family comes from, and what the traffic made of it.
    assert {s["queue"] for s in worker.samples["canvas_sqs_queue_messages"]} == {"source", "dead_letter"}
    dead = [s for s in worker.samples["canvas_sqs_queue_messages"] if s == {"queue": "dead_letter", "state": "visible"}]
    assert dead, worker.samples["canvas_sqs_queue_messages"]
    assert _value(worker_metrics, 'canvas_sqs_queue_messages{queue="dead_letter",state="visible"}') == 2
    assert {s["table"] for s in api_exposition.samples["canvas_data_newest_event_timestamp_seconds"]} >= {"course_progress", "users"}
    assert receiver_exposition.samples["canvas_spool_max_bytes"] and receiver_exposition.declares("canvas_receiver_requests_total")
    assert api_exposition.declares("canvas_reports_finished_total") and api_exposition.declares("canvas_api_request_seconds_bucket")
    # The worker's own metrics are the worker's only: a receiver or API server serving a heartbeat of 0 would look stuck.
    assert not receiver_exposition.declares("canvas_worker_heartbeat_timestamp_seconds")
    assert not api_exposition.declares("canvas_worker_heartbeat_timestamp_seconds")


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {sample}")

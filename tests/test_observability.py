"""/metrics, /healthz and /readyz of a running worker change as events flow (real SQS server, real Postgres)."""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request

from tests.factory import SAMPLE_EVENTS
from tests.helpers import cli, environment, on_queue, start_worker, wait_until
from tests.ports import free_port


def get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_and_health_follow_the_events(make_queue, sqs_client, sqs_endpoint, database, tmp_path, sample_expectations):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    port = free_port()
    worker = start_worker(queue_url, env, tmp_path / "worker.log", "--metrics-port", str(port), "--no-migrate")
    try:
        wait_until(lambda: get(port, "/healthz")[0] == 200, 30, "/healthz to answer")
        assert get(port, "/readyz") == (200, "ready\n")
        _, before = get(port, "/metrics")
        assert metric(before, "canvas_events_total") == 0
        assert cli("send", str(SAMPLE_EVENTS), "--queue-url", queue_url, env=env).returncode == 1  # one line not UTF-8
        wait_until(lambda: on_queue(sqs_client, queue_url) == 0, 30, "the sample events to be consumed")
        sent = sample_expectations.sendable
        wait_until(lambda: metric(get(port, "/metrics")[1], "canvas_events_total") == sent, 10, f"{sent} events counted")
        _, after = get(port, "/metrics")
        assert metric(after, "canvas_events_total", outcome="rejected") == sample_expectations.rejected_sendable
        assert metric(after, "canvas_events_total", outcome="ignored", event_type="asset_accessed") == sample_expectations.ignored
        assert metric(after, "canvas_events_total", event_type="progress", outcome="applied") >= 1
        assert metric(after, "canvas_sqs_messages_received_total") == sent
        assert metric(after, "canvas_db_commit_seconds_count") >= 1
        assert metric(after, "canvas_event_lag_seconds_count") == sample_expectations.tracked_sendable
        assert metric(after, "canvas_receipt_to_commit_seconds_count") == sent
        assert re.search(r"^canvas_worker_heartbeat_timestamp_seconds \d", after, re.M)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def test_readyz_answers_only_the_status_and_logs_why_once(make_queue, sqs_endpoint, tmp_path):
    """Unauthenticated callers learn "not ready", not the database's host, port and name; the log says why, once."""
    queue_url, _ = make_queue()
    port, database_port = free_port(), free_port()
    env = environment(sqs_endpoint, f"postgresql+psycopg://tracker:s3cret-pw@127.0.0.1:{database_port}/grades_db_x")
    log = tmp_path / "worker.log"
    worker = start_worker(queue_url, env, log, "--metrics-port", str(port), "--no-migrate")
    try:
        wait_until(lambda: get(port, "/readyz")[0] != 0, 30, "/readyz to answer")
        answers = {get(port, "/readyz") for _ in range(5)}
        assert answers == {(503, "not ready\n")}
        assert get(port, "/healthz")[0] == 200  # alive: it is waiting for the database, not stuck
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    why = [line["message"] for line in lines if line["message"].startswith("not ready")]
    assert len(why) == 1, why  # six probes, one line
    assert f"127.0.0.1:{database_port}/grades_db_x" in why[0] and "s3cret-pw" not in log.read_text()


def test_probe_server_listens_on_metrics_host_only(make_queue, sqs_endpoint, database, tmp_path):
    """127.0.0.1 unless METRICS_HOST says otherwise (Linux answers on all of 127.0.0.0/8, so 127.0.0.2 tells them apart)."""
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    for setting, listening, not_listening in ((), "127.0.0.1", "127.0.0.2"), (("--metrics-host", "127.0.0.2"), "127.0.0.2", "127.0.0.1"):
        port = free_port()
        worker = start_worker(queue_url, env, tmp_path / "worker.log", "--metrics-port", str(port), "--no-migrate", *setting)
        try:
            wait_until(lambda: get(port, "/healthz", listening)[0] == 200, 30, f"/healthz on {listening}")  # noqa: B023
            assert get(port, "/healthz", not_listening) == (0, "")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0


def test_an_address_the_machine_does_not_have_is_one_line(make_queue, sqs_endpoint, database):
    queue_url, _ = make_queue()
    result = cli("run", "--queue-url", queue_url, "--metrics-port", str(free_port()), "--metrics-host", "192.0.2.1",
                 env=environment(sqs_endpoint, database), timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1].startswith("error: cannot listen on 192.0.2.1 port ")
    assert "METRICS_HOST / --metrics-host" in result.stderr.decode()


def test_workers_sharing_a_metrics_port_both_run(make_queue, sqs_client, sqs_endpoint, database, tmp_path):
    queue_url, _ = make_queue()
    env = environment(sqs_endpoint, database)
    port = free_port()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    workers = [start_worker(queue_url, env, log, "--metrics-port", str(port), "--no-migrate") for log in logs]
    try:
        wait_until(lambda: all("worker started" in log.read_text() for log in logs if log.exists()) and all(log.exists() for log in logs), 30, "both workers to start")
        assert all(worker.poll() is None for worker in workers)
        assert get(port, "/healthz")[0] == 200
        assert any("unavailable" in log.read_text() for log in logs)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(timeout=30) for worker in workers] == [0, 0]


def _flood(port: int, count: int) -> list:
    import socket
    import time

    connections = []
    for _ in range(count):
        connections.append(socket.create_connection(("127.0.0.1", port)))
        # Hands the interpreter lock to the server's accept loop, as a flood from another process would leave it:
        # starved here, the loop let its backlog (5) fill, and each further connect waited a second for a SYN retry.
        time.sleep(0)
    return connections


def _dropped(connection) -> bool:
    """Whether the server closed this connection (end of stream or reset), without waiting."""
    import socket

    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_to_the_probe_port_cannot_take_the_worker_s_threads():
    # Anyone who reaches the port (0.0.0.0 in a pod) could open connections that never send a request: each held a
    # thread and a file descriptor forever, until the worker could open none for the database or SQS.
    import threading

    from consumer.observability import MAX_CONNECTIONS, HealthServer, Heartbeat

    server = HealthServer(0, Heartbeat(), lambda: (True, "ok")).start()
    before = threading.active_count()
    idle = _flood(server.port, 300)
    try:
        # every connection accepted: those beyond the limit closed at once, the others each holding a thread
        wait_until(lambda: sum(map(_dropped, idle)) == 300 - MAX_CONNECTIONS, 10, "the connections beyond the limit to be closed")
        assert threading.active_count() - before <= MAX_CONNECTIONS
    finally:
        for connection in idle:
            connection.close()
        server.stop()


def test_a_client_that_sends_nothing_is_dropped_and_probes_are_answered_again():
    import time

    from consumer.observability import MAX_CONNECTIONS, HealthServer, Heartbeat

    server = HealthServer(0, Heartbeat(), lambda: (True, "ok"), request_timeout=1.0).start()
    idle = _flood(server.port, MAX_CONNECTIONS * 3)
    try:
        started = time.monotonic()
        for connection in idle:  # each is closed: at once beyond the limit, after request_timeout otherwise
            connection.settimeout(10)
            try:
                assert connection.recv(100) == b""
            except ConnectionResetError:
                pass
        assert time.monotonic() - started < 5
        assert get(server.port, "/healthz")[0] == 200
    finally:
        for connection in idle:
            connection.close()
        server.stop()



def test_prometheus_hooks_keep_every_worker_metric(sqlite_engine):
    """In-process, on the stub queue and virtual time: each hook moves its metric, by exactly what happened."""
    from prometheus_client import REGISTRY
    from sqlalchemy import text

    from consumer.observability import PrometheusHooks
    from consumer.pipeline import Pipeline
    from consumer.sources.sqs import QueueError
    from consumer.worker import Worker, WorkerOptions
    from tests.factory import encode, progress_event
    from tests.worker.fake_clock import FakeClock
    from tests.worker.harness import Running
    from tests.worker.stub_queue import StubQueue

    names = {
        "received": ("canvas_sqs_messages_received_total", {}),
        "receive_errors": ("canvas_sqs_receive_errors_total", {}),
        "delete_errors": ("canvas_sqs_delete_errors_total", {}),
        "batch_failures": ("canvas_batch_failures_total", {}),
        "applied": ("canvas_events_total", {"event_type": "progress", "outcome": "applied"}),
        "ignored": ("canvas_events_total", {"event_type": "asset_accessed", "outcome": "ignored"}),
        "rejected": ("canvas_events_total", {"event_type": "unknown", "outcome": "rejected"}),
        "batches": ("canvas_batch_size_count", {}),
        "batch_messages": ("canvas_batch_size_sum", {}),
        "commits": ("canvas_db_commit_seconds_count", {}),
        "receipts": ("canvas_receipt_to_commit_seconds_count", {}),
        "receipt_seconds": ("canvas_receipt_to_commit_seconds_sum", {}),
        "lags": ("canvas_event_lag_seconds_count", {}),
    }

    def values() -> dict[str, float]:
        return {key: REGISTRY.get_sample_value(name, labels) or 0.0 for key, (name, labels) in names.items()}

    before = values()
    clock = FakeClock()
    queue = StubQueue(clock)
    queue.receive_errors.append(QueueError("reset"))
    queue.failing_deletes = 1
    queue.send_bodies(*[encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))) for n in range(4)])
    queue.send_bodies(b"not even JSON", event_name="asset_accessed")
    queue.send_bodies(b"{not json")
    hooks = PrometheusHooks()
    options = WorkerOptions(receivers=1, wait_time_seconds=20, batch_size=100, flush_interval=0.5, shutdown_grace=10)
    running = Running(Worker(queue, Pipeline(sqlite_engine), options, hooks=hooks, clock=clock), clock)
    try:
        running.run_until(lambda: values()["batches"] > before["batches"], "a committed batch")
        with sqlite_engine.begin() as connection:  # then the database refuses every write
            connection.execute(text("ALTER TABLE course_progress RENAME TO course_progress_away"))
        queue.send_bodies(encode(progress_event("2019-11-01T00:00:00Z", user_id="99")))
        running.run_until(lambda: values()["batch_failures"] > before["batch_failures"], "a failed batch")
        assert hooks.heartbeat.age() < 5 and REGISTRY.get_sample_value("canvas_worker_heartbeat_timestamp_seconds") > 0
        assert REGISTRY.get_sample_value("canvas_worker_in_flight_messages") == 1  # the one that failed, until it is left
    finally:
        running.stop()
    delta = {key: value - before[key] for key, value in values().items()}
    assert delta == {
        "received": 7, "receive_errors": 1, "delete_errors": 1, "batch_failures": 1, "applied": 4, "ignored": 1, "rejected": 1,
        "batches": 1, "batch_messages": 6, "commits": 1, "receipts": 6, "receipt_seconds": 3.0, "lags": 4,
    }

"""`python -m consumer receive` in a subprocess on a free loopback port, and a plain HTTP client for it.

`Receiver.start` waits for /healthz (not /readyz: a receiver whose database
is down is healthy and spools); `stop` sends SIGTERM (or any signal) and
returns the exit status and the log. The client side is `http.client`, one
connection per call (or one per thread in `post_all`), so a test sees the
status, the headers and the body exactly as the server sent them, and what a
dropped connection looks like.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_port


@dataclass
class Answer:
    """One HTTP answer; `status` None when the connection failed (`error` says how)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def request_id(self) -> str:
        return self.json["request_id"]


class Receiver:
    """One `receive` process. `args` are extra flags; DATABASE_URL, --port and --spool-dir are always set."""

    def __init__(self, database_url: str, spool_dir: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.spool_dir = spool_dir
        self.log = log
        self.args = args
        self.env = {**os.environ, "DATABASE_URL": database_url, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", **(env or {})}
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "consumer", "receive", "--host", "127.0.0.1", "--port", str(self.port),
                "--spool-dir", str(self.spool_dir), *self.args]

    def start(self, timeout: float = 30) -> Receiver:
        with open(self.log, "ab") as stream:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=stream, stderr=stream)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"receive exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            answer = self.get("/healthz", timeout=1)
            if answer.status == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"receive did not answer /healthz in {timeout}s:\n{self.log_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> tuple[int, str]:
        """Send `sig` (unless it has exited already) and wait: (exit status, the whole log)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout), self.log_text()

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        """Started for a `with` block (a module fixture's life); at its end it must stop on SIGTERM with exit 0."""
        self.start()
        try:
            yield self
            code, log = self.stop()
            assert code == 0, log[-3000:]
        finally:
            self.kill()

    def kill(self) -> None:
        """Stop it whatever it is doing (fixtures' clean-up): SIGKILL unless it has exited."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    # -- talking to it ----------------------------------------------------------------------------------------

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 30) -> Answer:
        connection = self.connection(timeout)
        try:
            return exchange(connection, method, path, body, headers)
        finally:
            connection.close()

    def post(self, body: bytes, headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
        return self.request("POST", "/live-events", body, headers, timeout)

    def get(self, path: str, timeout: float = 10) -> Answer:
        return self.request("GET", path, timeout=timeout)

    def readyz(self) -> Answer:
        return self.get("/readyz")

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """Every sample of /metrics: (name, labels) -> value."""
        answer = self.get("/metrics")
        assert answer.status == 200, answer
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.body.decode())
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent: a labelled counter appears at its first increment)."""
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def post_all(self, bodies: Sequence[bytes], threads: int = 8, timeout: float = 60,
                 on_answer: Callable[[int, Answer], None] | None = None) -> list[Answer]:
        """POST every body, `threads` senders at once (each on its own keep-alive connection); answers in order.

        `on_answer(index, answer)` is called by the sender thread as each answer arrives (before its next POST).
        """
        answers: list[Answer | None] = [None] * len(bodies)
        cursor = iter(range(len(bodies)))
        lock = threading.Lock()

        def sender() -> None:
            connection = self.connection(timeout)
            try:
                while True:
                    with lock:
                        index = next(cursor, None)
                    if index is None:
                        return
                    answer = answers[index] = exchange(connection, "POST", "/live-events", bodies[index])
                    if on_answer is not None:
                        on_answer(index, answer)
                    if answer.status is None:  # a failed connection is not reused
                        connection.close()
                        connection = self.connection(timeout)
            finally:
                connection.close()

        workers = [threading.Thread(target=sender) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout * 2)
        assert all(answer is not None for answer in answers), "a sender thread did not finish"
        return answers  # type: ignore[return-value]

    # -- its log ----------------------------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_lines(self) -> list[dict]:
        """The JSON log lines (anything else the process printed is left out)."""
        lines = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                lines.append(record)
        return lines


def exchange(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer:
    """One request on `connection`; a connection that fails gives Answer(None, error=...) instead of raising."""
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        content = response.read()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        return Answer(None, error=f"{type(error).__name__}: {error}")
    return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, content)

"""`python -m consumer serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from consumer.store.engine import make_engine
from consumer.tokens import create_token as make_token
from tests.ports import free_port


class ApiServer:
    def __init__(self, database_url: str, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.log = log
        self.args = args
        self.env = {**os.environ, "DATABASE_URL": database_url, "LOG_FORMAT": "json", **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> ApiServer:
        with open(self.log, "ab") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "consumer", "serve", "--port", str(self.port), *self.args],
                env=self.env, stdout=stream, stderr=stream,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not become ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines


def create_token(database_url: str, *accounts: int, name: str = "test") -> str:
    """A token for `accounts`, made in-process (`token create` itself is tested in tests/test_cli.py)."""
    engine = make_engine(database_url)
    try:
        return make_token(engine, list(accounts), name)[1]
    finally:
        engine.dispose()


def until_done(canvas, progress_id: int, timeout: float = 30):
    """Follow a Progress with canvasapi (a Canvas object) until it is neither queued nor running; returns it."""
    progress = canvas.get_progress(progress_id)
    deadline = time.monotonic() + timeout
    while progress.workflow_state in ("queued", "running"):
        assert time.monotonic() < deadline, f"progress {progress_id} still {progress.workflow_state}"
        time.sleep(0.1)
        progress = progress.query()
    return progress

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
    args = [arg for account in accounts for arg in ("--account", str(account))]
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "token", "create", *args, "--name", name, "--json"],
        env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["token"]

"""A real SQS and S3 HTTP endpoint for the tests: ministack, on a free port (one server serves both).

ministack pins an exact botocore, so it lives in a virtualenv of its own,
created on first use and cached (MINISTACK_BIN points at an existing one).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.ports import free_port

MINISTACK_REQUIREMENT = "ministack>=1.5"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "canvas-progress" / "ministack-venv"


def ministack_binary() -> Path:
    configured = os.environ.get("MINISTACK_BIN")
    if configured:
        return Path(configured)
    binary = CACHE / "bin" / "ministack"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CACHE)], check=True)
        subprocess.run([str(CACHE / "bin" / "pip"), "install", "-q", MINISTACK_REQUIREMENT], check=True)
    return binary


class SqsServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.state = tempfile.TemporaryDirectory(prefix="ministack-")
        self.log = Path(self.state.name) / "ministack.log"
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        env = {**os.environ, "GATEWAY_PORT": str(self.port), "BIND_HOST": "127.0.0.1", "SERVICES": "sqs,s3", "STATE_DIR": self.state.name}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([str(ministack_binary())], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ministack exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self.endpoint
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"ministack did not listen on {self.port} within 60s")

    def stop(self) -> None:
        if self.process is not None:
            # Its state is thrown away: no need to wait while it lets open connections (a long poll) finish.
            self.process.terminate()
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.state.cleanup()

"""deploy/systemd: the worker's unit restarts, migrates first and stops gracefully (systemd-analyze verifies it
where installed)."""

from __future__ import annotations

import configparser
import shutil
import subprocess

from consumer.config import Settings
from tests.deploy.manifests import DEPLOY


def test_systemd_unit_restarts_and_stops_gracefully():
    unit_path = DEPLOY / "systemd" / "canvas-progress-worker.service"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(unit_path)
    service = unit["Service"]
    assert service["ExecStart"].endswith("canvas-progress run")
    assert service["ExecStartPre"].endswith("canvas-progress migrate")
    assert service["Restart"] == "always" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > Settings().shutdown_grace
    assert service["EnvironmentFile"]
    if shutil.which("systemd-analyze"):
        result = subprocess.run(["systemd-analyze", "verify", str(unit_path)], capture_output=True, text=True)
        problems = [line for line in result.stderr.splitlines() if line.strip() and "is not executable" not in line]
        assert problems == [], problems

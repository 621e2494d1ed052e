"""The receiver as deploy/kubernetes runs it: the StatefulSet's args and environment (the ConfigMap's and its own)
start `receive` on loopback, which answers on the probes' paths, the scrape path and the Ingress path, keeps
events in the directory the volume is mounted at, and stops within the grace period; `canvas-progress status
--spool-dir` then shows what the spool still holds (the runbook's check before a scale-in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import container_env, load
from tests.jwks_keys import canvas_claims, jwks, new_key, sign
from tests.receiver.server import Receiver

SAMPLE = Path(__file__).resolve().parents[2] / "sample_events" / "course_progress.json"


def test_the_manifest_s_receiver_answers_spools_and_stops_in_time(tmp_path):
    (statefulset,) = load("base/receiver-statefulset.yaml")
    template = statefulset["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    env = container_env(container)  # the ConfigMap's, then the container's own
    key = new_key("2026-11")
    keys = tmp_path / "jwks.json"
    keys.write_bytes(orjson.dumps(jwks(key)))  # the manifest's JWKS_URL is Canvas's: no network here
    spool = tmp_path / "spool"  # where the claim is mounted, in the pod
    # The schema is not migrated (`--no-migrate`, before the migrate Job has run): events wait in the spool.
    database = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert container["args"][0] == "receive"
    receiver = Receiver(database, spool, tmp_path / "receiver.log", *container["args"][1:],
                        env={**env, "JWKS_FILE": str(keys), "LOG_FORMAT": "json"})
    try:
        receiver.start()
        liveness = container["livenessProbe"]["httpGet"]["path"]
        readiness = container["readinessProbe"]["httpGet"]["path"]
        assert receiver.get(liveness).status == 200
        ready = receiver.get(readiness)
        assert ready.status == 200, ready
        assert ready.json["spool_records"] == 0 and ready.json["spool_oldest_age_seconds"] is None

        # The Ingress's one path is the receiver's route, and it takes signed events only (ALLOW_UNSIGNED unset).
        (ingress,) = load("receiver-ingress.example.yaml")
        route = ingress["spec"]["rules"][0]["http"]["paths"][0]["path"]
        event = json.loads(SAMPLE.read_text())
        assert receiver.request("POST", route, SAMPLE.read_bytes()).status == 401
        signed = receiver.request("POST", route, sign(canvas_claims(event, issuer=env["JWT_ISSUER"]), key, key.kid))
        assert signed.status == 200 and signed.json.get("status") == "spooled", signed

        ready = receiver.get(readiness)
        assert ready.status == 200 and ready.json["spool_records"] == 1
        scraped = receiver.get(template["metadata"]["annotations"]["prometheus.io/path"])
        samples = {sample.name: sample.value for family in text_string_to_metric_families(scraped.body.decode())
                   for sample in family.samples}
        assert samples["canvas_spool_records"] == 1

        # SIGTERM (after the preStop sleep, in the pod): answered, flushed and gone well within the grace period.
        started = time.monotonic()
        status, log = receiver.stop()
        took = time.monotonic() - started
        assert status == 0, log[-3000:]
        pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert took + pre_stop < pod["terminationGracePeriodSeconds"]
    finally:
        receiver.kill()

    # What the runbook says to run before scaling in: the spool still holds the event, on the volume.
    result = subprocess.run([sys.executable, "-m", "consumer", "status", "--spool-dir", str(spool), "--json"],
                            env={**os.environ, "DATABASE_URL": database}, capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout)
    assert report["spool_records"] == 1, result.stdout + result.stderr
    assert result.returncode in (0, 1)  # 1: the schema is not migrated here, which `status` reports as unhealthy

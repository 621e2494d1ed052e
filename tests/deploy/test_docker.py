"""deploy/Dockerfile and deploy/docker-compose.yml: a slim non-root image built in layers, and a stack wired as
the worker and the API expect, published on loopback only."""

from __future__ import annotations

import re

import yaml

from consumer.config import Settings
from tests.deploy.manifests import DEPLOY


def test_dockerfile_is_multi_stage_slim_and_non_root():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) >= 2
    final = stages[-1]
    assert "slim" in final.splitlines()[0]
    assert re.search(r"^USER (?!0\b|root\b)\S+", final, re.M)
    assert not re.search(r"gcc|build-essential|apt-get install", final)
    assert 'ENTRYPOINT ["canvas-progress"]' in final
    assert "COPY migrations" in stages[0]  # the migrations ship inside the wheel
    build = stages[0]
    # The dependencies are resolved from pyproject.toml alone, before any source is copied: a code change reuses them.
    assert build.index("requirements.txt") < build.index("COPY consumer")
    assert "COPY . " not in build and "COPY pyproject.toml ./" in build
    # The runtime user owns its working directory, where the embedded SQLite default is created.
    assert re.search(r"chown (canvas:canvas|10001:10001) /data", final) and re.search(r"^WORKDIR /data$", final, re.M)
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert {".git", "tests", "**/__pycache__"} <= set(ignored)


def test_compose_stack_wires_the_worker_to_postgres_and_the_emulator():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "sqs", "queues", "migrate", "worker"} <= set(services)
    worker = services["worker"]
    assert worker["command"] == ["run"]
    assert worker["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert worker["environment"]["AWS_ENDPOINT_URL_SQS"] == "http://sqs:4566"
    assert "canvas-live-events" in worker["environment"]["SQS_QUEUE_URL"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert int(worker["stop_grace_period"].rstrip("s")) > Settings().shutdown_grace
    api = services["api"]
    assert api["command"][0] == "serve" and api["environment"]["API_HOST"] == "0.0.0.0"
    assert api["ports"] == [f"127.0.0.1:{api['environment']['API_PORT']}:{api['environment']['API_PORT']}"]
    assert api["environment"]["DATABASE_URL"] == worker["environment"]["DATABASE_URL"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_publishes_ports_on_loopback_only():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert published, "the stack publishes its API, metrics, Postgres and the emulator"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert compose["services"]["worker"]["environment"]["METRICS_HOST"] == "0.0.0.0"  # reachable from the host port

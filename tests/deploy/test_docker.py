"""deploy/Dockerfile and deploy/docker-compose.yml: a slim non-root image built in layers, and a stack wired as
the worker, the API and the receiver expect, published on loopback only."""

from __future__ import annotations

import re

import yaml

from consumer.config import Settings
from tests.deploy.manifests import DEPLOY, load


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


def test_dockerfile_gives_the_receiver_its_spool_directory_and_port():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    final = re.split(r"^FROM ", dockerfile, flags=re.M)[-1]
    (statefulset,) = load("base/receiver-statefulset.yaml")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    # The image's SPOOL_DIR is where Kubernetes and compose mount the spool, and the runtime user owns it
    # (a Docker named volume takes its owner from the image's directory when it is created).
    spool = re.search(r"^\s+SPOOL_DIR=(\S+?)\s*\\?$", final, re.M)
    assert spool and spool[1] == env["SPOOL_DIR"]
    parent = spool[1].rsplit("/", 1)[0]
    assert re.search(rf"mkdir -p {re.escape(spool[1])} && chown -R (canvas:canvas|10001:10001) {re.escape(parent)}\b", final)
    assert re.search(r"^\s+RECEIVE_HOST=0\.0\.0\.0\b", final, re.M)
    exposed = {int(port) for line in re.findall(r"^EXPOSE (.+)$", final, re.M) for port in line.split()}
    assert {Settings().receive_port, int(env["RECEIVE_PORT"])} <= exposed


def test_compose_receiver_keeps_its_spool_in_a_named_volume():
    from consumer.cli import build_parser
    from consumer.commands.receive import GRACE_SECONDS

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    receiver = compose["services"]["receiver"]
    environment = receiver["environment"]
    args = build_parser().parse_args(receiver["command"])
    assert args.command == "receive" and args.no_migrate
    assert receiver["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert environment["DATABASE_URL"] == compose["services"]["worker"]["environment"]["DATABASE_URL"]
    settings = Settings(**{k.lower(): v for k, v in environment.items() if k.lower() in Settings.model_fields})
    assert settings.receive_host == "0.0.0.0"
    assert receiver["ports"] == [f"127.0.0.1:{settings.receive_port}:{settings.receive_port}"]
    (volume,) = receiver["volumes"]
    name, target = volume.split(":")
    assert target == settings.spool_dir and name in compose["volumes"]  # named: survives `down` and a rebuild
    # Unsigned events are for this loopback-only stack: it says so where it is set.
    assert settings.allow_unsigned is True
    assert "THIS LOCAL STACK ONLY" in (DEPLOY / "docker-compose.yml").read_text()
    # SIGTERM: uvicorn's drain, then the intake's flush, each up to GRACE_SECONDS, before Docker's SIGKILL.
    assert int(receiver["stop_grace_period"].rstrip("s")) > 2 * GRACE_SECONDS

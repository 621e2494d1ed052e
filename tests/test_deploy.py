"""The deployment files pass their validators and agree with each other and with the code."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from consumer.config import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "kubernetes"
CORE_MANIFESTS = ["common/configmap.yaml", "secret.example.yaml", "common/serviceaccount.yaml", "migrate/migrate-job.yaml",
                  "base/worker-deployment.yaml", "base/worker-pdb.yaml", "base/worker-metrics-service.yaml",
                  "base/api-deployment.yaml", "base/api-service.yaml", "base/api-pdb.yaml", "base/rejected-purge-cronjob.yaml"]


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def load(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def test_kubernetes_manifests_pass_strict_schema_validation():
    result = subprocess.run([tool("kubernetes-validate"), "--strict", *(str(K8S / m) for m in CORE_MANIFESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for manifest in CORE_MANIFESTS:
        assert re.search(rf"INFO .*{re.escape(manifest)} passed", result.stdout), result.stdout


def test_worker_deployment_agrees_with_the_worker():
    (config,) = load("common/configmap.yaml")
    (deployment,) = load("base/worker-deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["run"]
    assert pod["terminationGracePeriodSeconds"] > float(config["data"]["SHUTDOWN_GRACE"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == int(config["data"]["METRICS_PORT"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    Settings(**{k.lower(): v for k, v in config["data"].items() if k.lower() in Settings.model_fields})  # every value is valid


def test_api_deployment_and_service_agree_with_serve():
    from consumer.api.app import create_app
    from consumer.cli import build_parser
    from consumer.reports.runner import ReportRunner
    from consumer.store.engine import make_engine

    (config,) = load("common/configmap.yaml")
    (deployment,) = load("base/api-deployment.yaml")
    (service,) = load("base/api-service.yaml")
    (pdb,) = load("base/api-pdb.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.no_migrate  # migrate-job.yaml runs the migrations
    settings = Settings(**{k.lower(): v for k, v in {**config["data"], **env}.items() if k.lower() in Settings.model_fields})
    assert settings.api_host == "0.0.0.0" and settings.api_port == container["ports"][0]["containerPort"]
    app = create_app(make_engine("sqlite://"), ReportRunner(make_engine("sqlite://")))
    paths = set(app.openapi()["paths"])
    assert {container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]} <= paths
    assert container["livenessProbe"]["httpGet"]["port"] == container["ports"][0]["name"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert {"api-deployment.yaml", "api-service.yaml", "api-pdb.yaml"} <= set(kustomization["resources"])


def test_keda_scales_the_worker_on_the_configured_queue():
    (config,) = load("common/configmap.yaml")
    (deployment,) = load("base/worker-deployment.yaml")
    auth, scaled = load("overlays/keda/keda-scaledobject.yaml")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"] == config["data"]["SQS_QUEUE_URL"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1  # never 0: the worker also extends visibility of what it holds
    (pdb,) = load("base/worker-pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_cloudformation_template_passes_cfn_lint_and_grants_exactly_the_worker_actions():
    template_path = DEPLOY / "cloudformation" / "live-events-queue.yaml"
    result = subprocess.run([tool("cfn-lint"), str(template_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else loader.construct_sequence(node))
    template = yaml.load(template_path.read_text(), Loader=Loader)  # our own file, custom safe loader
    resources = template["Resources"]
    assert template["Parameters"]["QueueName"]["Default"].startswith("canvas-live-events")
    assert "RedrivePolicy" in resources["LiveEventsQueue"]["Properties"]
    (statement,) = resources["LiveEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert "${LiveEventsAccountId}" in statement["Principal"]["AWS"] and template["Parameters"]["LiveEventsAccountId"]["Default"] == "636161780776"
    assert statement["Action"] == "sqs:SendMessage"
    (worker,) = resources["WorkerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(worker["Action"]) == ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]


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


def _pod_specs() -> dict[str, dict]:
    """Every pod template in the manifests, by the manifest's file name."""
    pods = {}
    for manifest in CORE_MANIFESTS:
        for doc in load(manifest):
            spec = doc.get("spec", {})
            if doc["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            if "template" in spec:
                pods[manifest] = spec["template"]["spec"]
    return pods


def test_only_the_worker_carries_the_cloud_role():
    accounts = {doc["metadata"]["name"]: doc for doc in load("common/serviceaccount.yaml")}
    with_role = {name for name, doc in accounts.items() if "eks.amazonaws.com/role-arn" in doc["metadata"].get("annotations", {})}
    pods = _pod_specs()
    assert set(pods) >= {"base/worker-deployment.yaml", "base/api-deployment.yaml", "migrate/migrate-job.yaml",
                         "base/rejected-purge-cronjob.yaml"}
    for manifest, pod in pods.items():
        assert pod["serviceAccountName"] in accounts, manifest
        assert pod["automountServiceAccountToken"] is False, manifest  # none of them calls the Kubernetes API
        assert (pod["serviceAccountName"] in with_role) == (manifest == "base/worker-deployment.yaml"), manifest
    assert all(doc.get("automountServiceAccountToken") is False for doc in accounts.values())


def test_probe_and_url_settings_are_set_for_containers():
    (config,) = load("common/configmap.yaml")
    settings = Settings(**{k.lower(): v for k, v in config["data"].items() if k.lower() in Settings.model_fields})
    assert settings.metrics_host == "0.0.0.0"  # the kubelet probes the pod IP
    assert Settings.model_fields["metrics_host"].default == "127.0.0.1"  # outside containers
    # URLs handed to clients never come from a Host header the deployment did not name.
    assert settings.public_url and settings.public_url.startswith("https://")
    assert "*" not in settings.allowed_hosts.split(",")
    assert "METRICS_HOST=0.0.0.0" in (DEPLOY / "Dockerfile").read_text()


def test_compose_publishes_ports_on_loopback_only():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert published, "the stack publishes its API, metrics, Postgres and the emulator"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert compose["services"]["worker"]["environment"]["METRICS_HOST"] == "0.0.0.0"  # reachable from the host port


def kustomize(directory: str) -> list[dict]:
    """`kubectl kustomize` of a directory under deploy/kubernetes, as the objects it renders."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to check the Kustomize layout"
    rendered = subprocess.run([kubectl, "kustomize", str(K8S / directory)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def test_kustomize_base_needs_nothing_but_kubernetes_and_overlays_add_keda(tmp_path):
    base = kustomize(".")
    kinds = {doc["kind"] for doc in base}
    assert {"Deployment", "CronJob", "ConfigMap", "ServiceAccount", "Service", "PodDisruptionBudget"} <= kinds
    assert not [doc for doc in base if doc["apiVersion"].startswith("keda.sh/")]  # applies on clusters without KEDA
    keda = kustomize("overlays/keda")
    assert {doc["kind"] for doc in keda if doc["apiVersion"].startswith("keda.sh/")} == {"ScaledObject", "TriggerAuthentication"}
    assert len(keda) == len(base) + 2
    # The rendered base passes the same strict schema validation as the files.
    (tmp_path / "base.yaml").write_text(yaml.safe_dump_all(base))
    result = subprocess.run([tool("kubernetes-validate"), "--strict", str(tmp_path / "base.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_migrate_job_brings_what_it_needs_on_a_first_deploy():
    objects = kustomize("migrate")
    (job,) = [doc for doc in objects if doc["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in objects}
    assert ("ServiceAccount", pod["serviceAccountName"]) in names
    for source in pod["containers"][0]["envFrom"]:
        if "configMapRef" in source:
            assert ("ConfigMap", source["configMapRef"]["name"]) in names
    assert not any(kind in ("Deployment", "CronJob") for kind, _ in names)  # the schema first, workloads after


def test_the_image_is_named_once():
    images = set()
    for directory in (".", "migrate", "overlays/keda"):
        images |= {container["image"] for doc in kustomize(directory) if doc["kind"] in ("Deployment", "Job", "CronJob")
                   for container in _containers(doc)}
    (image,) = images
    component = yaml.safe_load((K8S / "components" / "image" / "kustomization.yaml").read_text())
    (entry,) = component["images"]
    assert image == f"{entry['newName']}:{entry['newTag']}"
    files = [path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml"]
    named = [path for path in files if entry["newName"] in path.read_text()]
    assert named == [], f"the image is named outside components/image: {named}"


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]

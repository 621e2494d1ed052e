"""deploy/kubernetes: the manifests pass strict schema validation, render with Kustomize (base without KEDA,
overlays), and agree with each other and with the code."""

from __future__ import annotations

import re
import subprocess

import yaml

from consumer.config import Settings
from tests.deploy.manifests import CORE_MANIFESTS, DEPLOY, K8S, containers, kustomize, load, pod_specs, tool


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


def test_only_the_worker_carries_the_cloud_role():
    accounts = {doc["metadata"]["name"]: doc for doc in load("common/serviceaccount.yaml")}
    with_role = {name for name, doc in accounts.items() if "eks.amazonaws.com/role-arn" in doc["metadata"].get("annotations", {})}
    pods = pod_specs()
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
                   for container in containers(doc)}
    (image,) = images
    component = yaml.safe_load((K8S / "components" / "image" / "kustomization.yaml").read_text())
    (entry,) = component["images"]
    assert image == f"{entry['newName']}:{entry['newTag']}"
    files = [path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml"]
    named = [path for path in files if entry["newName"] in path.read_text()]
    assert named == [], f"the image is named outside components/image: {named}"

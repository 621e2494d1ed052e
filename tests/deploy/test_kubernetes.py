"""deploy/kubernetes: the manifests pass strict schema validation, render with Kustomize (base without KEDA,
overlays), and agree with each other and with the code."""

from __future__ import annotations

import re
import subprocess

import yaml

from consumer.config import Settings
from tests.deploy.manifests import (
    CORE_MANIFESTS,
    DEPLOY,
    K8S,
    containers,
    kustomize,
    load,
    pod_specs,
    quantity_bytes,
    settings_for,
    tool,
)

RECEIVER_LABELS = {"app.kubernetes.io/name": "canvas-progress", "app.kubernetes.io/component": "receiver"}


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
                         "base/rejected-purge-cronjob.yaml", "base/receiver-statefulset.yaml"}
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
    assert {"Deployment", "StatefulSet", "CronJob", "ConfigMap", "ServiceAccount", "Service", "PodDisruptionBudget"} <= kinds
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
        images |= {container["image"] for doc in kustomize(directory) if doc["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")
                   for container in containers(doc)}
    (image,) = images
    component = yaml.safe_load((K8S / "components" / "image" / "kustomization.yaml").read_text())
    (entry,) = component["images"]
    assert image == f"{entry['newName']}:{entry['newTag']}"
    files = [path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml"]
    named = [path for path in files if entry["newName"] in path.read_text()]
    assert named == [], f"the image is named outside components/image: {named}"


def receiver_statefulset() -> tuple[dict, dict, dict]:
    """(the StatefulSet, its pod spec, its one container)."""
    (statefulset,) = load("base/receiver-statefulset.yaml")
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return statefulset, pod, container


def test_receiver_statefulset_agrees_with_receive():
    from consumer.cli import build_parser

    statefulset, pod, container = receiver_statefulset()
    args = build_parser().parse_args(container["args"])
    assert args.command == "receive" and args.no_migrate  # migrate-job.yaml runs the migrations
    settings = settings_for(container)  # every value the ConfigMap and env give is valid
    (port,) = container["ports"]
    assert settings.receive_host == "0.0.0.0" and settings.receive_port == port["containerPort"]
    assert settings.allow_unsigned is False  # signed payloads only, as Canvas sends them with "Sign Payload" on
    assert settings.jwt_issuer == "https://live-events.canvas.instructure.com"
    assert settings.jwks_file is None and settings.jwks_url.startswith("https://")
    # The probes and the scrape target are the receiver's own port and paths.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"]) and annotations["prometheus.io/path"] == "/metrics"
    # Labels: the selector picks exactly the template's pods.
    assert statefulset["spec"]["selector"]["matchLabels"] == RECEIVER_LABELS
    assert statefulset["spec"]["template"]["metadata"]["labels"] == RECEIVER_LABELS
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    assert statefulset["spec"]["replicas"] >= 2


def test_receiver_spool_is_a_volume_per_replica_at_spool_dir():
    statefulset, pod, container = receiver_statefulset()
    settings = settings_for(container)
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == settings.spool_dir
    # From the claim template, not a pod volume of the same name (an emptyDir would die with the pod).
    assert claim["metadata"]["name"] not in {volume["name"] for volume in pod["volumes"]}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # one receiver per spool
    # The volume holds SPOOL_MAX_BYTES with room to spare (segment files, the filesystem's own reserve).
    assert quantity_bytes(claim["spec"]["resources"]["requests"]["storage"]) >= 1.5 * settings.spool_max_bytes
    # A replica scaled away keeps its claim, so scaling back up applies what its spool still held.
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    # The image's runtime user (deploy/Dockerfile) can write the volume: fsGroup is its group.
    user = re.search(r"^USER (\d+):(\d+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert user, "deploy/Dockerfile has no numeric USER uid:gid"
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (int(user[1]), int(user[2]), int(user[2]))
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_receiver_shutdown_fits_in_the_grace_period():
    from consumer.commands.receive import GRACE_SECONDS

    _, pod, container = receiver_statefulset()
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # preStop, then uvicorn's drain of in-flight requests, then the intake's flush: each up to GRACE_SECONDS.
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + 2 * GRACE_SECONDS


def test_receiver_service_pdb_and_ingress_reach_the_statefulset_pods():
    from consumer.api.body_limit import MAX_BODY_BYTES

    statefulset, _, container = receiver_statefulset()
    services = {doc["metadata"]["name"]: doc for doc in load("base/receiver-service.yaml")}
    (port,) = container["ports"]
    for service in services.values():
        assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    # The governing Service is headless and lists pods before they are ready (their metrics matter then).
    governing = services[statefulset["spec"]["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None" and governing["spec"]["publishNotReadyAddresses"] is True
    (pdb,) = load("base/receiver-pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    # The Ingress: HTTPS for the one host, POST /live-events only, to the ClusterIP Service's port.
    (ingress,) = load("receiver-ingress.example.yaml")
    (rule,) = ingress["spec"]["rules"]
    (tls,) = ingress["spec"]["tls"]
    assert rule["host"] in tls["hosts"] and tls["secretName"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/live-events", "Exact")  # /metrics and the probes stay inside
    backend = path["backend"]["service"]
    target = services[backend["name"]]
    assert target["spec"]["type"] == "ClusterIP"
    assert backend["port"]["name"] in {p["name"] for p in target["spec"]["ports"]}
    # nginx lets through exactly what the receiver takes (1m is 1 MiB to nginx).
    body_size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body_size == "1m" and MAX_BODY_BYTES == 1 << 20
    assert "# cert-manager.io/cluster-issuer:" in (K8S / "receiver-ingress.example.yaml").read_text()


def test_kustomize_base_runs_the_receiver_and_leaves_the_ingress_to_the_site():
    base = kustomize(".")
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in base}
    assert {("StatefulSet", "canvas-progress-receiver"), ("Service", "canvas-progress-receiver"),
            ("Service", "canvas-progress-receiver-pods"), ("PodDisruptionBudget", "canvas-progress-receiver")} <= names
    assert not [name for kind, name in names if kind == "Ingress"]  # the host and TLS are each site's own
    (statefulset,) = [doc for doc in base if doc["kind"] == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    assert ("ServiceAccount", pod["serviceAccountName"]) in names
    for source in pod["containers"][0]["envFrom"]:
        if "configMapRef" in source:
            assert ("ConfigMap", source["configMapRef"]["name"]) in names
        else:
            assert source["secretRef"]["name"] == "canvas-progress"  # secret.example.yaml, created by the site

"""The deployment files under deploy/, as the tests read them: paths, YAML loading, and the tools that render
and validate them (kubectl kustomize, kubernetes-validate, cfn-lint from the test virtualenv)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from consumer.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"
CORE_MANIFESTS = ["common/configmap.yaml", "secret.example.yaml", "common/serviceaccount.yaml", "migrate/migrate-job.yaml",
                  "base/worker-deployment.yaml", "base/worker-pdb.yaml", "base/worker-metrics-service.yaml",
                  "base/api-deployment.yaml", "base/api-service.yaml", "base/api-pdb.yaml", "base/rejected-purge-cronjob.yaml",
                  "base/receiver-statefulset.yaml", "base/receiver-service.yaml", "base/receiver-pdb.yaml",
                  "receiver-ingress.example.yaml"]
# Binary suffixes of a Kubernetes quantity (what storage requests use here).
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


def tool(name: str) -> str:
    """A command installed beside this interpreter (the test extra's kubernetes-validate, cfn-lint)."""
    return str(Path(sys.executable).parent / name)


def load(name: str) -> list[dict]:
    """The documents of a manifest under deploy/kubernetes."""
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def kustomize(directory: str) -> list[dict]:
    """`kubectl kustomize` of a directory under deploy/kubernetes, as the objects it renders."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to check the Kustomize layout"
    rendered = subprocess.run([kubectl, "kustomize", str(K8S / directory)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def pod_specs() -> dict[str, dict]:
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


def containers(doc: dict) -> list[dict]:
    """The containers of a Deployment, StatefulSet, Job or CronJob."""
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]


def settings_for(container: dict) -> Settings:
    """The Settings a container starts with: the ConfigMap, then its own `env` on top (as Kubernetes merges them).

    Secrets are left out (DATABASE_URL keeps its default); every value given must be valid, or this raises."""
    return Settings(**{k.lower(): v for k, v in container_env(container).items() if k.lower() in Settings.model_fields})


def container_env(container: dict) -> dict[str, str]:
    """The environment a container gets from the ConfigMap and its own `env` (no Secret values)."""
    (config,) = load("common/configmap.yaml")
    return {**config["data"], **{item["name"]: item["value"] for item in container.get("env", [])}}


def quantity_bytes(quantity: str) -> int:
    """A binary storage quantity (`2Gi`, `512Mi`) in bytes; ValueError for any other form."""
    for suffix, factor in _BINARY.items():
        if quantity.endswith(suffix) and quantity[: -len(suffix)].isdigit():
            return int(quantity[: -len(suffix)]) * factor
    raise ValueError(f"storage quantity {quantity!r}: expected digits and one of {', '.join(_BINARY)}")

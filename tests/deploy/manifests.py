"""The deployment files under deploy/, as the tests read them: paths, YAML loading, and the tools that render
and validate them (kubectl kustomize, kubernetes-validate, cfn-lint from the test virtualenv)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"
CORE_MANIFESTS = ["common/configmap.yaml", "secret.example.yaml", "common/serviceaccount.yaml", "migrate/migrate-job.yaml",
                  "base/worker-deployment.yaml", "base/worker-pdb.yaml", "base/worker-metrics-service.yaml",
                  "base/api-deployment.yaml", "base/api-service.yaml", "base/api-pdb.yaml", "base/rejected-purge-cronjob.yaml"]


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
    """The containers of a Deployment, Job or CronJob."""
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]

"""The alert rules: valid for promtool, unit-tested with `promtool test rules`, the PrometheusRule the same
groups as the plain file, every alert labelled, annotated and linked to a section of docs/operations.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.deploy.manifests import kustomize
from tests.monitoring.promql import (
    OPERATIONS,
    PROMETHEUS_RULE,
    RULES,
    RULES_TEST,
    alerts,
    promtool,
    rule_groups,
)

RUNBOOK = "https://github.com/example/canvas-progress/blob/main/docs/operations.md#"


def test_promtool_checks_the_rules_file():
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_the_prometheus_rule_holds_the_same_groups_and_promtool_checks_them(tmp_path):
    (document,) = [doc for doc in yaml.safe_load_all(PROMETHEUS_RULE.read_text()) if doc]
    assert (document["apiVersion"], document["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert document["spec"]["groups"] == rule_groups(), "deploy/kubernetes/monitoring/prometheusrule.yaml differs from the rules file"
    extracted = tmp_path / "prometheusrule-groups.yml"
    extracted.write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}, sort_keys=False))
    result = run_promtool("check", "rules", str(extracted))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kustomize_renders_the_monitoring_directory_as_the_prometheus_rule():
    rendered = kustomize("monitoring")
    assert [(doc["kind"], doc["metadata"]["name"]) for doc in rendered] == [("PrometheusRule", "canvas-progress")]
    assert rendered[0]["spec"]["groups"] == rule_groups()


def test_promtool_unit_tests_of_the_alerts_pass():
    result = run_promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_not_firing():
    cases = yaml.safe_load(RULES_TEST.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    fires = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    names = {rule["alert"] for rule in alerts()}
    assert names - fires == set(), "alerts never shown firing in canvas-progress-rules.test.yml"
    # Alerts that fire on any non-zero value have their quiet case before the first increase.
    assert names - quiet - {"CanvasProgressSpoolFilling"} == set(), "alerts never shown quiet"


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section():
    anchors = github_anchors(OPERATIONS.read_text())
    for rule in alerts():
        name = rule["alert"]
        assert rule["alert"].startswith("CanvasProgress"), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        runbook = annotations["runbook_url"]
        assert runbook.startswith(RUNBOOK), f"{name}: {runbook}"
        assert runbook.removeprefix(RUNBOOK) in anchors, f"{name}: docs/operations.md has no section #{runbook.removeprefix(RUNBOOK)}"
        assert "{{" not in annotations["description"], f"{name}: only the summary may be a template"


def test_the_issue_list_of_alerts_is_covered():
    expressions = " ".join(rule["expr"] for rule in alerts())
    for needed in ("up{", "canvas_worker_heartbeat_timestamp_seconds", "canvas_sqs_oldest_message_age_seconds",
                   'canvas_sqs_queue_messages{queue="dead_letter"', "canvas_batch_failures_total",
                   "canvas_data_newest_event_timestamp_seconds", "canvas_spool_records", "canvas_spool_oldest_age_seconds",
                   'canvas_reports_finished_total{outcome="error"}'):
        assert needed in expressions, needed

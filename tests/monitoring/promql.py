"""The monitoring files as the tests read them: the rules, the PrometheusRule, the dashboard, promtool, and the
metric names and label selectors their PromQL expressions use."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "canvas-progress-rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "canvas-progress-rules.test.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "canvas-progress.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# Grafana's variables, replaced as Grafana would before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "6h"}


def promtool() -> str:
    """promtool, from Debian's `prometheus` package; its absence is a failure, never a skip."""
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    assert found, "promtool is missing: install Debian's `prometheus` package (apt-get install prometheus), which has /usr/bin/promtool"
    return found


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def alerts() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict | None = None) -> list[dict]:
    """Every panel, those inside collapsed rows included (rows themselves left out)."""
    found = []
    for panel in (board or dashboard())["panels"]:
        if panel["type"] == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def panel_expressions(board: dict | None = None) -> dict[str, str]:
    """Every panel query, Grafana's variables replaced, by "panel title / refId"."""
    expressions = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            expressions[f"{panel['title']} / {target['refId']}"] = expr
    return expressions


def rule_expressions() -> dict[str, str]:
    return {rule.get("alert") or rule["record"]: rule["expr"] for group in rule_groups() for rule in group["rules"]}


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENTIFIER = re.compile(r"(?<![\w:])canvas_[A-Za-z0-9_:]*")
_SELECTOR = re.compile(r"(?<![\w:])(canvas_[A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")")


def metric_names(expr: str) -> set[str]:
    """The canvas_ series an expression reads (identifiers outside string literals; `up` is Prometheus's own)."""
    return set(_IDENTIFIER.findall(_STRING.sub('""', expr)))


@dataclass(frozen=True)
class Matcher:
    metric: str
    label: str
    op: str
    value: str


def matchers(expr: str) -> list[Matcher]:
    """The label matchers of every canvas_ selector in an expression: `canvas_x{a="b"}` gives (canvas_x, a, =, b)."""
    found = []
    for metric, body in _SELECTOR.findall(expr):
        for label, op, quoted in _MATCHER.findall(body):
            found.append(Matcher(metric, label, op, json.loads(quoted)))
    return found

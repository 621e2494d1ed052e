"""The Grafana dashboard: importable anywhere (the data source is a variable), every query valid PromQL for
promtool, and a panel for every item of the operations list."""

from __future__ import annotations

import json
import subprocess

import yaml

from tests.monitoring.promql import DASHBOARD, dashboard, metric_names, panel_expressions, panels, promtool


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def test_the_data_source_is_a_variable_not_a_uid():
    board = dashboard()
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    sources = [panel["datasource"] for panel in panels(board)] + [
        target["datasource"] for panel in panels(board) for target in panel["targets"] if "datasource" in target]
    assert sources and all(source == {"type": "prometheus", "uid": "${datasource}"} for source in sources), sources
    assert "__inputs" not in board and board.get("id") is None  # nothing tied to one Grafana


def test_panels_have_unique_ids_and_do_not_overlap():
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))


def test_every_panel_query_is_valid_promql(tmp_path):
    expressions = panel_expressions()
    assert expressions and all(panel.get("targets") for panel in panels())
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(expressions.values())]
    file = tmp_path / "dashboard-queries.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False))
    result = run_promtool("check", "rules", str(file))
    names = dict(enumerate(expressions))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n(query_N is the N-th of {json.dumps(names, indent=1)})"


def test_promtool_rejects_a_broken_query(tmp_path):
    """The check above can fail: an unbalanced query is refused."""
    file = tmp_path / "broken.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r:x", "expr": "sum(rate(canvas_events_total[1m])"}]}]}))
    assert run_promtool("check", "rules", str(file)).returncode != 0


def test_a_panel_for_every_item_of_the_operations_list():
    used = set().union(*(metric_names(expr) for expr in panel_expressions().values()))
    items = {
        "throughput by outcome": "canvas_events_total",
        "batch latency": "canvas_batch_size_bucket",
        "commit latency": "canvas_db_commit_seconds_bucket",
        "receipt to commit": "canvas_receipt_to_commit_seconds_bucket",
        "event lag": "canvas_event_lag_seconds_bucket",
        "queue depth": "canvas_sqs_queue_messages",
        "queue age": "canvas_sqs_oldest_message_age_seconds",
        "dead letters": "canvas_sqs_queue_messages",
        "spool depth": "canvas_spool_records",
        "API latency": "canvas_api_request_seconds_bucket",
        "API errors": "canvas_api_requests_total",
        "freshness": "canvas_data_newest_event_timestamp_seconds",
        "report jobs": "canvas_reports_finished_total",
    }
    assert {item: metric for item, metric in items.items() if metric not in used} == {}
    assert any('queue="dead_letter"' in expr for expr in panel_expressions().values())


def test_the_file_is_plain_json_with_a_stable_uid():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "canvas-progress" and board["title"]

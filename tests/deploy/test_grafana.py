"""The Grafana dashboard: valid PromQL (Prometheus' own promtool) over metrics the server exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streaming.server.server_metrics import ServerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "stream-classify.json"
# Grafana's variables, as Grafana substitutes them before sending a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".*", "$instance": ".*"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "le"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard (a variable's ``label_values(EXPR, label)`` as EXPR)."""
    board = dashboard()
    panel_queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    variable_queries = [
        v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"
    ]
    return panel_queries + [
        re.sub(r"^label_values\((.*), \w+\)$", r"\1", q) for q in variable_queries
    ]


def exported_sample_names() -> set[str]:
    """Every sample name the server's /metrics shows (``_total``, ``_bucket``, ``_info``, ...)."""
    metrics = ServerMetrics()
    metrics.set_build_info(version="v", model="m", device="d", labels=1)
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, labels or words."""
    text = re.sub(r'"[^"]*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set(re.findall(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text))
    return names - PROMQL_WORDS


def test_dashboard_is_grafana_importable_json() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"


def test_every_expression_uses_only_exported_metrics() -> None:
    exported = exported_sample_names()
    used: set[str] = set()
    for expr in expressions():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} uses {sorted(names - exported)}"
        used |= names
    # The dashboard covers every family the server exports (the created timestamps aside).
    families = {re.sub(r"_(total|bucket|sum|count|info)$", "", n) for n in used}
    for family in ServerMetrics().registry.collect():
        assert family.name in families, f"{family.name} has no panel"


def test_metric_name_extraction_catches_unknown_names() -> None:
    assert metric_names('sum by (le) (rate(foo_bucket{job=~"x"}[1m])) / bar') == {
        "foo_bucket",
        "bar",
    }


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    rules = []
    for i, expr in enumerate(expressions()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout

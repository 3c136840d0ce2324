"""The overview dashboard's queries, with Grafana's variables replaced as Grafana would replace them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import ROOT
from streamwatch.promapi import PrometheusClient
from streamwatch.series import label_text

DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
OVERVIEW = DASHBOARD_DIR / "streamwatch-overview.json"

# Grafana's built-in range variables, as it fills them for a 30-minute view.
BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "30m"}


def load(path: Path = OVERVIEW) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target


def substitute(expr: str, variables: dict[str, str]) -> str:
    out = expr
    for name, value in BUILTINS.items():
        out = out.replace(name, value)
    # Longest names first, so $metric never eats into a longer variable's name. ``${name:raw}`` is the
    # value as it is (the form the many-series panels use to avoid Grafana's regex escaping).
    for name in sorted(variables, key=len, reverse=True):
        out = re.sub(r"\$\{" + re.escape(name) + r"(?::raw)?\}", lambda _m, v=variables[name]: v, out)
        out = out.replace("$" + name, variables[name])
    return out


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    (var,) = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    return var


def query_result_values(var: dict[str, Any], client: PrometheusClient) -> list[str]:
    """A ``query_result(...)`` variable's values, as Grafana computes them.

    Grafana writes each result as ``name{k="v",...} value time`` (labels in Prometheus' order, joined
    by commas) and keeps the regex's first group.
    """
    query = var["query"]["query"]
    assert query.startswith("query_result(") and query.endswith(")"), query
    pattern = re.compile(var["regex"].strip("/"))
    values = []
    for s in client.query(query[len("query_result(") : -1]):
        labels = dict(s.labels)
        name = labels.pop("__name__", "")
        text = name + "{" + label_text(labels) + "}"
        text += f" {s.values[-1]} {int(s.timestamps[-1] * 1000)}"
        m = pattern.search(text)
        if m:
            values.append(m.group(1))
    return values

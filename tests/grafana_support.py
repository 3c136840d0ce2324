"""The overview dashboard's queries, with Grafana's variables replaced as Grafana would replace them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

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
    # Longest names first, so $metric never eats into a longer variable's name.
    for name in sorted(variables, key=len, reverse=True):
        out = out.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return out

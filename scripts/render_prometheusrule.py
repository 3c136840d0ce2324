"""Write the Prometheus Operator's PrometheusRule from prometheus/rules/*.yml, so both hold the same rules.

    .venv/bin/python scripts/render_prometheusrule.py           # rewrite the component's prometheusrule.yaml
    .venv/bin/python scripts/render_prometheusrule.py --check   # exit 1 when it is out of date

prometheus/rules/ stays the one place rules are written (promtool unit tests run there); the
PrometheusRule in deploy/kubernetes/components/prometheus-operator/ is generated from it, and
tests/test_kubernetes.py fails when the two disagree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "prometheus" / "rules"
TARGET = ROOT / "deploy" / "kubernetes" / "components" / "prometheus-operator" / "prometheusrule.yaml"
HEADER = (
    "# Generated from prometheus/rules/*.yml by `python scripts/render_prometheusrule.py`; edit those\n"
    "# files, then re-run it. tests/test_kubernetes.py fails when this file and they disagree.\n"
)


def rule_groups(rules_dir: Path = RULES_DIR) -> list[dict[str, Any]]:
    """Every group of every rule file Prometheus loads (rules/*.yml), in file order."""
    groups: list[dict[str, Any]] = []
    for path in sorted(rules_dir.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "streamwatch"},
        "spec": {"groups": groups},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (expressions, descriptions) as ``|`` blocks, readable as in the rule files."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(rules_dir: Path = RULES_DIR) -> str:
    doc = prometheus_rule(rule_groups(rules_dir))
    return HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when the committed file is out of date")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run scripts/render_prometheusrule.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

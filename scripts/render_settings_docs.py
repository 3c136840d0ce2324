"""Write every service's settings table (key, default, range) into its page under docs/, from the code.

    .venv/bin/python scripts/render_settings_docs.py           # rewrite the tables in docs/*.md
    .venv/bin/python scripts/render_settings_docs.py --check   # exit 1 when a table is out of date

The ranges are written once, in each config dataclass's ``RANGES`` (``streamwatch.ranges``), and
checked at load; a page holds a table between ``<!-- settings: module.Class -->`` and
``<!-- /settings -->``. tests/test_settings_ranges.py fails when a numeric setting has no range, a
class has no table, or a table and the code disagree.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamwatch.ranges import markdown_table  # noqa: E402

# Every configuration a user writes (TOML keys and the flags of the same names), and its page.
CONFIGS: dict[str, str] = {
    "incident.config.IncidentConfig": "docs/incidents.md",
    "incident.webhook.WebhookConfig": "docs/incidents.md",
    "monitor.config.MonitorConfig": "docs/monitor.md",
    "monitor.config.QueryConfig": "docs/monitor.md",
    "monitor.backtest_cli.BacktestOptions": "docs/backtest.md",
    "simulator.config.SimulatorConfig": "docs/simulator.md",
    "simulator.config.MetricSpec": "docs/simulator.md",
    "dashboard.config.DashboardConfig": "docs/dashboard.md",
    "stack.config.StackConfig": "docs/stack.md",
    "stack.config.ServiceConfig": "docs/stack.md",
}
_BLOCK = re.compile(r"(<!-- settings: (?P<name>[\w.]+) -->\n)(?P<body>.*?)(<!-- /settings -->)", re.S)


def config_class(name: str) -> type:
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def render(text: str) -> str:
    """``text`` with every settings block refilled from its class."""

    def fill(m: re.Match[str]) -> str:
        return f"{m.group(1)}{markdown_table(config_class(m['name']))}\n{m.group(4)}"

    return _BLOCK.sub(fill, text)


def blocks(text: str) -> list[str]:
    return [m["name"] for m in _BLOCK.finditer(text)]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when a table is out of date")
    args = p.parse_args(argv)
    stale = []
    for page in sorted(set(CONFIGS.values())):
        path = ROOT / page
        text = path.read_text(encoding="utf-8")
        new = render(text)
        missing = [c for c, pg in CONFIGS.items() if pg == page and c not in blocks(text)]
        if missing:
            print(f"{page}: no settings table for {', '.join(missing)}", file=sys.stderr)
            stale.append(page)
        if new != text:
            if args.check:
                stale.append(page)
            else:
                path.write_text(new, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(sorted(set(stale)))} (run scripts/render_settings_docs.py)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

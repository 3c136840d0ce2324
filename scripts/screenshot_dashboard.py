"""Save a screenshot of the live dashboard to docs/dashboard.png (Playwright + Debian's chromium).

    .venv/bin/python scripts/screenshot_dashboard.py                 # start a fast stack, inject, shoot
    .venv/bin/python scripts/screenshot_dashboard.py --url http://127.0.0.1:8000   # a running `make demo`

Without --url it starts the real stack on free ports (harness.quickstack), waits until every per-metric chart
has data, clicks "Prolonged spike in both" and takes the picture once the Sev 1 banner shows and the spike
has left its anomaly marks, so the image shows everything the page can show.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import quickstack  # noqa: E402
from streamwatch.cli import run  # noqa: E402
from streamwatch.errors import UserError  # noqa: E402
from streamwatch.net import wait_until  # noqa: E402

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # the system chromium only, never a download


def shoot(url: str, out: Path, inject: bool, width: int, metrics: list[str], history_s: int) -> None:
    from playwright.sync_api import sync_playwright

    timeout = 120 + history_s
    if not wait_until(lambda: quickstack.has_data(url, metrics, seconds=history_s), timeout, 1.0):
        raise UserError(
            f"not {history_s} s of chart data at {url} within {timeout} s (is the stack running?)"
        )
    with sync_playwright() as p:
        browser = quickstack.launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=1)
            page.goto(url)
            # The per-metric charts only: the picked series' chart (#band-selected) stays empty until a
            # series is picked from the table, so waiting for it too timed out on every run.
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.metric .chart'))"
                ".every(e => Number(e.dataset.samples) > 1)",
                timeout=30_000,
            )
            if inject:
                page.get_by_role("button", name="Prolonged spike in both").click()
                page.wait_for_function(
                    "() => document.getElementById('banner').dataset.severity === 'sev1'", timeout=90_000
                )
                # Let a few more anomalous samples land so the marks and the score curve are visible.
                page.wait_for_function(
                    "() => Array.from(document.querySelectorAll('[data-field=\"anomalies_in_range\"]'))"
                    ".every(e => Number(e.textContent) >= 8)",
                    timeout=60_000,
                )
            page.wait_for_timeout(2500)  # one more refresh, so every panel shows the same moment
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="screenshot_dashboard.py", description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a running dashboard (default: start a fast stack on free ports)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    p.add_argument("--no-inject", action="store_true", help="do not click 'Prolonged spike in both'")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument(
        "--history",
        type=int,
        default=150,
        help="seconds of data to wait for before the picture (default 150)",
    )
    p.add_argument("--metric", action="append", dest="metrics", help="watched metric (default: both)")
    args = p.parse_args(argv)
    if not Path(quickstack.CHROMIUM).exists():
        raise UserError(f"{quickstack.CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    metrics = args.metrics or ["energy_consumption", "energy_price"]
    if args.url:
        shoot(args.url.rstrip("/"), args.out, not args.no_inject, args.width, metrics, args.history)
    else:
        with tempfile.TemporaryDirectory(prefix="streamwatch-shot-") as tmp:
            stack = quickstack.start(Path(tmp))
            try:
                shoot(stack.dashboard_url, args.out, not args.no_inject, args.width, metrics, args.history)
            finally:
                stack.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="screenshot_dashboard.py"))

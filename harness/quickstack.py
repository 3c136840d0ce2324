"""The real stack on free ports, with the dashboard and short intervals: for the browser test and the
screenshot script.

It is ``harness.stack_variant``'s fast copy of ``stack.toml`` (the very services ``make demo``
starts), tuned so a prolonged spike becomes a Sev 1 incident, and resolves, within a minute, plus the
dashboard's own button timings. It also owns the one way to launch Debian's Chromium for Playwright.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

from harness.procs import ManagedProcess, python_argv
from harness.stack_variant import Timing, dump_toml, write_fast_config
from stack.config import ROOT, load_stack
from streamwatch.net import http_ok, wait_until

CHROMIUM = "/usr/bin/chromium"
# Headless as root on a machine with no outside network: no sandbox, no GPU, no background fetches.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# With a sample every 2 s a 10 s half-life keeps a steady anomaly stream's score near 7, so threshold 4
# (clear at 2): a prolonged spike crosses it after about 12 s and a resolved one falls under the clear
# level about 20 s after the spike ends. Alertmanager is off: nothing on the page needs alert delivery.
TIMING = Timing(half_life_s=10.0, threshold=4.0, health_timeout_s=150.0, alertmanager=False)


@dataclass(frozen=True)
class Buttons:
    """What the page's four injection buttons send."""

    spike_magnitude: float = 3.0
    transient_duration_s: float = 4.0
    prolonged_duration_s: float = 30.0


@dataclass
class QuickStack:
    process: ManagedProcess
    config_path: Path
    dashboard_url: str

    def stop(self) -> int | None:
        return self.process.stop(timeout_s=20)


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium through Playwright; never a browser Playwright would download."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def has_data(dashboard_url: str, metrics: list[str], samples: int = 2, seconds: float = 0.0) -> bool:
    """True once every watched metric's band and score charts would show at least ``samples`` points
    covering ``seconds`` of history (the charts' step is the scrape interval, which differs by stack)."""
    for m in metrics:
        for name in ("band", "score"):
            try:
                resp = requests.get(
                    f"{dashboard_url}/api/series",
                    params={"name": name, "metric": m, "range": "5m"},
                    timeout=5,
                )
            except requests.RequestException:
                return False
            if resp.status_code != 200:
                return False
            body = resp.json()
            if body["samples"] < samples or body["samples"] * body.get("step_s", 1.0) < seconds:
                return False
    return True


def start(workdir: Path, timing: Timing = TIMING, buttons: Buttons = Buttons()) -> QuickStack:
    """Start the fast stack and wait until the dashboard answers; raise with the runner's log if not."""
    workdir.mkdir(parents=True, exist_ok=True)
    dashboard_cfg = workdir / "dashboard.toml"
    dashboard_cfg.write_text(dump_toml({"dashboard": vars(buttons)}))
    path = write_fast_config(
        workdir, replace(timing, dashboard=True), service_configs={"dashboard": dashboard_cfg}
    )
    cfg = load_stack(path)
    url = f"http://{cfg.host}:{cfg.services['dashboard'].port}"
    proc = ManagedProcess(
        "stack",
        python_argv("-m", "stack", "--config", str(path)),
        workdir / "stack.log",
        cwd=ROOT,
    )
    ok = wait_until(lambda: not proc.alive or http_ok(f"{url}/healthz"), timing.health_timeout_s, 0.5)
    if not ok or not proc.alive:
        proc.stop()
        raise RuntimeError(f"the stack did not come up:\n{proc.log_tail(40)}")
    return QuickStack(proc, path, url)

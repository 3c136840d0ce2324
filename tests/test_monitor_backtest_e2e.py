"""`monitor.py backtest` end to end on loopback: a real simulator fleet with an anomaly injected into one
series, a real Prometheus, the live `monitor.py --config` watching the same samples, the backtest as a
subprocess, and its HTML page in Debian's Chromium (Playwright, never a downloaded browser)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.cli import assert_one_line_error, run_python
from harness.services import ScrapeTarget
from streamwatch.net import wait_until

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

pytestmark = pytest.mark.e2e

SERIES = 4
SPIKED = "2"
# alpha 0.5: a series' state forgets where its training began within ~20 points (0.5**20 = 1e-6), so the
# live monitor, which started training a little later than the backtest's first cycle, scores the shift
# from the same state. min_deviation 400 (the wave spans 10 to 1000, its noise is 20): the quiet wave
# is never flagged, nor near it; a shift of +5000 always is.
QUERY = {
    "name": "price",
    "expr": "energy_price_metric",
    "detector": "ema",
    "params": {"alpha": 0.5, "threshold": 4.0, "min_deviation": 400.0, "direction": "above"},
    "step": 1,
    "fit_window": 600,
}
# Pixels each chart's canvas has painted (uPlot draws on a canvas), as tests/test_dashboard_browser.py.
PAINTED = """() => Array.from(document.querySelectorAll('.chart')).map(el => {
  const c = el.querySelector('canvas');
  if (!c) return 0;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
  return n;
})"""


def monitor_figures(url: str) -> dict[str, dict[str, float]]:
    """The live monitor's per-series anomaly counters and per-query figures for query ``price``."""
    out: dict[str, dict[str, float]] = {"anomalies": {}, "query": {}}
    for family in text_string_to_metric_families(requests.get(url, timeout=5).text):
        for s in family.samples:
            if s.labels.get("metric") != "price":
                continue
            if s.name == "streamwatch_monitor_anomalies_total":
                out["anomalies"][s.labels["series"]] = s.value
            elif "series" not in s.labels:
                out["query"][s.name] = s.value
    return out


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def test_the_backtest_names_the_injected_series_counts_as_the_live_monitor_and_draws_it(
    start_simulator, start_prometheus, start_fleet_monitor, browser, tmp_path: Path
):
    sim = start_simulator(None, "--series", str(SERIES))
    prom = start_prometheus([ScrapeTarget("simulator", sim.address)])
    assert wait_until(lambda: len(prom.client.query("energy_price_metric[5s]")) == SERIES, 30, 0.2)
    since = time.time()  # the backtest's first cycle: at or before the live monitor's
    mon = start_fleet_monitor(prom.url, [QUERY], interval=2.0)

    def warmed() -> bool:
        q = monitor_figures(mon.url)["query"]
        return q.get("streamwatch_monitor_samples_scored_total", 0) >= 20 * SERIES and (
            q.get("streamwatch_monitor_series_warming") == 0
        )

    assert wait_until(warmed, 60, 0.5), mon.process.log_tail()
    resp = requests.post(
        f"{sim.url}/anomalies",
        json={
            "metric": "energy_price",
            "kind": "shift",
            "magnitude": 5000,
            "duration_s": 6,
            "series": int(SPIKED),
        },
        timeout=5,
    )
    assert resp.status_code == 201, resp.text
    end = resp.json()["end"]
    # Past the anomaly, and one more live cycle after that, so the live counts include all of it.
    assert wait_until(lambda: time.time() > end + 6.0, 30, 0.2)
    scored = monitor_figures(mon.url)["query"]["streamwatch_monitor_samples_scored_total"]
    more = lambda: monitor_figures(mon.url)["query"]["streamwatch_monitor_samples_scored_total"] > scored  # noqa: E731
    assert wait_until(more, 20, 0.2)
    live = monitor_figures(mon.url)
    until = time.time()
    mon.process.stop()
    assert live["anomalies"][SPIKED] > 0, live

    out = tmp_path / "report"
    span = ["--since", iso(since), "--until", iso(until)]
    done = run_python("monitor.py", "backtest", "--config", str(mon.config_path), *span, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads((out / "report.json").read_text())

    # The injected series first, overall and in its query, and the only one flagged.
    assert report["top"][0]["labels"]["series"] == SPIKED, report["top"]
    [price] = report["queries"]
    assert price["top"][0]["labels"]["series"] == SPIKED
    assert price["series"] == SERIES and price["series_flagged"] == 1
    assert price["top"][0]["incidents"] >= 1
    # Its counts are what the live monitor counted over the same samples, series by series.
    flagged = {s["labels"]["series"]: s["points_flagged"] for s in price["top"]}
    assert flagged == live["anomalies"], (flagged, live["anomalies"])
    # It scored everything the live monitor did (and the few samples before the live monitor's first
    # cycle and after its last).
    assert price["points_scored"] >= live["query"]["streamwatch_monitor_samples_scored_total"]
    assert f"{SPIKED}" in done.stdout and "report.html" in done.stdout

    # The page opens from the file with no console error and draws every chart.
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request", lambda r: problems.append(f"request {r.url}") if not r.url.startswith("file:") else None
    )
    page.goto((out / "report.html").as_uri())
    page.wait_for_function(f"() => document.querySelectorAll('.chart canvas').length === {2 * SERIES}")
    painted = page.evaluate(PAINTED)
    assert len(painted) == 2 * SERIES and all(n > 500 for n in painted), painted
    first = page.locator(".series h3").first.inner_text()
    assert f'series="{SPIKED}"' in first
    assert problems == []


def test_no_data_and_a_query_prometheus_refuses_are_one_line_and_exit_2(start_prometheus, tmp_path: Path):
    prom = start_prometheus([])  # scrapes nothing: no series at all
    for expr, needles in (
        ("nothing_here_metric", ["no data", "price"]),
        ("rate(nothing_here_metric)", ["price", "Prometheus refuses", "range vector"]),
    ):
        cfg = tmp_path / "watch.toml"
        cfg.write_text(
            f'[monitor]\nprometheus_url = "{prom.url}"\ninterval = 5\n\n'
            f"[[monitor.queries]]\nname = 'price'\nexpr = '{expr}'\nstep = 5\nfit_window = 60\n"
        )
        done = run_python(
            "monitor.py", "backtest", "--config", str(cfg), "--since", "10m", "--out", str(tmp_path)
        )
        assert_one_line_error(done, *needles, prog="monitor.py")

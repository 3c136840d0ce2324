"""The page in a real browser (Debian's chromium driven by Playwright) against the real stack on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import ROOT, quickstack
from harness.fleet import start_fleet
from harness.procs import ManagedProcess, python_argv
from harness.services import ScrapeTarget
from streamwatch.net import free_port, wait_until

# Never let Playwright fetch a browser of its own: the system chromium is the one under test.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

BUTTONS = quickstack.Buttons(prolonged_duration_s=20.0)
TIMING = quickstack.TIMING
METRICS = ["energy_consumption", "energy_price"]

# JavaScript run in the page: how many pixels each chart's canvas has painted (uPlot draws on a canvas).
PAINTED = """sel => Array.from(document.querySelectorAll(sel)).map(el => {
  const c = el.querySelector('canvas');
  if (!c) return [el.id, Number(el.dataset.samples), 0];
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
  return [el.id, Number(el.dataset.samples), n];
})"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[quickstack.QuickStack]:
    qs = quickstack.start(tmp_path / "stack", TIMING, BUTTONS)
    yield qs
    qs.stop()


def watch_console(page: Any) -> list[str]:
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    return problems


def banner_is(page: Any, severity: str, timeout_s: float) -> None:
    page.wait_for_function(
        "s => document.getElementById('banner').dataset.severity === s",
        arg=severity,
        timeout=timeout_s * 1000,
    )


def test_live_page_charts_data_and_turns_sev1_then_normal(stack: quickstack.QuickStack, browser: Any) -> None:
    url = stack.dashboard_url
    assert wait_until(lambda: quickstack.has_data(url, METRICS), 90, 0.5), (
        "no monitor/detector data reached Prometheus"
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = watch_console(page)
    page.goto(url)

    # Every chart has samples from Prometheus and has painted them.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.metric .chart'))"
        ".every(el => Number(el.dataset.samples) > 1)",
        timeout=20_000,
    )
    charts = page.evaluate(PAINTED, ".metric .chart")
    assert [c[0] for c in charts] == [f"{kind}-{m}" for m in METRICS for kind in ("band", "score")]
    for chart_id, samples, painted in charts:
        assert samples > 1 and painted > 500, (chart_id, samples, painted)
    assert page.locator(".overlay:visible").count() == 0  # no "no data" or "unreachable" notice
    # The actual line is the simulator's series at its 2 s scrape, not the monitor's once-a-cycle copy.
    band = requests.get(
        f"{url}/api/series", params={"name": "band", "metric": "energy_price"}, timeout=5
    ).json()
    assert band["source"] == "scrape" and band["step_s"] == 2.0
    assert page.locator("#error").is_hidden()

    banner_is(page, "normal", 60)
    assert "Normal" in page.locator("#banner").inner_text()

    # The case that must become Sev 1: a prolonged spike in both metrics, injected from the page.
    button = page.get_by_role("button", name="Prolonged spike in both")
    assert button.is_visible()
    button.click()
    page.wait_for_function(
        "() => document.getElementById('inject-status').textContent.startsWith('Injected')", timeout=10_000
    )
    # The scores cross the threshold while the spike lasts; allow a few cycles of every service on top.
    banner_is(page, "sev1", BUTTONS.prolonged_duration_s + 20)
    banner = page.locator("#banner").inner_text()
    assert "Sev 1" in banner and "energy_consumption, energy_price" in banner  # the metrics in trouble

    # After the spike the scores decay under the clear level (half the threshold) and the banner clears.
    banner_is(page, "normal", BUTTONS.prolonged_duration_s + 6 * TIMING.half_life_s)
    row = page.locator("#incidents-body tr").first
    assert "Sev 1" in row.inner_text() and "energy_consumption, energy_price" in row.inner_text()
    anomalies = page.locator(
        '.metric[data-metric="energy_price"] [data-field="anomalies_in_range"]'
    ).inner_text()
    assert int(anomalies) > 0
    # The monitor's model is fitted: no series of the query is still learning (the gauge, read by the page).
    warming = page.locator('.metric[data-metric="energy_price"] [data-field="warming"]').inner_text()
    assert warming == "0"

    assert problems == []


def test_page_says_prometheus_is_unreachable_and_keeps_retrying(tmp_path: Path, browser: Any) -> None:
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    argv = python_argv(
        "-m", "dashboard", "--port", str(port), "--prometheus-url", dead, "--simulator-url", dead
    )
    proc = ManagedProcess("dashboard", argv, tmp_path / "dashboard.log", cwd=ROOT)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        error = page.locator("#error")
        error.wait_for(state="visible", timeout=10_000)
        assert error.inner_text().startswith("Prometheus unreachable, retrying every 2 s")
        # Each chart says why it is empty instead of staying blank.
        overlays = page.locator(".metric .chart .overlay")
        assert overlays.count() == 4
        assert all(t == "Prometheus unreachable, retrying" for t in overlays.all_inner_texts())
        assert page.locator("#inject").is_hidden()  # no simulator, no buttons
        # It keeps polling: the "updated" stamp is never set, but requests keep arriving.
        with page.expect_response(lambda r: "/api/summary" in r.url and r.status == 503, timeout=10_000):
            pass
    finally:
        proc.stop()


@pytest.fixture
def fleet_page(tmp_path: Path, start_prometheus: Any) -> Iterator[tuple[Any, str]]:
    """50 series of one metric (harness.fleet) scraped by a real Prometheus, and the live page on it."""
    fleet = start_fleet(tmp_path, "cpu", 50)
    prom = start_prometheus([ScrapeTarget("fleet", fleet.address)])
    port = free_port()
    argv = python_argv(
        "-m", "dashboard", "--port", str(port), "--prometheus-url", prom.url, "--metric", "cpu",
        "--simulator-url", f"http://127.0.0.1:{free_port()}", "--incident-url", f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    proc = ManagedProcess("dashboard", argv, tmp_path / "dashboard.log", cwd=ROOT)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
        yield fleet, f"http://127.0.0.1:{port}/"
    finally:
        proc.stop()
        fleet.process.stop()


def test_top_series_table_picks_a_series_and_draws_its_chart(
    fleet_page: tuple[Any, str], browser: Any
) -> None:
    fleet, url = fleet_page
    fleet.add({"31": 2}, scores={"31": 7.5, "8": 3.0})
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = watch_console(page)
    page.goto(url)
    # Highest score first, the monitor's own score shown.
    page.wait_for_function(
        "() => document.querySelectorAll('#top-body tr.top-row').length === 20", timeout=30_000
    )
    rows = page.locator("#top-body tr.top-row")
    assert rows.nth(0).inner_text().split("\t")[0] == 'cpu{cpu="31"}'
    assert rows.nth(1).inner_text().split("\t")[0] == 'cpu{cpu="8"}'
    assert "7.50" in rows.nth(0).inner_text()
    assert page.locator("#selected").is_hidden()
    # The per-metric card as before, drawing one of the 50 series whole and saying so.
    note = page.locator('.metric[data-metric="cpu"] [data-field="series_note"]')
    note.wait_for(state="visible", timeout=20_000)
    assert "one of 50 series" in note.inner_text()

    rows.nth(1).click()
    page.wait_for_function(
        "() => Number(document.getElementById('band-selected').dataset.samples) > 1", timeout=20_000
    )
    assert page.locator("#selected-name").inner_text() == 'cpu{cpu="8"}'
    assert "selected" in (rows.nth(1).get_attribute("class") or "")
    [(chart_id, samples, painted)] = page.evaluate(PAINTED, "#band-selected")
    assert chart_id == "band-selected" and samples > 1 and painted > 500
    # The picked series' own values (its level is 100 + 8), not another series'.
    actual = page.evaluate("() => window.streamwatch.charts['band-selected'].data[4].filter(v => v !== null)")
    assert actual and set(actual) == {108}
    # No incident detector here: the banner says so, the charts and table still update.
    assert "No answer from the incident detector" in page.locator("#banner").inner_text()
    # Chromium logs each 503 from /api/incidents (expected here); nothing else may go wrong.
    assert [p for p in problems if "status of 503" not in p] == []

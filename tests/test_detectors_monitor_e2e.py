"""The monitor with a streaming detector (``--detector``), end to end: simulator, Prometheus, monitor."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from harness import ROOT
from harness.procs import ManagedProcess, python_argv
from harness.services import ScrapeTarget
from harness.waves import scrape_monitor
from streamwatch.net import free_port, wait_until

METRIC = "energy_price"
TUNED = [
    "sma.window=5",
    "sma.threshold=4",
    "ema.alpha=0.3",
    "ema.threshold=2.5",
    "iqr.window=10",
    "iqr.multiplier=3",
]


def scrape(url: str) -> dict[str, float]:
    return scrape_monitor(url, METRIC)


@pytest.mark.e2e
def test_monitor_with_the_ensemble_exports_the_same_metrics_and_flags_a_shift(
    start_simulator, start_prometheus, tmp_path: Path
) -> None:
    sim = start_simulator()
    port = free_port()
    prom = start_prometheus(
        [ScrapeTarget("simulator", sim.address), ScrapeTarget("monitor", f"127.0.0.1:{port}")]
    )
    params = [a for p in TUNED for a in ("--param", p)]
    argv = python_argv(
        "monitor.py", METRIC, str(ROOT / "datasets" / f"{METRIC}_train.json"), str(port),
        "--prometheus-url", prom.url, "--interval", "2", "--model-dir", str(tmp_path / "models"),
        "--detector", "ensemble", *params,
    )  # fmt: skip
    with ManagedProcess("monitor", argv, tmp_path / "monitor.log", cwd=ROOT) as mon:
        url = f"http://127.0.0.1:{port}/metrics"
        mon.wait_http(url, timeout_s=60)
        assert wait_until(
            lambda: scrape(url).get("streamwatch_monitor_samples_scored_total", 0) >= 10, 40, 0.2
        ), mon.log_tail()
        m = scrape(url)
        for name in (
            "streamwatch_monitor_actual",
            "streamwatch_monitor_anomaly_score",
            "streamwatch_monitor_anomalies_total",
            "streamwatch_monitor_mae",
            "streamwatch_monitor_prometheus_up",
            "streamwatch_monitor_forecast:expected",
        ):
            assert name in m, name
        assert m["streamwatch_monitor_prometheus_up"] == 1
        assert math.isfinite(m["streamwatch_monitor_forecast:expected"])  # members' weighted expectation
        before = m["streamwatch_monitor_anomalies_total"]
        resp = requests.post(
            f"{sim.url}/anomalies",
            json={"metric": METRIC, "kind": "shift", "magnitude": 900, "duration_s": 10},
            timeout=5,
        )
        assert resp.status_code in (200, 201), resp.text
        assert wait_until(lambda: scrape(url)["streamwatch_monitor_anomalies_total"] > before, 20, 0.2), (
            mon.log_tail()
        )
    assert mon.proc.returncode == 0
    assert "Traceback" not in (tmp_path / "monitor.log").read_text()


def test_monitor_rejects_a_bad_detector_param_with_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable, "monitor.py", METRIC, str(ROOT / "datasets" / f"{METRIC}_train.json"),
            str(free_port()), "--detector", "sma", "--param", "window=ten",
            "--model-dir", str(tmp_path / "models"),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "window" in lines[0], res.stderr

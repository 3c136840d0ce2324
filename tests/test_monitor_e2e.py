"""End to end on loopback: real simulator, real Prometheus scraping it and the monitor subprocess."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge

from harness import ROOT
from harness.procs import ManagedProcess, python_argv
from harness.services import ScrapeTarget, assert_promtool_metrics_ok
from harness.waves import scrape_monitor
from streamwatch.net import free_port, start_metrics_server, wait_until

METRIC = "energy_price"
INTERVAL = 2.0


def scrape(url: str) -> dict[str, float]:
    return scrape_monitor(url, METRIC)


@pytest.mark.e2e
def test_monitor_end_to_end_quiet_on_clean_data_and_flags_a_spike(
    start_simulator, start_prometheus, tmp_path
):
    sim = start_simulator()
    train = tmp_path / "train.json"
    subprocess.run(
        [
            sys.executable,
            "simulator.py",
            "generate",
            "--metric",
            METRIC,
            "--duration",
            "1h",
            "--out",
            str(train),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    port = free_port()
    prom = start_prometheus(
        [ScrapeTarget("simulator", sim.address), ScrapeTarget("monitor", f"127.0.0.1:{port}")]
    )
    argv = python_argv(
        "monitor.py", METRIC, str(train), str(port),
        "--prometheus-url", prom.url, "--interval", str(INTERVAL), "--model-dir", str(tmp_path / "models"),
    )  # fmt: skip
    with ManagedProcess("monitor", argv, tmp_path / "monitor.log", cwd=ROOT) as mon:
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        mon.wait_http(metrics_url, timeout_s=60)

        # Clean data: about 8 cycles, near-zero anomalies, and Prometheus stores what the monitor exports.
        assert wait_until(
            lambda: scrape(metrics_url).get("streamwatch_monitor_samples_scored_total", 0) >= 16, 40, 0.2
        ), mon.log_tail()
        clean = scrape(metrics_url)
        assert clean["streamwatch_monitor_anomalies_total"] <= 1
        assert clean["streamwatch_monitor_prometheus_up"] == 1
        assert clean["streamwatch_monitor_forecast:lower"] < clean["streamwatch_monitor_forecast:upper"]
        # The Prophet band at scrape time, beside the band at the last sample scored.
        band = [clean[f"streamwatch_monitor_band:{b}"] for b in ("lower", "expected", "upper")]
        assert band[0] < band[1] < band[2], band
        assert_promtool_metrics_ok(requests.get(metrics_url, timeout=2).text)
        assert wait_until(
            lambda: bool(prom.client.query(f'streamwatch_monitor_samples_scored_total{{metric="{METRIC}"}}')),
            10,
        )

        # A prolonged spike: the anomaly gauge rises within two cycles of it, and falls back after it.
        resp = requests.post(
            f"{sim.url}/anomalies",
            json={"metric": METRIC, "kind": "spike", "magnitude": 5, "duration_s": 12},
            timeout=5,
        )
        assert resp.status_code == 201, resp.text
        start, end = resp.json()["start"], resp.json()["end"]
        # (cycle time, anomalies, anomaly score) of each cycle seen after start, read from one scrape.
        cycles: list[tuple[float, float, float]] = []

        def spike_seen() -> bool:
            m = scrape(metrics_url)
            t = m["streamwatch_monitor_last_success_timestamp_seconds"]
            if t > start and (not cycles or cycles[-1][0] != t):
                cycles.append(
                    (t, m["streamwatch_monitor_cycle_anomalies"], m["streamwatch_monitor_anomaly_score"])
                )
            return bool(cycles) and cycles[-1][1] > 0

        assert wait_until(spike_seen, 20, 0.1), (cycles, mon.log_tail())
        assert len(cycles) <= 2, cycles
        assert cycles[-1][2] > 1, cycles  # the score gauge says "outside the band" in the spike's cycle

        def back_to_normal() -> bool:
            m = scrape(metrics_url)
            return (
                m["streamwatch_monitor_last_success_timestamp_seconds"] > end + INTERVAL
                and m["streamwatch_monitor_cycle_anomalies"] == 0
            )

        assert wait_until(back_to_normal, 30, 0.2), mon.log_tail()
        assert scrape(metrics_url)["streamwatch_monitor_anomalies_total"] >= 3
    assert mon.proc.returncode == 0  # SIGTERM stops it cleanly
    log = Path(tmp_path / "monitor.log").read_text()
    assert "Traceback" not in log


@pytest.mark.e2e
def test_restart_loads_the_saved_model_and_serves_metrics_while_prometheus_is_down(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    train = ROOT / "datasets" / f"{METRIC}_train.json"
    models = tmp_path / "models"
    fit_durations = []
    for run in ("first", "second"):
        port = free_port()
        argv = python_argv(
            "monitor.py", METRIC, str(train), str(port),
            "--prometheus-url", dead, "--interval", "1", "--model-dir", str(models),
        )  # fmt: skip
        log_path = tmp_path / f"{run}.log"
        with ManagedProcess(f"monitor-{run}", argv, log_path, cwd=ROOT) as mon:
            url = f"http://127.0.0.1:{port}/metrics"
            mon.wait_http(url, timeout_s=60)
            assert wait_until(lambda u=url: scrape(u)["streamwatch_monitor_prometheus_errors_total"] >= 2, 20)
            m = scrape(url)
            assert m["streamwatch_monitor_prometheus_up"] == 0
            fit_durations.append(m["streamwatch_monitor_fit_duration_seconds"])
        assert mon.proc.returncode == 0
        log = log_path.read_text()
        assert "Traceback" not in log
        assert log.count("Prometheus query failing") == 1  # once per state change, not per retry
        assert ("fitted in" in log) == (run == "first")
        assert ("loaded from" in log) == (run == "second")
    assert [p.name for p in models.iterdir()] == [f"snapshot-{METRIC}.npz"]  # the model is in the snapshot
    assert fit_durations[0] == fit_durations[1] > 0


CYCLE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+(\d+)\s+\d+\s", re.M)


def scored_in_log(log_path: Path) -> int:
    """Samples scored over a run, from the one line per cycle the monitor prints."""
    return sum(int(n) for n in CYCLE_LINE.findall(log_path.read_text()))


def stored_in(client, query: str, after: float, upto: float) -> int:
    found = client.query(f"{query}[{math.ceil(upto - after) + 5}s]", at=upto)
    ts = found[0].timestamps
    return int(np.count_nonzero((ts > after) & (ts <= upto)))


@pytest.mark.e2e
def test_a_restarted_monitor_resumes_from_its_last_scored_sample(start_prometheus, tmp_path):
    """Three runs of a real monitor process on one model folder, over one real Prometheus: the second
    scores exactly the samples stored since the first stopped (nothing twice, nothing lost); the third,
    down longer than its max_catchup, scores the last max_catchup seconds and counts the rest as skipped.
    """
    registry = CollectorRegistry()
    Gauge("restart_watched", "A value the test holds.", registry=registry).set(50.0)
    target_port = free_port()
    server, _ = start_metrics_server(registry, "127.0.0.1", target_port, "test target")
    try:
        prom = start_prometheus([ScrapeTarget("t", f"127.0.0.1:{target_port}")])
        train = tmp_path / "train.csv"
        train.write_text("".join(f"{1_700_000_000 + 2 * i},{50 + (i % 3)}\n" for i in range(100)))
        models = tmp_path / "models"
        snapshot = models / "snapshot-restart.npz"
        config = tmp_path / "monitor.toml"

        def run(name: str, until: Callable[[str], bool], max_catchup: float = 3600.0) -> tuple[Path, float]:
            config.write_text(f"[monitor]\nmax_catchup = {max_catchup}\n")
            port = free_port()
            argv = python_argv(
                "monitor.py", "restart", str(train), str(port), "--query", "restart_watched",
                "--prometheus-url", prom.url, "--interval", "1", "--model-dir", str(models),
                "--detector", "ema", "--config", str(config),
            )  # fmt: skip
            log_path = tmp_path / f"{name}.log"
            with ManagedProcess(name, argv, log_path, cwd=ROOT) as mon:
                url = f"http://127.0.0.1:{port}/metrics"
                mon.wait_http(url, timeout_s=60)
                assert wait_until(lambda: until(url), 30, 0.2), mon.log_tail()
            assert mon.proc.returncode == 0 and "Traceback" not in log_path.read_text()
            with np.load(snapshot, allow_pickle=False) as z:  # the newest point scored: the read position
                return log_path, float(z["t.trained_until"][0])

        def scored_at_least(n: int) -> Callable[[str], bool]:
            return lambda url: (
                scrape_monitor(url, "restart").get("streamwatch_monitor_samples_scored_total", 0) >= n
            )

        _, first_last = run("first", scored_at_least(3))
        wait_until(lambda: stored_in(prom.client, "restart_watched", first_last, time.time()) >= 4, 30, 0.2)
        second_log, second_last = run("second", scored_at_least(6))
        assert scored_in_log(second_log) == stored_in(prom.client, "restart_watched", first_last, second_last)
        assert "skipped" not in second_log.read_text()

        # Down for about 8 s, with a max_catchup of 3 s: about 5 samples are never scored, and said so.
        wait_until(lambda: stored_in(prom.client, "restart_watched", second_last, time.time()) >= 8, 30, 0.2)
        skipped: list[float] = []

        def caught_up(url: str) -> bool:
            m = scrape_monitor(url, "restart")
            skipped.append(m["streamwatch_monitor_samples_skipped_total"])
            return m["streamwatch_monitor_samples_scored_total"] >= 3

        third_log, third_last = run("third", caught_up, max_catchup=3.0)
        log = third_log.read_text()
        assert f"{skipped[-1]:.0f} older samples skipped" in log and skipped[-1] >= 4
        stored = stored_in(prom.client, "restart_watched", second_last, third_last)
        assert scored_in_log(third_log) + skipped[-1] == stored
    finally:
        server.shutdown()

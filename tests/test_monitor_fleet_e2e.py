"""`monitor.py --config` end to end on loopback: real simulators and exporters, real Prometheus, the
monitor as a subprocess. One detector and one labelled child per series; stale series leave /metrics;
functions of series are watched; a spike on one series raises that series' score only."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import ROOT
from harness.procs import ManagedProcess, python_argv
from harness.services import ScrapeTarget, assert_promtool_metrics_ok
from streamwatch.net import wait_until

# What every input series adds by default: two series (the band is opt-in, export_band).
PER_SERIES = ("streamwatch_monitor_anomaly_score", "streamwatch_monitor_anomalies_total")


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """/metrics as {sample name: [(labels, value), ...]}."""
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(requests.get(url, timeout=5).text):
        for s in family.samples:
            out[s.name].append((s.labels, s.value))
    return out


def of(samples, name: str, metric: str) -> dict[str, float]:
    """One query's children of ``name`` as {series label: value}."""
    return {lab.get("series", ""): v for lab, v in samples.get(name, []) if lab.get("metric") == metric}


def self_metric(samples, name: str, metric: str) -> float:
    found = [v for lab, v in samples.get(name, []) if lab.get("metric") == metric]
    return found[0] if found else -1.0


@pytest.mark.e2e
def test_fifty_series_give_fifty_detectors_and_a_spike_on_one_raises_only_its_score(
    start_simulator, start_prometheus, start_fleet_monitor
):
    sim = start_simulator(None, "--series", "50")
    prom = start_prometheus([ScrapeTarget("simulator", sim.address)])
    # Some history first, so the first cycle trains every series on it.
    assert wait_until(lambda: len(prom.client.query("energy_price_metric[10s]")) == 50, 30, 0.2)
    mon = start_fleet_monitor(
        prom.url,
        [
            {
                "name": "price",
                "expr": "energy_price_metric",
                "step": 1,
                "fit_window": 120,
                "detector": "ema",  # this test is about one detector per series, not about which
                "params": {"threshold": 4},
            },
            {
                "name": "injected",
                "expr": "rate(streamwatch_simulator_anomalies_injected_total[10s])",
                "step": 1,
            },
        ],
    )

    def all_scoring() -> bool:
        m = scrape(mon.url)
        children = of(m, "streamwatch_monitor_anomaly_score", "price")
        scored = self_metric(m, "streamwatch_monitor_samples_scored_total", "price")
        warming = self_metric(m, "streamwatch_monitor_series_warming", "price")
        return len(children) == 50 and scored >= 100 and warming == 0

    assert wait_until(all_scoring, 60, 0.5), mon.process.log_tail()
    m = scrape(mon.url)
    assert self_metric(m, "streamwatch_monitor_series", "price") == 50
    for name in PER_SERIES:
        children = of(m, name, "price")
        assert sorted(children, key=int) == [str(i) for i in range(50)], name
    assert "streamwatch_monitor_forecast" not in m  # not asked for: two series per input series
    price_children = [lab for lab, _ in m["streamwatch_monitor_anomaly_score"] if lab["metric"] == "price"]
    assert all(lab["job"] == "simulator" and lab["instance"] == sim.address for lab in price_children)
    assert all("__name__" not in lab for lab in price_children)
    # The rate() query: one child per counter series (2 metrics x 4 kinds), each with its own labels.
    injected = [lab for lab, _ in m["streamwatch_monitor_anomaly_score"] if lab["metric"] == "injected"]
    assert len(injected) == 8 and len({(lab["exported_metric"], lab["kind"]) for lab in injected}) == 8
    assert_promtool_metrics_ok(requests.get(mon.url, timeout=5).text)

    # A spike on series 7 only: its score goes past 1, and it stands out from every other series.
    before = of(scrape(mon.url), "streamwatch_monitor_anomalies_total", "price")
    resp = requests.post(
        f"{sim.url}/anomalies",
        json={"metric": "energy_price", "kind": "spike", "magnitude": 50, "duration_s": 6, "series": 7},
        timeout=5,
    )
    assert resp.status_code == 201, resp.text
    seen: list[dict[str, float]] = []

    def flagged() -> bool:
        seen.append(of(scrape(mon.url), "streamwatch_monitor_anomalies_total", "price"))
        return seen[-1]["7"] > before["7"]

    assert wait_until(flagged, 30, 0.3), mon.process.log_tail()
    scores = of(scrape(mon.url), "streamwatch_monitor_anomaly_score", "price")
    after = seen[-1]
    assert scores["7"] > 1 and scores["7"] == max(scores.values()), scores
    raised = [s for s in after if s != "7" and after[s] > before[s]]
    assert len(raised) <= 2, (raised, before, after)  # the others stay quiet (a stray false alarm at most)
    assert "Traceback" not in mon.process.log_tail(200)


@pytest.mark.e2e
def test_a_series_that_disappears_is_gone_from_metrics_after_stale_after(
    start_simulator, start_prometheus, start_fleet_monitor
):
    keep = start_simulator(None, "--series", "3")
    gone = start_simulator(None, "--series", "3")
    prom = start_prometheus([ScrapeTarget("a", keep.address), ScrapeTarget("b", gone.address)])
    assert wait_until(lambda: len(prom.client.query("energy_price_metric[5s]")) == 6, 30, 0.2)
    mon = start_fleet_monitor(
        prom.url,
        [{"name": "price", "expr": "energy_price_metric", "step": 1, "fit_window": 60, "stale_after": 6}],
        interval=1.0,
    )

    def children() -> set[str]:
        m = scrape(mon.url)
        return {lab["instance"] for lab, _ in m["streamwatch_monitor_anomalies_total"]}

    assert wait_until(lambda: children() == {keep.address, gone.address}, 60, 0.3), mon.process.log_tail()
    gone.process.stop()
    assert wait_until(lambda: children() == {keep.address}, 40, 0.3), mon.process.log_tail()
    m = scrape(mon.url)
    assert self_metric(m, "streamwatch_monitor_series", "price") == 3
    assert self_metric(m, "streamwatch_monitor_series_dropped_total", "price") == 3
    text = requests.get(mon.url, timeout=5).text
    assert gone.address not in text
    assert_promtool_metrics_ok(text)


@pytest.mark.e2e
def test_node_exporter_cpu_rate_gives_one_child_per_returned_series(
    start_node_exporter, start_prometheus, start_fleet_monitor
):
    node = start_node_exporter()
    prom = start_prometheus([ScrapeTarget("node", node.address)])
    expr = 'rate(node_cpu_seconds_total{mode!="idle"}[5s])'
    assert wait_until(lambda: len(prom.client.query(expr)) > 0, 30, 0.3)
    mon = start_fleet_monitor(prom.url, [{"name": "cpu", "expr": expr, "step": 1, "fit_window": 60}])

    def watched() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        returned = {(s.labels["cpu"], s.labels["mode"]) for s in prom.client.query(expr)}
        m = scrape(mon.url)
        exported = {
            (lab["cpu"], lab["mode"])
            for lab, _ in m["streamwatch_monitor_anomaly_score"]
            if lab["metric"] == "cpu"
        }
        return returned, exported

    assert wait_until(lambda: (lambda r, e: r == e)(*watched()), 60, 0.5), (watched(), mon.process.log_tail())
    m = scrape(mon.url)
    returned, _ = watched()
    assert self_metric(m, "streamwatch_monitor_series", "cpu") == len(returned) >= 2
    assert len(m["streamwatch_monitor_anomaly_score"]) == len(returned)
    assert_promtool_metrics_ok(requests.get(mon.url, timeout=5).text)


def cycle_samples(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"cycle: \d+ series, (\d+) samples scored", log)]


def saved_positions(path: Path) -> dict[str, float]:
    with np.load(path, allow_pickle=False) as z:
        labels = json.loads(str(z["meta"][()]))["labels"]
        return {lab["series"]: float(t) for lab, t in zip(labels, z["t.trained_until"], strict=True)}


@pytest.mark.e2e
def test_a_replica_killed_during_an_anomaly_resumes_from_its_early_snapshot_scoring_the_gap_once(
    start_simulator, start_prometheus, start_fleet_monitor
):
    """Issue 22, item 3: a replica SIGKILLed minutes before its first ``snapshot_every`` retrained on the
    anomaly that was running, and the downtime's points became training data. The snapshot is written
    soon after the first models, so the restart restores, trains nothing, and scores every point stored
    since each series' last scored one exactly once."""
    sim = start_simulator(None, "--series", "3")
    prom = start_prometheus([ScrapeTarget("simulator", sim.address)])

    def history() -> bool:  # enough for the detector's warm-up: every series scores from its first point
        found = prom.client.query("energy_price_metric[40s]")
        return len(found) == 3 and min(len(s) for s in found) >= 30

    assert wait_until(history, 60, 0.5)
    query = {"name": "price", "expr": "energy_price_metric", "detector": "ema", "step": 1, "fit_window": 40}
    mon = start_fleet_monitor(prom.url, [query], interval=2.0)
    fitted = lambda: self_metric(scrape(mon.url), "streamwatch_monitor_fits_total", "price") == 3  # noqa: E731
    assert wait_until(fitted, 30)
    assert self_metric(scrape(mon.url), "streamwatch_monitor_series_warming", "price") == 0
    snapshot = (
        next(mon.config_path.parent.glob(f"models-{mon.address.rsplit(':', 1)[1]}")) / "snapshot-price.npz"
    )
    assert wait_until(snapshot.exists, 30, 0.2), mon.process.log_tail()  # snapshot_every is 300 s
    resp = requests.post(
        f"{sim.url}/anomalies",
        json={"metric": "energy_price", "kind": "shift", "magnitude": 5000, "duration_s": 120, "series": 1},
        timeout=5,
    )
    assert resp.status_code == 201, resp.text
    os.killpg(mon.process.proc.pid, signal.SIGKILL)  # no snapshot on the way out
    mon.process.proc.wait(10)
    before = saved_positions(snapshot)
    newest = min(before.values())
    assert wait_until(
        lambda: len(prom.client.query(f"energy_price_metric[60s] @ {time.time():.3f}")) == 3, 10
    )
    assert wait_until(
        lambda: all(len(s.since(newest)) >= 8 for s in prom.client.query("energy_price_metric[60s]")), 40, 0.5
    )

    log = mon.config_path.parent / "restarted.log"
    again = ManagedProcess(
        "monitor-again", python_argv("monitor.py", "--config", str(mon.config_path)), log, cwd=ROOT
    )
    with again:
        again.wait_http(mon.url, timeout_s=60)
        m = scrape(mon.url)
        assert self_metric(m, "streamwatch_monitor_series_restored_total", "price") == 3
        assert wait_until(lambda: len(cycle_samples(log.read_text())) >= 3, 30, 0.3), again.log_tail()
        assert (
            self_metric(scrape(mon.url), "streamwatch_monitor_fits_total", "price") == 0
        )  # nothing retrained
        # The shift's points while it was down were scored (and flagged), not learnt as history.
        counts = of(scrape(mon.url), "streamwatch_monitor_anomalies_total", "price")
        assert counts["1"] >= 1 and counts["1"] == max(counts.values()), counts
    after = saved_positions(snapshot)  # written on SIGTERM
    stored = {s.labels["series"]: s for s in prom.client.query("energy_price_metric[5m]")}
    expected = sum(
        int(np.count_nonzero((stored[k].timestamps > before[k]) & (stored[k].timestamps <= after[k])))
        for k in before
    )
    assert (
        sum(cycle_samples(log.read_text())) == expected
    )  # every point of the gap once: none lost, none twice
    assert "skipped" not in log.read_text()


@pytest.mark.e2e
def test_the_default_detector_is_ready_at_start_on_existing_metrics(
    start_simulator, start_prometheus, start_fleet_monitor
):
    """Issue 20: a series reads enough history to finish the default detector's warm-up before its first
    scored cycle (fit_window is 10 s here: the warm-up, not fit_window, decides how much is read), and
    the query says how many of its series still warm up."""
    from monitor.config import QueryConfig
    from monitor.detectors import registry

    q = QueryConfig(name="price", expr="energy_price_metric")
    warmup = registry.container(q.detector, q.params).warmup
    assert warmup > 10
    sim = start_simulator(None, "--series", "2")
    prom = start_prometheus([ScrapeTarget("simulator", sim.address)])  # scraped every second

    def history() -> bool:
        found = prom.client.query(f"energy_price_metric[{warmup + 5}s]")
        return len(found) == 2 and min(len(s) for s in found) >= warmup + 2

    assert wait_until(history, warmup + 60, 1.0)
    mon = start_fleet_monitor(
        prom.url, [{"name": "price", "expr": "energy_price_metric", "step": 1, "fit_window": 10}]
    )
    fitted = lambda: self_metric(scrape(mon.url), "streamwatch_monitor_fits_total", "price") == 2  # noqa: E731
    assert wait_until(fitted, 30, 0.3), mon.process.log_tail()
    m = scrape(mon.url)
    assert self_metric(m, "streamwatch_monitor_series_warming", "price") == 0
    assert f"price = energy_price_metric ({q.detector})" in mon.process.log_tail()

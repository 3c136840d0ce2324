"""`monitor.py --config` end to end on loopback: real simulators and exporters, real Prometheus, the
monitor as a subprocess. One detector and one labelled child per series; stale series leave /metrics;
functions of series are watched; a spike on one series raises that series' score only."""

from __future__ import annotations

from collections import defaultdict

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

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

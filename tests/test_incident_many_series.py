"""The detector against many series: a real exporter of 50 per-series counters, scraped by a real Prometheus.

The detector runs in the test with a fake clock (one cycle per call, 5 s apart), so only the scrapes take
real time: each step waits until Prometheus shows the exporter's new totals before the detector reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.fleet import Fleet, start_fleet
from harness.services import PrometheusFactory, PrometheusServer, ScrapeTarget, assert_promtool_metrics_ok
from incident.config import IncidentConfig
from incident.log import IncidentLog, read_events
from incident.service import IncidentWatcher, serve
from streamwatch.clock import FakeClock
from streamwatch.net import free_port, wait_until
from streamwatch.promapi import PrometheusClient

T0 = 1_700_000_000.0
SERIES = 50


@pytest.fixture
def fleet(tmp_path: Path, start_prometheus: PrometheusFactory) -> Iterator[tuple[Fleet, PrometheusServer]]:
    fl = start_fleet(tmp_path, "cpu", SERIES)
    prom = start_prometheus([ScrapeTarget("fleet", fl.address, "1s")])
    q = 'count(streamwatch_monitor_anomalies_total{metric="cpu"})'
    ok = wait_until(lambda: (r := prom.client.query(q)) != [] and r[0].values[-1] == SERIES, 20)
    assert ok, fl.process.log_tail()
    yield fl, prom
    fl.process.stop()


def add_and_wait(fleet: Fleet, prom: PrometheusServer, anomalies: dict[str, float]) -> None:
    totals = fleet.add(anomalies)
    q = 'streamwatch_monitor_anomalies_total{{metric="cpu",cpu=~"{}"}}'.format("|".join(totals))

    def scraped() -> bool:
        seen = {s.labels["cpu"]: s.values[-1] for s in prom.client.query(q)}
        return all(seen.get(k) == v for k, v in totals.items())

    assert wait_until(scraped, 15), f"Prometheus did not scrape {totals}"


def detector(prom: PrometheusServer, log: IncidentLog, clock: FakeClock) -> IncidentWatcher:
    # No metrics list: the detector finds "cpu" and its 50 series from what is exported.
    cfg = IncidentConfig(prometheus_url=prom.url, interval=5, half_life_s=10, threshold=10, top_series=3)
    return IncidentWatcher(cfg, PrometheusClient(cfg.prometheus_url), clock, log)


@pytest.mark.e2e
def test_rare_anomalies_on_many_series_open_nothing_then_one_series_opens_sev2_by_name(
    fleet: tuple[Fleet, PrometheusServer], tmp_path: Path
) -> None:
    fl, prom = fleet
    clock = FakeClock(T0)
    log_path = tmp_path / "incidents.log"
    with IncidentLog(log_path) as ilog:
        det = detector(prom, ilog, clock)
        det.cycle()  # baseline
        assert det.state()["metrics"] == ["cpu"] and det.state()["series_tracked"] == SERIES
        # Quiet series with rare false alarms: each cycle 4 different series have one anomaly each. The
        # metric sees 0.8 anomalies/s, which summed would settle at 11.5 (past the threshold of 10);
        # no series has more than one, so none comes near it.
        for k in range(12):
            add_and_wait(fl, prom, {str((4 * k + j) % SERIES): 1 for j in range(4)})
            clock.advance(5)
            det.cycle()
        state = det.state()
        assert state["severity"] == 0 and state["current"] is None
        assert 0 < state["scores"]["cpu"] < 5
        assert not log_path.exists() or read_events(log_path) == []

        # A spike on one series: Sev 2 for cpu, naming cpu="17" and no other.
        add_and_wait(fl, prom, {"17": 15})
        clock.advance(5)
        det.cycle()
        state = det.state()
        assert state["severity"] == 2 and state["current"]["metrics"] == ["cpu"]
        assert [s["labels"]["cpu"] for s in state["series_in_trouble"]] == ["17"]
        assert det.metrics.registry.get_sample_value(
            "streamwatch_incident_troubled_series_score", {"metric": "cpu", "series": 'cpu="17"'}
        ) == pytest.approx(state["series_in_trouble"][0]["score"], abs=1e-3)
        port = free_port()
        server = serve(det, "127.0.0.1", port)
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            server.shutdown()
        assert_promtool_metrics_ok(text)
        assert 'streamwatch_incident_series{metric="cpu"} 50.0' in text
        assert 'streamwatch_incident_series_in_trouble{metric="cpu"} 1.0' in text
    [opened] = read_events(log_path)
    assert (opened["event"], opened["severity"], opened["metrics"]) == ("opened", 2, ["cpu"])
    assert [s["name"] for s in opened["series"]] == ['cpu{cpu="17"}'] and opened["series_in_trouble"] == 1
    assert opened["series"][0]["labels"]["job"] == "fleet"  # the full label set is kept in the log


def _replica_series(prom: PrometheusServer, address: str) -> int:
    q = f'count(streamwatch_monitor_anomalies_total{{instance="{address}"}})'
    return int(r[0].values[-1]) if (r := prom.client.query(q)) else 0


@pytest.mark.e2e
def test_a_replica_killed_while_its_series_is_in_trouble_holds_the_incident_until_it_is_back_and_caught_up(
    tmp_path: Path, start_prometheus: PrometheusFactory
) -> None:
    # Two monitor replicas under one job, each exporting its own two series (cpu 0-1 and cpu 2-3).
    a = start_fleet(tmp_path, "cpu", 2)
    b = start_fleet(tmp_path, "cpu", 2, first=2)
    prom = start_prometheus([ScrapeTarget("monitor", a.address), ScrapeTarget("monitor", b.address)])
    try:
        both = (a.address, b.address)
        assert wait_until(lambda: [_replica_series(prom, r) for r in both] == [2, 2], 20)
        clock = FakeClock(T0)
        log_path = tmp_path / "incidents.log"
        with IncidentLog(log_path) as ilog:
            cfg = IncidentConfig(
                prometheus_url=prom.url, interval=5, half_life_s=10, threshold=10, catchup_max_s=600
            )
            det = IncidentWatcher(cfg, PrometheusClient(cfg.prometheus_url), clock, ilog)
            det.cycle()
            assert det.state()["series_tracked"] == 4  # each series once, whatever replica exports it
            add_and_wait(a, prom, {"0": 30})
            clock.advance(5)
            det.cycle()
            opened = det.state()["current"]
            assert opened is not None and det.state()["series_in_trouble_count"] == 1
            score = det.state()["scores"]["cpu"]

            a.process.stop()  # replica a is down: Prometheus says so, and its series go stale
            up = f'up{{instance="{a.address}"}} == 0'
            gone = a.address
            assert wait_until(lambda: prom.client.query(up) != [] and _replica_series(prom, gone) == 0, 20)
            for _ in range(6):  # 30 s, three half-lives: cpu="0" would have decayed to resolved
                clock.advance(5)
                det.cycle()
                assert det.state()["current"]["incident_id"] == opened["incident_id"]
                assert det.state()["scores"]["cpu"] == pytest.approx(score, abs=1e-3)

            a = start_fleet(tmp_path, "cpu", 2, port=int(a.address.rsplit(":", 1)[1]))  # back, counter at 0
            assert wait_until(lambda: _replica_series(prom, a.address) == 2, 20)
            for _ in range(3):  # back, but no cycle completed since: still held, and no burst
                clock.advance(5)
                det.cycle()
                assert det.state()["scores"]["cpu"] == pytest.approx(score, abs=1e-3)
            done = clock.time() + 1  # it completes a cycle, quiet
            a.add({}, done=done)
            q = f'streamwatch_monitor_last_success_timestamp_seconds{{instance="{a.address}"}}'
            assert wait_until(lambda: (r := prom.client.query(q)) != [] and r[0].values[-1] == done, 15)
            cycles = 0
            while det.state()["current"] is not None and cycles < 20:
                clock.advance(5)
                det.cycle()
                cycles += 1
            # Resolved by decay once caught up (25 -> 5 takes 2.3 half-lives), not by the 600 s cap.
            assert det.state()["current"] is None and cycles * 5 <= 3 * 10
            for _ in range(3):
                clock.advance(5)
                det.cycle()
        assert [e["event"] for e in read_events(log_path)] == ["opened", "resolved"]  # once
    finally:
        a.process.stop()
        b.process.stop()

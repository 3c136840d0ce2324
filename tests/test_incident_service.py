"""The detector's shell against a real Prometheus: reading counters, outages, metrics, /state, the CLI.

A real prometheus_client exporter in the test plays the monitors' part (it exports
``streamwatch_monitor_anomalies_total{metric}`` exactly as they do); Prometheus scrapes it every second.
"""

from __future__ import annotations

import logging
import shutil
import signal
from pathlib import Path

import pytest
import requests

from harness import ROOT
from harness.fake_monitors import FakeMonitors
from harness.net import listen_backlog
from harness.procs import ManagedProcess, python_argv
from harness.services import assert_promtool_metrics_ok
from incident.config import IncidentConfig
from incident.decay import spread_weight
from incident.log import IncidentLog, read_events
from incident.service import IncidentWatcher, serve
from streamwatch.clock import FakeClock
from streamwatch.net import LISTEN_BACKLOG, free_port, wait_until
from streamwatch.promapi import PrometheusClient

T0 = 1_700_000_000.0


def value(watcher: IncidentWatcher, name: str, labels: dict[str, str] | None = None) -> float | None:
    return watcher.metrics.registry.get_sample_value(name, labels or {})


def test_the_incident_loop_has_a_name_of_its_own() -> None:
    # "Detector" names the monitor's models (monitor/detectors/); the incident loop is IncidentWatcher.
    import incident.service

    assert not hasattr(incident.service, "Detector")
    assert incident.service.IncidentWatcher.cycle.__qualname__ == "IncidentWatcher.cycle"


@pytest.mark.e2e
def test_detector_cycle_outage_and_catch_up(
    monitors: FakeMonitors, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = IncidentConfig(prometheus_url=monitors.prometheus.url, interval=5, half_life_s=10, threshold=10)
    clock = FakeClock(T0)
    log_path = tmp_path / "incidents.log"
    with IncidentLog(log_path) as ilog:
        det = IncidentWatcher(cfg, PrometheusClient(cfg.prometheus_url), clock, ilog)
        assert det.cycle() == 5  # baseline
        assert value(det, "streamwatch_incident_prometheus_up") == 1
        assert value(det, "streamwatch_incident_last_success_timestamp_seconds") == T0

        monitors.add("energy_price", 12)
        clock.advance(5)
        det.cycle()
        assert value(det, "streamwatch_incident_severity") == 2
        assert value(det, "streamwatch_incident_open") == 1
        assert value(det, "streamwatch_incident_opened_total", {"severity": "2"}) == 1
        # Counted somewhere in the last 5 s: spread over them, as the core does (test_incident_core).
        assert value(det, "streamwatch_incident_score", {"metric": "energy_price"}) == pytest.approx(
            12 * spread_weight(5, 10)
        )
        assert value(det, "streamwatch_incident_metric_in_trouble", {"metric": "energy_price"}) == 1
        score_before = value(det, "streamwatch_incident_score", {"metric": "energy_price"})

        # Prometheus goes away: the watcher holds its state (no decay), counts errors and retries every
        # few seconds at most, so it is not the last to see Prometheus back.
        det.client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="incident"):
            delays = []
            for _ in range(4):
                clock.advance(60)
                delays.append(det.cycle())
        assert delays == [5, 5, 5, 5]  # backoff_max_s = 5
        assert value(det, "streamwatch_incident_prometheus_errors_total") == 4
        assert value(det, "streamwatch_incident_prometheus_up") == 0
        assert value(det, "streamwatch_incident_holding") == 1
        assert value(det, "streamwatch_incident_severity") == 2  # not resolved by what we cannot see
        assert value(det, "streamwatch_incident_score", {"metric": "energy_price"}) == score_before
        state = det.state()
        assert state["holding"] is True and state["scores"]["energy_price"] == round(score_before, 3)
        assert value(det, "streamwatch_incident_last_success_timestamp_seconds") == T0 + 5
        unavailable = [r for r in caplog.records if "Prometheus unavailable" in r.getMessage()]
        assert len(unavailable) == 1  # once per state change, not per retry

        # Meanwhile the monitors counted more: a trickle of price anomalies (12 in 4 minutes) and a burst
        # in consumption. Prometheus is back, but the monitors have not completed a cycle since: their
        # counters are not news yet, so nothing moves.
        monitors.add("energy_price", 12)
        monitors.add("energy_consumption", 300)
        det.client = PrometheusClient(cfg.prometheus_url)
        clock.advance(5)
        back_at = clock.time()
        with caplog.at_level(logging.INFO, logger="incident"):
            assert det.cycle() == 5
            clock.advance(5)
            det.cycle()
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        assert sum("waiting for the monitors" in r.getMessage() for r in caplog.records) == 1
        assert value(det, "streamwatch_incident_prometheus_up") == 1
        assert value(det, "streamwatch_incident_holding") == 1
        assert value(det, "streamwatch_incident_severity") == 2
        assert value(det, "streamwatch_incident_score", {"metric": "energy_price"}) == score_before

        # The monitors complete a cycle: the scores held through the gap, and what the counters gained
        # is spread over it. The trickle alone would not have opened anything; the burst puts
        # consumption in trouble too: one incident, escalated.
        monitors.completed_cycle(back_at + 1)
        clock.advance(5)
        det.cycle()
        assert value(det, "streamwatch_incident_holding") == 0
        w = spread_weight(clock.time() - (T0 + 5), 10)
        price = value(det, "streamwatch_incident_score", {"metric": "energy_price"})
        consumption = value(det, "streamwatch_incident_score", {"metric": "energy_consumption"})
        assert price == pytest.approx(score_before + 12 * w)
        assert consumption == pytest.approx(300 * w) and consumption > cfg.threshold
        assert value(det, "streamwatch_incident_severity") == 1

        clock.advance(120)  # 12 half-lives without anomalies
        det.cycle()
        assert value(det, "streamwatch_incident_severity") == 0
        assert value(det, "streamwatch_incident_open") == 0
        state = det.state()
        assert state["current"] is None and state["recent"][0]["peak_severity"] == 1
    events = read_events(log_path)
    assert [(e["event"], e["severity"]) for e in events] == [("opened", 2), ("escalated", 1), ("resolved", 0)]
    assert events[1]["metrics"] == ["energy_consumption", "energy_price"]
    assert events[2]["duration_s"] == pytest.approx(240 + 15 + 120)  # opened at T0 + 5


@pytest.mark.e2e
def test_monitors_that_never_catch_up_hold_the_scores_no_longer_than_catchup_max_s(
    monitors: FakeMonitors, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = IncidentConfig(
        prometheus_url=monitors.prometheus.url, interval=5, half_life_s=10, threshold=10, catchup_max_s=30
    )
    clock = FakeClock(T0)
    with IncidentLog(tmp_path / "incidents.log") as ilog:
        det = IncidentWatcher(cfg, PrometheusClient(cfg.prometheus_url), clock, ilog)
        det.cycle()
        monitors.add("energy_price", 12)
        clock.advance(5)
        det.cycle()
        det.client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1)
        clock.advance(60)
        det.cycle()
        det.client = PrometheusClient(cfg.prometheus_url)
        for _ in range(6):  # 25 s after Prometheus came back: still waiting (no monitor cycle seen)
            clock.advance(5)
            det.cycle()
            assert value(det, "streamwatch_incident_holding") == 1
        with caplog.at_level(logging.INFO, logger="incident"):
            clock.advance(5)
            det.cycle()
        assert value(det, "streamwatch_incident_holding") == 0
        assert any("waiting no longer" in r.getMessage() for r in caplog.records)
        assert value(det, "streamwatch_incident_severity") == 2  # held at 11.4, now decaying from there
        clock.advance(30)
        det.cycle()
        assert value(det, "streamwatch_incident_severity") == 0


@pytest.mark.e2e
def test_a_full_disk_keeps_incident_events_until_the_log_takes_them(
    monitors: FakeMonitors, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = IncidentConfig(prometheus_url=monitors.prometheus.url, interval=5, half_life_s=10, threshold=10)
    clock = FakeClock(T0)
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    with IncidentLog("/dev/full") as ilog:
        det = IncidentWatcher(cfg, PrometheusClient(cfg.prometheus_url), clock, ilog)
        det.cycle()
        monitors.add("energy_price", 12)
        clock.advance(5)
        with caplog.at_level(logging.INFO, logger="incident"):
            det.cycle()  # opens a Sev 2 the log cannot take
            monitors.add("energy_consumption", 12)
            clock.advance(5)
            det.cycle()  # escalates to Sev 1: still not written, still detected
        assert value(det, "streamwatch_incident_severity") == 1
        assert value(det, "streamwatch_incident_log_unwritten_events") == 2
        assert value(det, "streamwatch_incident_log_write_errors_total") == 2
        failures = [r for r in caplog.records if "cannot write the incident log" in r.getMessage()]
        assert len(failures) == 1 and "No space left on device" in failures[0].getMessage()

        # Space again (the log's file becomes writable): the next cycle writes both, in order.
        ilog.path = tmp_path / "incidents.log"
        caplog.clear()
        clock.advance(5)
        with caplog.at_level(logging.INFO, logger="incident"):
            det.cycle()
        assert value(det, "streamwatch_incident_log_unwritten_events") == 0
        assert any("writable again" in r.getMessage() for r in caplog.records)
    events = read_events(tmp_path / "incidents.log")
    assert [(e["event"], e["severity"]) for e in events] == [("opened", 2), ("escalated", 1)]


@pytest.mark.e2e
def test_http_metrics_pass_promtool_and_state_is_json(monitors: FakeMonitors, tmp_path: Path) -> None:
    cfg = IncidentConfig(prometheus_url=monitors.prometheus.url, threshold=5)
    clock = FakeClock(T0)
    with IncidentLog(tmp_path / "i.log") as ilog:
        det = IncidentWatcher(cfg, PrometheusClient(cfg.prometheus_url), clock, ilog)
        det.cycle()
        monitors.add("energy_consumption", 6)
        clock.advance(5)
        det.cycle()
        port = free_port()
        server = serve(det, "127.0.0.1", port)
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            state = requests.get(f"http://127.0.0.1:{port}/state", timeout=5).json()
            missing = requests.get(f"http://127.0.0.1:{port}/nope", timeout=5)
            assert server.request_queue_size >= LISTEN_BACKLOG  # not socketserver's 5
            assert listen_backlog(port) >= LISTEN_BACKLOG
        finally:
            server.shutdown()
    for name in (
        "streamwatch_incident_score",
        "streamwatch_incident_threshold",
        "streamwatch_incident_severity",
        "streamwatch_incident_open",
        "streamwatch_incident_opened_total",
        "streamwatch_incident_last_success_timestamp_seconds",
        "streamwatch_incident_prometheus_errors_total",
        "streamwatch_incident_prometheus_up",
    ):
        assert f"# HELP {name} " in text
    assert "_created" not in text
    score = 6 * spread_weight(5, cfg.half_life_s)
    assert f'streamwatch_incident_score{{metric="energy_consumption"}} {score}' in text
    assert "streamwatch_incident_severity 2.0" in text
    assert_promtool_metrics_ok(text)
    assert state["severity"] == 2 and state["current"]["metrics"] == ["energy_consumption"]
    assert state["scores"] == {"energy_consumption": round(score, 3), "energy_price": 0.0}
    assert missing.status_code == 404 and "error" in missing.json()


@pytest.mark.e2e
def test_cli_runs_logs_and_stops_cleanly(monitors: FakeMonitors, tmp_path: Path) -> None:
    assert shutil.which("promtool")
    port = free_port()
    conf = tmp_path / "incident.toml"
    conf.write_text("half_life_s = 30.0\nthreshold = 5.0\n")
    log_path = tmp_path / "incidents.log"
    argv = python_argv(
        str(ROOT / "incident_detector.py"), "--config", str(conf), "--port", str(port),
        "--prometheus-url", monitors.prometheus.url, "--interval", "0.5", "--log", str(log_path),
        "--log-format", "text",
    )  # fmt: skip
    proc = ManagedProcess("incident", argv, tmp_path / "detector.out", cwd=ROOT)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: requests.get(f"{base}/state").json()["prometheus_up"] is True, 15)
        monitors.add("energy_price", 6)
        monitors.add("energy_consumption", 6)
        assert wait_until(lambda: requests.get(f"{base}/state").json()["severity"] == 1, 15), proc.log_tail()
        # Both counters usually land in one scrape (opened as Sev 1); a scrape between them gives Sev 2 first.
        sev1 = ("Sev 1 incident opened: metrics=energy_consumption,energy_price", "escalated to Sev 1")
        assert wait_until(lambda: log_path.exists() and any(s in log_path.read_text() for s in sev1), 5)
    finally:
        proc.proc.send_signal(signal.SIGTERM)
        rc = proc.proc.wait(15)
        proc.stop()
    assert rc == 0
    out = (tmp_path / "detector.out").read_text()
    assert any(s in out for s in sev1)
    assert "Traceback" not in out


@pytest.mark.e2e
def test_cli_unreachable_prometheus_keeps_serving(tmp_path: Path) -> None:
    port = free_port()
    argv = python_argv(
        str(ROOT / "incident_detector.py"), "--port", str(port), "--interval", "0.1",
        "--prometheus-url", f"http://127.0.0.1:{free_port()}", "--log", str(tmp_path / "i.log"),
    )  # fmt: skip
    with ManagedProcess("incident", argv, tmp_path / "detector.out", cwd=ROOT) as proc:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)

        def errors() -> float:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            line = next(
                x for x in text.splitlines() if x.startswith("streamwatch_incident_prometheus_errors")
            )
            return float(line.split()[-1])

        assert wait_until(lambda: errors() >= 3, 20)
        assert (
            "streamwatch_incident_prometheus_up 0.0" in requests.get(f"http://127.0.0.1:{port}/metrics").text
        )
        assert proc.alive
    out = (tmp_path / "detector.out").read_text()
    assert out.count("Prometheus unavailable") == 1 and "Traceback" not in out

"""The incident detector under faults (issue 11): restarts, a blind Prometheus, bad values, failed writes.

Real Prometheus and real processes; the monitors' part is played by a prometheus_client exporter in the
test (``tests.test_incident_service.FakeMonitors``), which exports their anomaly counter exactly as they do.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge

from harness import ROOT
from harness.cli import assert_one_line_error, run_python
from harness.fake_monitors import FakeMonitors
from harness.procs import ManagedProcess, alertmanager_argv, prometheus_argv, python_argv
from harness.services import PrometheusFactory, ScrapeTarget
from incident.config import IncidentConfig
from incident.decay import decay_factor, spread_weight
from incident.log import IncidentLog, read_events
from incident.service import IncidentWatcher, serve
from incident.state import StateFile, state_path_for
from stack import credentials
from streamwatch.clock import FakeClock
from streamwatch.net import free_port, http_ok, start_metrics_server, wait_until
from streamwatch.promapi import PrometheusClient

METRICS = ("energy_consumption", "energy_price")
T0 = 1_700_000_000.0


@contextmanager
def spike(fm: FakeMonitors, per_tick: int = 1, tick_s: float = 0.25) -> Iterator[None]:
    """A prolonged spike in both metrics: the monitors count ``per_tick`` anomalies each every tick."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(tick_s):
            for m in METRICS:
                fm.counter.labels(metric=m).inc(per_tick)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def watcher_argv(prom_url: str, port: int, log_path: Path, conf: Path) -> list[str]:
    return python_argv(
        str(ROOT / "incident_detector.py"), "--config", str(conf), "--port", str(port),
        "--prometheus-url", prom_url, "--interval", "0.2", "--log", str(log_path),
    )  # fmt: skip


def get_state(port: int) -> dict[str, Any]:
    return requests.get(f"http://127.0.0.1:{port}/state", timeout=5).json()


# --- 1. a restart keeps the incident -----------------------------------------------------------------


@pytest.mark.e2e
def test_sigkill_mid_incident_then_restart_continues_and_resolves_it_once(
    monitors: FakeMonitors,
    tmp_path: Path,
) -> None:
    conf = tmp_path / "incident.toml"
    conf.write_text("half_life_s = 3.0\nthreshold = 8.0\n")  # steady state of the spike: 4/s * 3/ln2 = 17
    log_path = tmp_path / "incidents.log"
    port = free_port()
    argv = watcher_argv(monitors.prometheus.url, port, log_path, conf)
    with spike(monitors):
        first = ManagedProcess("incident", argv, tmp_path / "first.out", cwd=ROOT)
        try:
            first.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
            assert wait_until(lambda: get_state(port)["severity"] == 1, 20), first.log_tail()
            incident_id = get_state(port)["current"]["incident_id"]
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
        finally:
            first.stop()
        # The monitors keep counting while the detector is down.
        q = 'sum(streamwatch_monitor_anomalies_total{metric="energy_price"})'
        at_kill = monitors.prometheus.client.query(q)[0].values[-1]
        assert wait_until(lambda: monitors.prometheus.client.query(q)[0].values[-1] >= at_kill + 4, 15)
        second = ManagedProcess("incident", argv, tmp_path / "second.out", cwd=ROOT)
        try:
            second.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
            resumed = get_state(port)
            assert resumed["current"] is not None, second.log_tail()
            assert resumed["current"]["incident_id"] == incident_id
            assert wait_until(lambda: get_state(port)["prometheus_up"] is True, 15)
            assert get_state(port)["severity"] == 1, second.log_tail()  # continued, not reopened
        except BaseException:
            second.stop()
            raise
    try:
        assert wait_until(lambda: get_state(port)["current"] is None, 30), second.log_tail()
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(15) == 0
        second.stop()
    events = read_events(log_path)
    assert {e["incident_id"] for e in events} == {incident_id}, events
    kinds = [e["event"] for e in events]
    assert kinds.count("opened") == 1 and kinds.count("resolved") == 1 and kinds[-1] == "resolved", kinds
    out = (tmp_path / "second.out").read_text()
    assert f"incident {incident_id} (Sev 1) open" in out and "Traceback" not in out


@pytest.mark.e2e
def test_restart_counts_the_anomalies_of_its_downtime_spread_over_the_gap(
    monitors: FakeMonitors,
    tmp_path: Path,
) -> None:
    cfg = IncidentConfig(prometheus_url=monitors.prometheus.url, interval=5, half_life_s=10, threshold=10)
    clock = FakeClock(T0)
    log_path = tmp_path / "incidents.log"
    state = state_path_for(log_path)
    with IncidentLog(log_path) as ilog:
        first = IncidentWatcher(
            cfg, PrometheusClient(cfg.prometheus_url), clock, ilog, state_file=StateFile(state)
        )
        first.cycle()  # baseline
        monitors.add("energy_price", 12)
        clock.advance(5)
        first.cycle()
        assert first.tracker.severity == 2
        held = first.tracker.scores["energy_price"].value
    del first  # gone without a goodbye, as after SIGKILL: only the state file remains

    monitors.add("energy_price", 20)  # counted by the monitors while no detector ran
    monitors.add("energy_consumption", 3)
    clock.advance(30)
    with IncidentLog(log_path) as ilog:
        second = IncidentWatcher(
            cfg, PrometheusClient(cfg.prometheus_url), clock, ilog, state_file=StateFile(state)
        )
        assert second.tracker.current is not None and second.tracker.severity == 2
        second.cycle()
        w = spread_weight(30, cfg.half_life_s)
        assert second.tracker.scores["energy_price"].value == pytest.approx(
            held * decay_factor(30, cfg.half_life_s) + 20 * w
        )
        assert second.tracker.scores["energy_consumption"].value == pytest.approx(3 * w)
        assert second.tracker.severity == 2  # 11.4 * 0.125 + 20 * 0.55: still in trouble, the same incident
        clock.advance(60)
        second.cycle()
        assert second.tracker.severity == 0
    events = read_events(log_path)
    assert [e["event"] for e in events] == ["opened", "resolved"]
    assert events[0]["incident_id"] == events[1]["incident_id"]


@pytest.mark.e2e
def test_restart_between_log_write_and_state_save_writes_no_event_twice(
    monitors: FakeMonitors,
    tmp_path: Path,
) -> None:
    cfg = IncidentConfig(prometheus_url=monitors.prometheus.url, interval=5, half_life_s=10, threshold=10)
    clock = FakeClock(T0)
    log_path = tmp_path / "incidents.log"
    store = StateFile(state_path_for(log_path))
    with IncidentLog(log_path) as ilog:
        first = IncidentWatcher(cfg, PrometheusClient(cfg.prometheus_url), clock, ilog, state_file=store)
        first.cycle()
        monitors.add("energy_price", 12)
        clock.advance(5)
        first.cycle()
    # What a kill after the log took the "opened" line but before the state was saved again leaves: the
    # line in the log, and in the state as still pending.
    doc = StateFile(store.path).load()
    assert doc is not None and doc["unwritten"] == []
    opened = log_path.read_text().splitlines()[-1]
    # And a pending line that never made it (a full disk, then the kill): written on restart.
    lost = json.dumps({**json.loads(opened), "event": "changed"}, separators=(",", ":"))
    doc["unwritten"] = [opened, lost]
    store.path.write_text(json.dumps(doc))
    with IncidentLog(log_path) as ilog:
        second = IncidentWatcher(
            cfg, PrometheusClient(cfg.prometheus_url), clock, ilog, state_file=StateFile(store.path)
        )
        assert second.unwritten == [lost]
        clock.advance(5)
        second.cycle()
    assert [e["event"] for e in read_events(log_path)] == ["opened", "changed"]


def test_a_damaged_state_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    log_path = tmp_path / "incidents.log"
    state_path_for(log_path).write_text('{"version": 1, "tracker": {"scores": 3}}')
    argv = ["incident_detector.py", "--port", str(free_port()), "--log", str(log_path)]
    proc = run_python(*argv, "--prometheus-url", f"http://127.0.0.1:{free_port()}", timeout=30)
    assert_one_line_error(proc, "incidents.log.state.json", "damaged incident state", "move it away")
    state_path_for(log_path).write_text("not json")
    proc = run_python(*argv, "--prometheus-url", f"http://127.0.0.1:{free_port()}", timeout=30)
    assert_one_line_error(proc, "incidents.log.state.json", "not an incident state file")


# --- 3. non-finite counts ----------------------------------------------------------------------------


def strict_json(text: str) -> Any:
    """``json.loads`` that, like jq, refuses NaN and Infinity."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} in JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.e2e
def test_infinite_and_nan_counts_are_ignored_counted_and_never_written(
    monitors: FakeMonitors,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = IncidentConfig(prometheus_url=monitors.prometheus.url, interval=5, half_life_s=10, threshold=10)
    clock = FakeClock(T0)
    log_path = tmp_path / "incidents.log"
    price = monitors.counter.labels(metric="energy_price")

    def counter_is(v: float) -> None:
        price._value.set(v)  # a counter that reads +Inf or NaN: what a broken exporter can serve
        q = 'streamwatch_monitor_anomalies_total{metric="energy_price"}'

        def seen() -> bool:
            got = monitors.prometheus.client.query(q)[0].values[-1]
            return bool(math.isnan(got)) if math.isnan(v) else bool(got == v)

        assert wait_until(seen, 15)

    def nonfinite() -> float | None:
        return det.metrics.registry.get_sample_value(
            "streamwatch_incident_nonfinite_values_total", {"metric": "energy_price"}
        )

    port = free_port()
    with IncidentLog(log_path) as ilog:
        det = IncidentWatcher(
            cfg,
            PrometheusClient(cfg.prometheus_url),
            clock,
            ilog,
            state_file=StateFile(state_path_for(log_path)),
        )
        server = serve(det, "127.0.0.1", port)
        try:
            det.cycle()
            monitors.add("energy_price", 12)
            clock.advance(5)
            det.cycle()
            assert det.tracker.severity == 2
            with caplog.at_level(logging.INFO, logger="incident"):
                for bad in (math.inf, math.nan):
                    counter_is(bad)
                    for _ in range(2):
                        clock.advance(1)
                        det.cycle()
                        state = strict_json(requests.get(f"http://127.0.0.1:{port}/state", timeout=5).text)
                        assert 0 < state["scores"]["energy_price"] < 12  # kept, decaying, finite
                assert nonfinite() == 4
                counter_is(30.0)  # a number again: counted from the last finite value (12)
                clock.advance(1)
                det.cycle()
            warned = [r for r in caplog.records if "non-finite anomaly count" in r.getMessage()]
            assert len(warned) == 1 and "energy_price" in warned[0].getMessage()
            assert any("a number again" in r.getMessage() for r in caplog.records)
            assert det.tracker.scores["energy_price"].value > 12
            clock.advance(120)
            det.cycle()
            assert det.tracker.severity == 0
            metrics_text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            server.shutdown()
    assert 'streamwatch_incident_nonfinite_values_total{metric="energy_price"} 4.0' in metrics_text
    samples = [line for line in metrics_text.splitlines() if not line.startswith("#")]
    assert not [line for line in samples if line.endswith(("Inf", "NaN"))]
    lines = log_path.read_text().splitlines()
    assert [strict_json(line)["event"] for line in lines] == ["opened", "resolved"]
    strict_json(state_path_for(log_path).read_text())


# --- 2. a blind detector holds -------------------------------------------------------------------------


class MonitorsLike:
    """Monitors as Prometheus sees them, fast: a thread that, each tick while Prometheus answers, counts
    ``per_tick`` anomalies for each spiking metric and stamps every metric's last successful cycle.

    Like the real ones, they cannot work while Prometheus is down, and after it returns they take
    ``resume_s`` (their backoff) before their next cycle.
    """

    def __init__(self, prom_url: str, resume_s: float, tick_s: float = 0.25, per_tick: int = 1):
        self.registry = CollectorRegistry()
        self.counter = Counter("streamwatch_monitor_anomalies_total", "a", ["metric"], registry=self.registry)
        self.last_success = Gauge(
            "streamwatch_monitor_last_success_timestamp_seconds", "l", ["metric"], registry=self.registry
        )
        for m in METRICS:
            self.counter.labels(metric=m)
        self.prom_url, self.resume_s, self.tick_s, self.per_tick = prom_url, resume_s, tick_s, per_tick
        self.spiking: set[str] = set()
        self.cycles_after_outage = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        resume_at: float | None = 0.0
        while not self.stop.wait(self.tick_s):
            now = time.time()
            if not http_ok(f"{self.prom_url}/-/ready", timeout_s=0.2):
                resume_at, self.cycles_after_outage = None, 0
                continue
            if resume_at is None:
                resume_at = now + self.resume_s
            if now < resume_at:
                continue
            for m in METRICS:
                if m in self.spiking:
                    self.counter.labels(metric=m).inc(self.per_tick)
                self.last_success.labels(metric=m).set(now)
            self.cycles_after_outage += 1


# The detector under test: a 5 s half-life, threshold 10 (clear below 5), retries at most every 5 s. The
# fast monitors' spike holds its score near 29.
HALF_LIFE_S, THRESHOLD, BACKOFF_MAX_S, SPIKE_SCORE = 5.0, 10.0, 5.0, 29.0
# What the outage must outlast follows from that configuration, not from production's numbers: an unheld
# score would have fallen under the clear level twice over, and the retries have reached their longest
# backoff twice (about 35 s; a longer outage proves nothing more).
OUTAGE_S = 2 * HALF_LIFE_S * math.log2(SPIKE_SCORE / (THRESHOLD / 2)) + 2 * BACKOFF_MAX_S


@pytest.mark.e2e
def test_prometheus_killed_during_a_prolonged_spike_is_one_incident_and_one_alert(
    start_prometheus: PrometheusFactory, tmp_path: Path
) -> None:
    receiver_port, am_port, watcher_port, monitors_port = free_port(), free_port(), free_port(), free_port()
    receiver = f"http://127.0.0.1:{receiver_port}"
    am_config = yaml.safe_load((ROOT / "prometheus" / "alertmanager.yml").read_text())
    am_config["route"].update(group_wait="1s", group_interval="1s")
    for route in am_config["route"].get("routes", []):
        route["group_wait"] = "1s"
    am_config["receivers"][0]["webhook_configs"][0]["url"] = f"{receiver}/"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    conf = tmp_path / "incident.toml"
    conf.write_text(
        f"half_life_s = {HALF_LIFE_S}\nthreshold = {THRESHOLD}\ninterval = 0.5\n"
        f"backoff_max_s = {BACKOFF_MAX_S}\n"
    )
    log_path = tmp_path / "incidents.log"
    procs: list[ManagedProcess] = []
    fakes: MonitorsLike | None = None
    server = None
    try:
        rcv = ManagedProcess(
            "alert receiver",
            python_argv(
                "-m", "incident.webhook", "--port", str(receiver_port), "--log", str(tmp_path / "a.log")
            ),
            tmp_path / "receiver.out",
            cwd=ROOT,
        )
        procs.append(rcv)
        am = ManagedProcess(
            "alertmanager",
            alertmanager_argv(tmp_path, am_port),  # its config: tmp_path / "alertmanager.yml"
            tmp_path / "alertmanager.out",
        )
        procs.append(am)
        targets = [
            ScrapeTarget("monitors", f"127.0.0.1:{monitors_port}"),
            ScrapeTarget("anomaly_detector", f"127.0.0.1:{watcher_port}"),
        ]
        prom = start_prometheus(
            targets,
            rule_files=sorted((ROOT / "prometheus" / "rules").glob("*.yml")),
            alertmanager=f"127.0.0.1:{am_port}",
            alertmanager_password_file=tmp_path / "alertmanager.password",
        )
        # Three half-lives: an unheld score of 29 would fall to 3.6 before the monitors' next cycle.
        fakes = MonitorsLike(prom.url, resume_s=3 * HALF_LIFE_S)
        server, _thread = start_metrics_server(fakes.registry, "127.0.0.1", monitors_port)
        fakes.thread.start()
        rcv.wait_http(f"{receiver}/healthz", timeout_s=30)
        am.wait_http(
            f"http://127.0.0.1:{am_port}/-/ready", timeout_s=30, auth=credentials.ensure(tmp_path).auth
        )
        argv = python_argv(
            str(ROOT / "incident_detector.py"), "--config", str(conf), "--port", str(watcher_port),
            "--prometheus-url", prom.url, "--log", str(log_path),
        )  # fmt: skip
        watcher = ManagedProcess("incident", argv, tmp_path / "watcher.out", cwd=ROOT)
        procs.append(watcher)
        watcher.wait_http(f"http://127.0.0.1:{watcher_port}/healthz", timeout_s=30)
        assert wait_until(lambda: get_state(watcher_port)["prometheus_up"] is True, 20), watcher.log_tail()

        def alerts(status: str) -> list[dict[str, Any]]:
            recs = requests.get(f"{receiver}/alerts", timeout=5).json()["alerts"]
            return [a for a in recs if a["alertname"] == "StreamwatchSev2" and a["status"] == status]

        fakes.spiking.add("energy_consumption")
        assert wait_until(lambda: get_state(watcher_port)["severity"] == 2, 20), watcher.log_tail()
        incident_id = get_state(watcher_port)["current"]["incident_id"]
        assert wait_until(lambda: alerts("firing"), 20)

        # Prometheus dies (SIGKILL) and stays away: the watcher holds the incident all along.
        os.killpg(prom.process.proc.pid, signal.SIGKILL)
        prom.process.proc.wait(10)
        outage_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_end:
            state = get_state(watcher_port)
            assert state["current"] and state["current"]["incident_id"] == incident_id, state
            time.sleep(0.5)  # the outage lasts OUTAGE_S whatever happens; this polls the watcher during it
        assert state["holding"] is True and state["prometheus_up"] is False

        # Back on the same TSDB and port. The monitors need resume_s to complete a cycle; meanwhile and
        # after, the incident goes on: no resolve, no second incident.
        workdir = prom.config_path.parent
        again = ManagedProcess(
            "prometheus",
            prometheus_argv(workdir, int(prom.url.rsplit(":", 1)[1])),
            workdir / "prometheus-again.log",
        )
        start_prometheus.started.append(again)
        again.wait_http(f"{prom.url}/-/ready", timeout_s=30)

        def watch_until(done: Callable[[], bool], timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while not done():
                state = get_state(watcher_port)
                assert state["current"] and state["current"]["incident_id"] == incident_id, state
                assert time.monotonic() < deadline, state
                time.sleep(0.25)

        watch_until(lambda: fakes.cycles_after_outage >= 20, 40)  # 5 s of monitor cycles after resuming
        assert get_state(watcher_port)["holding"] is False, watcher.log_tail()
        fakes.spiking.clear()
        assert wait_until(lambda: get_state(watcher_port)["current"] is None, 30), watcher.log_tail()
        assert wait_until(lambda: alerts("resolved"), 30)
        assert len(alerts("firing")) == 1 and len(alerts("resolved")) == 1  # no false resolve, no re-fire
    finally:
        if fakes is not None:
            fakes.stop.set()
        if server is not None:
            server.shutdown()
        for p in procs:
            p.stop()
    events = read_events(log_path)
    assert {e["incident_id"] for e in events} == {incident_id}
    assert [e["event"] for e in events] == ["opened", "resolved"]
    out = (tmp_path / "watcher.out").read_text()
    assert "waiting for the monitors" in out and "caught up" in out and "Traceback" not in out

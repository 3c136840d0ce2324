"""End to end on loopback: real simulator, Prometheus (with prometheus/rules), Alertmanager, two real
monitors and the incident detector; the original design's four cases through the simulator's API.

One module-scoped stack serves every test (starting Prophet monitors is the slow part). Intervals are
shortened through configuration only: Prometheus scrapes and evaluates every second, the monitors run
2 s cycles, and the detector polls every second with a 15 s half-life (threshold 10, clear below 5).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from harness import ROOT
from harness.procs import ManagedProcess, alertmanager_argv, python_argv
from harness.services import (
    PrometheusFactory,
    PrometheusServer,
    ScrapeTarget,
    SimulatorFactory,
    SimulatorServer,
)
from incident.log import read_events
from stack import credentials
from streamwatch.net import free_port, wait_until

METRICS = ("energy_consumption", "energy_price")
DETECTOR_TOML = """
half_life_s = 15.0
threshold = 10.0
clear_threshold = 5.0
interval = 1.0
"""
SPIKE = 3.0  # the simulator's spike multiplies the value


@dataclass
class Receiver:
    """The shipped Alertmanager webhook receiver (python -m incident.webhook), read through GET /alerts."""

    url: str

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = requests.get(f"{self.url}/alerts", timeout=5).json()["alerts"]
        return [a for a in alerts if a["alertname"] == alertname and a["status"] == "firing"]

    @property
    def posts(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/alerts", timeout=5).json()["alerts"]


@dataclass
class Stack:
    prometheus: PrometheusServer
    simulator: SimulatorServer
    detector_url: str
    log_path: Path
    receiver: Receiver
    processes: dict[str, ManagedProcess]

    def query(self, expr: str) -> float | None:
        res = self.prometheus.client.query(expr)
        return float(res[0].values[-1]) if res else None

    def severity(self) -> float | None:
        return self.query("streamwatch_incident_severity")

    def inject(self, metric: str, duration_s: float, magnitude: float = SPIKE) -> str:
        body = {"metric": metric, "kind": "spike", "magnitude": magnitude, "duration_s": duration_s}
        resp = requests.post(f"{self.simulator.url}/anomalies", json=body, timeout=5)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def end(self, anomaly_id: str) -> None:
        requests.delete(f"{self.simulator.url}/anomalies/{anomaly_id}", timeout=5)

    def anomalies_total(self, metric: str) -> float:
        return self.query(f'sum(streamwatch_monitor_anomalies_total{{metric="{metric}"}})') or 0.0

    def state(self) -> dict[str, Any]:
        return requests.get(f"{self.detector_url}/state", timeout=5).json()

    def wait_normal(self, timeout_s: float = 60) -> None:
        def normal() -> bool:
            # No scores yet is not normal: the detector has not read the monitors (a loaded machine).
            scores = self.state()["scores"]
            return self.severity() == 0 and bool(scores) and max(scores.values()) < 5

        ok = wait_until(normal, timeout_s, 0.5)
        assert ok, self.diagnostics()

    def diagnostics(self) -> str:
        tails = "\n".join(f"--- {n}\n{p.log_tail(15)}" for n, p in self.processes.items())
        return f"state={self.state()}\n{tails}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("incident-e2e")
    receiver = Receiver(f"http://127.0.0.1:{free_port()}")
    am_port = free_port()
    am_config = yaml.safe_load((ROOT / "prometheus" / "alertmanager.yml").read_text())
    # The shipped route and receiver, pointed at the test's receiver and with short waits.
    am_config["route"].update(group_wait="1s", group_interval="1s")
    for route in am_config["route"].get("routes", []):
        route["group_wait"] = "1s"
    am_config["receivers"][0]["webhook_configs"][0]["url"] = f"{receiver.url}/"
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    processes: dict[str, ManagedProcess] = {}
    sims = SimulatorFactory(tmp)
    proms = PrometheusFactory(tmp)
    try:
        receiver_port = receiver.url.rsplit(":", 1)[1]
        processes["alert receiver"] = rcv = ManagedProcess(
            "alert receiver",
            python_argv("-m", "incident.webhook", "--port", receiver_port, "--log", str(tmp / "alerts.log")),
            tmp / "alert-receiver.log",
            cwd=ROOT,
        )
        rcv.wait_http(f"{receiver.url}/healthz", timeout_s=30)
        processes["alertmanager"] = am = ManagedProcess(
            "alertmanager",
            alertmanager_argv(tmp, am_port),
            tmp / "alertmanager.log",
        )
        am.wait_http(f"http://127.0.0.1:{am_port}/-/ready", timeout_s=30, auth=credentials.ensure(tmp).auth)
        sim = sims()
        ports = {m: free_port() for m in METRICS}
        det_port = free_port()
        targets = [ScrapeTarget("flask_app", sim.address)]
        targets += [ScrapeTarget(f"monitor_{m}", f"127.0.0.1:{p}") for m, p in ports.items()]
        targets.append(ScrapeTarget("anomaly_detector", f"127.0.0.1:{det_port}"))
        prom = proms(
            targets,
            rule_files=sorted((ROOT / "prometheus" / "rules").glob("*.yml")),
            alertmanager=f"127.0.0.1:{am_port}",
            alertmanager_password_file=tmp / "alertmanager.password",
        )
        for m, port in ports.items():
            # Training data that ends now, so the monitors' forecast grid starts where the live data is.
            train = tmp / f"{m}_train.json"
            gen = python_argv(
                "simulator.py", "generate", "--metric", m, "--duration", "1h", "--out", str(train)
            )
            subprocess.run(gen, cwd=ROOT, check=True, capture_output=True, timeout=60)
            argv = python_argv(
                "monitor.py", m, str(train), str(port), "--prometheus-url", prom.url,
                "--interval", "2", "--model-dir", str(tmp / "models"),
            )  # fmt: skip
            processes[f"monitor {m}"] = ManagedProcess(
                f"monitor {m}", argv, tmp / f"monitor-{m}.log", cwd=ROOT
            )
        (tmp / "incident.toml").write_text(DETECTOR_TOML)
        log_path = tmp / "incidents.log"
        argv = python_argv(
            "incident_detector.py", "--config", str(tmp / "incident.toml"), "--port", str(det_port),
            "--prometheus-url", prom.url, "--log", str(log_path),
        )  # fmt: skip
        processes["detector"] = det = ManagedProcess("detector", argv, tmp / "detector.log", cwd=ROOT)
        det.wait_http(f"http://127.0.0.1:{det_port}/healthz", timeout_s=30)
        for m, port in ports.items():
            processes[f"monitor {m}"].wait_http(f"http://127.0.0.1:{port}/metrics", timeout_s=90)
        st = Stack(prom, sim, f"http://127.0.0.1:{det_port}", log_path, receiver, processes)

        def monitors_scoring() -> bool:
            q = "count(increase(streamwatch_monitor_samples_scored_total[10s]) > 0)"
            return st.query(q) == len(METRICS) and st.query("streamwatch_incident_prometheus_up") == 1

        assert wait_until(monitors_scoring, 90, 0.5), st.diagnostics()
        st.wait_normal()
        yield st
    finally:
        for p in processes.values():
            p.stop()
        for p in sims.started + proms.started:
            p.stop()


@pytest.mark.e2e
def test_transient_spikes_in_one_then_both_metrics_open_no_incident(stack: Stack) -> None:
    before = {m: stack.anomalies_total(m) for m in METRICS}
    stack.inject("energy_price", 3)
    assert wait_until(lambda: stack.anomalies_total("energy_price") > before["energy_price"], 20, 0.5)
    for m in METRICS:
        stack.inject(m, 3)
    assert wait_until(lambda: all(stack.anomalies_total(m) > before[m] for m in METRICS), 20, 0.5)
    # The monitors saw the spikes. Wait for the detector's scores to show them, let them decay back below
    # the clear level, then check the whole window: counted, but nothing came near an incident.
    window = "[120s]"

    def peaks() -> dict[str, float]:
        q = "max_over_time(streamwatch_incident_score{{metric='{}'}}{})"
        return {m: stack.query(q.format(m, window)) or 0.0 for m in METRICS}

    assert wait_until(lambda: all(p > 0 for p in peaks().values()), 15, 0.5), stack.diagnostics()
    quiet = "max(changes(streamwatch_monitor_anomalies_total[6s]))"  # three monitor cycles, nothing new
    assert wait_until(lambda: stack.query(quiet) == 0, 30, 0.5), stack.diagnostics()
    stack.wait_normal()
    assert all(0 < p < 10 for p in peaks().values()), peaks()
    assert stack.query(f"max_over_time(streamwatch_incident_open{window})") == 0
    assert stack.query(f"max_over_time(streamwatch_incident_severity{window})") == 0


@pytest.mark.e2e
def test_prolonged_spike_in_one_metric_is_sev2_then_resolves(stack: Stack) -> None:
    spike = stack.inject("energy_consumption", 60)
    assert wait_until(lambda: stack.severity() == 2, 45, 0.5), stack.diagnostics()
    state = stack.state()
    assert state["current"]["metrics"] == ["energy_consumption"] and state["current"]["severity"] == 2
    assert wait_until(lambda: stack.receiver.firing("StreamwatchSev2"), 20, 0.5), stack.receiver.posts
    alert = stack.receiver.firing("StreamwatchSev2")[0]
    assert alert["labels"]["metric"] == "energy_consumption" and alert["labels"]["severity"] == "warning"
    stack.end(spike)
    stack.wait_normal(60)
    events = [e for e in read_events(stack.log_path) if e["incident_id"] == state["current"]["incident_id"]]
    assert [e["event"] for e in events] == ["opened", "resolved"]
    assert events[0]["severity"] == 2 and events[1]["peak_severity"] == 2


@pytest.mark.e2e
def test_prolonged_spike_in_both_metrics_is_sev1_alert_at_the_receiver(stack: Stack) -> None:
    spikes = [stack.inject(m, 60) for m in METRICS]
    assert wait_until(lambda: stack.severity() == 1, 45, 0.5), stack.diagnostics()
    assert wait_until(lambda: stack.receiver.firing("StreamwatchSev1"), 20, 0.5), stack.receiver.posts
    [alert] = stack.receiver.firing("StreamwatchSev1")[:1]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["sev"] == "1"
    assert "energy_consumption energy_price" in alert["annotations"]["description"]
    for s in spikes:
        stack.end(s)
    stack.wait_normal(60)
    incident_id = stack.state()["recent"][0]["incident_id"]
    events = [e for e in read_events(stack.log_path) if e["incident_id"] == incident_id]
    assert events[-1]["event"] == "resolved" and events[-1]["peak_severity"] == 1
    assert any(e["severity"] == 1 for e in events)  # opened as Sev 1, or as Sev 2 and escalated

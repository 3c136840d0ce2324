"""The whole stack, started as `make demo` starts it, through the original design's four cases.

One stack session (module fixture) on free ports with short intervals (harness.stack_variant changes
settings only, never code paths). In order: every service up and scraped; a transient spike in one
metric and in both opens nothing; a prolonged spike in one metric opens a Sev 2, in both a Sev 1, and
each resolves after; every Grafana panel's query returns data; SIGTERM leaves no process behind; a
second run on the same data folder keeps Prometheus' history.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness import grafana as grafana_support
from harness.net import busy_port
from harness.stack_run import (
    FAST,
    RunningStack,
    pid_alive,
    processes_under,
    start_stack,
    write_test_stack,
)
from incident.log import read_events
from simulator.config import default_metrics
from stack.config import load_stack
from streamwatch.net import port_in_use, wait_until
from streamwatch.promapi import PrometheusClient

pytestmark = pytest.mark.e2e

RANGES = {m.name: m.max - m.min for m in default_metrics()}
METRICS = sorted(RANGES)
TRANSIENT_S = 3.0  # about three scraped samples: under the threshold whatever the timing
PROLONGED_S = 20.0  # one anomaly a second for 20 s: well past the threshold


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def stack(stack_dir: Path) -> Iterator[RunningStack]:
    running = start_stack(write_test_stack(stack_dir, dashboard=True), stack_dir)
    yield running
    running.stop()


def prom(stack: RunningStack) -> PrometheusClient:
    return PrometheusClient(stack.url("prometheus"))


def scalar(stack: RunningStack, expr: str) -> float | None:
    found = prom(stack).query(expr)
    return float(found[0].values[-1]) if found else None


def detector_state(stack: RunningStack) -> dict:
    return requests.get(f"{stack.url('incident-detector')}/state", timeout=2).json()


def inject(stack: RunningStack, metric: str, duration_s: float) -> None:
    # A jump of three times the metric's whole range: far outside any band, whatever the wave's phase.
    body = {"metric": metric, "kind": "shift", "magnitude": 3 * RANGES[metric], "duration_s": duration_s}
    resp = requests.post(f"{stack.url('simulator')}/anomalies", json=body, timeout=5)
    assert resp.status_code in (200, 201), resp.text


def anomalies_counted(stack: RunningStack, metric: str) -> float:
    return scalar(stack, f'sum(streamwatch_monitor_anomalies_total{{metric="{metric}"}})') or 0.0


def wait_quiet(stack: RunningStack, timeout_s: float = 60) -> None:
    """Until no incident is open and every score has decayed to a fraction of the threshold."""

    def quiet() -> bool:
        s = detector_state(stack)
        return s["severity"] == 0 and all(v < FAST.threshold / 5 for v in s["scores"].values())

    assert wait_until(quiet, timeout_s, 0.5), f"the detector did not settle: {detector_state(stack)}"


def severity_seen(stack: RunningStack, since: float) -> list[int]:
    events = read_events(stack.cfg.data_path() / "incidents.log")
    return [e["severity"] for e in events if e["time"] >= since and e["event"] != "resolved"]


def test_every_service_is_up_and_scraped(stack: RunningStack) -> None:
    banner = stack.output()
    for name, svc in stack.cfg.enabled_services().items():
        assert f"http://127.0.0.1:{svc.port}" in banner, name
    up = {s.labels["job"]: s.values[-1] for s in prom(stack).query("up")}
    assert up == {
        "prometheus": 1,
        "alertmanager": 1,
        "flask_app": 1,
        "monitor_energy_consumption": 1,
        "monitor_energy_price": 1,
        "anomaly_detector": 1,
        "alert_receiver": 1,
    }
    # The rules of prometheus/rules/ are loaded from the runtime config.
    groups = requests.get(f"{stack.url('prometheus')}/api/v1/rules", timeout=2).json()["data"]["groups"]
    assert groups, "no rule groups loaded"
    # Each monitor is scoring live samples.
    for metric in METRICS:
        assert wait_until(
            lambda m=metric: (
                (scalar(stack, f'streamwatch_monitor_samples_scored_total{{metric="{m}"}}') or 0) > 0
            ),
            60,
            0.5,
        ), f"the {metric} monitor scores nothing"


@pytest.mark.parametrize("metrics", [["energy_price"], METRICS], ids=["one", "both"])
def test_transient_spikes_open_no_incident(stack: RunningStack, metrics: list[str]) -> None:
    wait_quiet(stack)
    began = time.time()
    before = {m: anomalies_counted(stack, m) for m in metrics}
    for metric in metrics:
        inject(stack, metric, TRANSIENT_S)
    # The monitors see the spike...
    for metric in metrics:
        assert wait_until(lambda m=metric: anomalies_counted(stack, m) > before[m], 30, 0.5), metric
    # ...the detector's scores rise, and decay to under half their peak without an incident.
    peaks = dict.fromkeys(metrics, 0.0)

    def decayed() -> bool:
        state = detector_state(stack)
        assert state["severity"] == 0, f"a transient spike opened an incident: {state}"
        for m in metrics:
            peaks[m] = max(peaks[m], state["scores"][m])
        return all(
            peaks[m] > 0 and state["scores"][m] < min(peaks[m] / 2, FAST.threshold / 5) for m in metrics
        )

    assert wait_until(decayed, 60, 0.25), f"scores did not rise and fall: {peaks}"
    for metric in metrics:
        assert 0 < peaks[metric] < FAST.threshold, (metric, peaks)
    # Prometheus recorded the same: a score that rose, never to the threshold, and no severity.
    window = f"{int(time.time() - began) + 2}s"
    for metric in metrics:
        expr = f'max_over_time(streamwatch_incident_score{{metric="{metric}"}}[{window}])'
        assert wait_until(lambda e=expr: (scalar(stack, e) or 0) > 0, 10, 0.5), expr
        assert (scalar(stack, expr) or 0) < FAST.threshold
    assert scalar(stack, f"max_over_time(streamwatch_incident_severity[{window}])") == 0
    assert severity_seen(stack, began) == []


@pytest.mark.parametrize(
    ("metrics", "severity"), [(["energy_consumption"], 2), (METRICS, 1)], ids=["one-sev2", "both-sev1"]
)
def test_prolonged_spikes_open_an_incident_that_resolves(
    stack: RunningStack, metrics: list[str], severity: int
) -> None:
    wait_quiet(stack)
    began = time.time()
    for metric in metrics:
        inject(stack, metric, PROLONGED_S)
    assert wait_until(lambda: detector_state(stack)["severity"] == severity, PROLONGED_S + 30, 0.5), (
        f"no Sev {severity}: {detector_state(stack)}"
    )
    assert sorted(detector_state(stack)["in_trouble"]) == sorted(metrics)
    # Prometheus has the same severity, so the alerting rules see it too.
    assert wait_until(lambda: scalar(stack, "streamwatch_incident_severity") == severity, 10, 0.5)
    # Recovery: once the spike ends the scores decay and the incident resolves.
    wait_quiet(stack, timeout_s=PROLONGED_S + 60)
    events = [e for e in read_events(stack.cfg.data_path() / "incidents.log") if e["time"] >= began]
    assert events[0]["event"] == "opened"
    assert events[-1]["event"] == "resolved"
    assert min(e["severity"] for e in events if e["event"] != "resolved") == severity
    assert events[-1]["peak_severity"] == severity


def test_every_grafana_panel_query_returns_data(stack: RunningStack) -> None:
    dashboard = grafana_support.load()
    client = prom(stack)
    metrics = sorted({s.labels["metric"] for s in client.query("streamwatch_monitor_actual")})
    assert metrics == METRICS  # what the dashboard's `metric` variable offers
    empty = []
    # The `series` variable as Grafana fills it: the label sets of the 20 highest anomaly scores.
    series = grafana_support.query_result_values(grafana_support.variable(dashboard, "series"), client)
    assert series
    for metric in metrics:
        for title, target in grafana_support.targets(dashboard):
            expr = grafana_support.substitute(target["expr"], {"metric": metric, "series": series[0]})
            assert "$" not in expr, expr
            if not client.query(expr):
                empty.append(f"{title}: {expr}")
    assert empty == []


def test_sigterm_stops_everything_and_a_second_run_keeps_history(
    stack: RunningStack, stack_dir: Path
) -> None:
    first_sample = prom(stack).query("timestamp(prometheus_build_info)")[0].values[-1]
    assert stack.stop() == 0
    assert set(stack.pids) == set(stack.cfg.enabled_services())
    for name, pid in stack.pids.items():
        assert not pid_alive(pid), f"{name} (pid {pid}) is still running"
    assert list(processes_under(str(stack_dir))) == []
    for name, svc in stack.cfg.enabled_services().items():
        assert not port_in_use(stack.cfg.host, svc.port), f"{name}'s port {svc.port} is still taken"
    assert "SIGTERM received" in stack.output()

    (stack_dir / "second").mkdir()
    again = start_stack(stack_dir / "stack.toml", stack_dir / "second")
    try:
        # Samples from before the restart are still there: the TSDB lives in the data folder.
        oldest = prom(again).query("timestamp(prometheus_build_info)", at=first_sample)
        assert oldest and oldest[0].values[-1] <= first_sample
    finally:
        again.stop()


def test_a_busy_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    config = write_test_stack(tmp_path)
    port = load_stack(config).services["incident-detector"].port
    with busy_port(port):
        out = subprocess.run(
            [sys.executable, "-m", "stack", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"stack: error: port {port} for incident-detector on 127.0.0.1 is already in use "
        "(stop whatever holds it, or change [services.incident-detector] port in stack.toml)"
    ]
    assert out.stdout == ""
    assert not (tmp_path / "var").exists()  # checked before anything was created or started

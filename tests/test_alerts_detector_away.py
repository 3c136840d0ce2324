"""Issue 22, item 4, on real processes: the incident detector killed mid Sev 1 sends no false "resolved".

A real incident detector resumes an open Sev 1 from its state file; a real Prometheus scrapes it and
evaluates prometheus/rules/. Killed, its series go stale: StreamwatchSev1 must stay firing (it used to
resolve within a scrape) while StreamwatchIncidentDetectorDown says why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import ROOT
from harness.procs import ManagedProcess, python_argv
from harness.services import PrometheusFactory, ScrapeTarget
from incident.severity import IncidentTracker, Rules
from incident.state import StateFile, state_path_for
from streamwatch.net import free_port, wait_until

RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))


def open_sev1_state(log_path: Path) -> None:
    """The state a detector leaves mid Sev 1: both metrics' series far past the threshold."""
    now = time.time()
    tracker = IncidentTracker(("energy_consumption", "energy_price"), Rules())
    tracker.observe(now - 10, {"energy_consumption": 0, "energy_price": 0})
    [opened] = tracker.observe(now - 5, {"energy_consumption": 300, "energy_price": 300})
    assert opened.severity == 1
    StateFile(state_path_for(log_path)).save(
        {"tracker": tracker.to_dict(), "deltas": {"last": {}, "baselined": True}, "unwritten": []}
    )


def alerts(prom_url: str) -> dict[str, str]:
    """Alert name -> state ("pending" or "firing") of every active alert."""
    doc = requests.get(f"{prom_url}/api/v1/alerts", timeout=5).json()
    return {a["labels"]["alertname"]: a["state"] for a in doc["data"]["alerts"]}


def last_evaluation(prom_url: str) -> float:
    """When the alerting group was last evaluated (epoch seconds), or 0 before its first evaluation."""
    doc: Any = requests.get(f"{prom_url}/api/v1/rules", timeout=5).json()
    [group] = [g for g in doc["data"]["groups"] if g["name"] == "streamwatch.alerts"]
    stamp = group.get("lastEvaluation", "")
    if not stamp or stamp.startswith("0001"):
        return 0.0
    from datetime import datetime

    return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()


@pytest.mark.e2e
def test_a_killed_detector_keeps_the_sev1_alert_firing(
    start_prometheus: PrometheusFactory, tmp_path: Path
) -> None:
    log_path = tmp_path / "incidents.log"
    open_sev1_state(log_path)
    port = free_port()
    prom = start_prometheus([ScrapeTarget("anomaly_detector", f"127.0.0.1:{port}")], rule_files=RULES)
    argv = python_argv(
        str(ROOT / "incident_detector.py"), "--port", str(port), "--prometheus-url", prom.url,
        "--interval", "0.5", "--log", str(log_path),
    )  # fmt: skip
    det = ManagedProcess("incident", argv, tmp_path / "incident.out")
    try:
        det.wait_http(f"http://127.0.0.1:{port}/healthz")
        assert wait_until(lambda: alerts(prom.url).get("StreamwatchSev1") == "firing", 30), det.log_tail()
        det.proc.kill()  # SIGKILL: no goodbye, as a crash or an OOM kill
        det.proc.wait(10)
        # Prometheus marks the detector's series stale at its first failed scrape ...
        assert wait_until(lambda: not prom.client.query("streamwatch_incident_severity"), 30)
        gone = time.time()
        # ... and the alerting rules are evaluated again after that:
        assert wait_until(lambda: last_evaluation(prom.url) > gone + 1, 30)
    finally:
        det.stop()
    state = alerts(prom.url)
    assert state.get("StreamwatchSev1") == "firing", state
    assert state.get("StreamwatchIncidentDetectorDown") in ("pending", "firing"), state

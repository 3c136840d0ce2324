"""docs/metrics.md, the one table of exported metrics, and the code agree both ways.

Each service's real exporter (its registry or its Flask app's /metrics) is read for its ``# TYPE``
lines: every row of the table must be exported by the service it names, with the type it gives, and
every metric a service exports must have its row.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest

from harness import ROOT
from incident.exporter import IncidentMetrics
from incident.log import AppendOnlyLog
from incident.webhook import WebhookConfig
from incident.webhook import create_app as create_receiver
from monitor.config import QueryConfig
from monitor.detectors import registry
from monitor.export import MonitorMetrics, render_band, render_series
from monitor.prophet_profile import Profile
from monitor.query import QueryWatch
from simulator.app import create_app as create_simulator
from simulator.config import SimulatorConfig
from streamwatch.promapi import Columns
from streamwatch.series import Series

REFERENCE = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<type>[a-z ]+) \|(?P<labels>[^|]*)\| (?P<source>[^|]+) \|")
# The client library's standard collectors, exported beside ours and documented as a group.
STANDARD = re.compile(r"^(process|python)_")


def documented() -> dict[str, tuple[str, str]]:
    """name -> (type, exported by), from the reference's table."""
    rows = {}
    for line in REFERENCE.read_text().splitlines():
        m = ROW.match(line)
        if m:
            assert m["name"] not in rows, f"{m['name']} has two rows in docs/metrics.md"
            rows[m["name"]] = (m["type"].strip(), m["source"].strip())
    return rows


def documented_by(source: str) -> dict[str, str]:
    return {name: typ for name, (typ, src) in documented().items() if src == source}


def types_in(exposition: str) -> dict[str, str]:
    found = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.M))
    return {name: typ for name, typ in found.items() if not STANDARD.match(name)}


def test_the_reference_has_one_row_per_metric_of_every_service() -> None:
    sources = {src for _, src in documented().values()}
    assert sources == {
        "simulator",
        "monitor",
        "incident detector",
        "alert receiver",
        "Prometheus",
    }


def test_the_monitor_exports_exactly_its_rows() -> None:
    """Its own metrics, and the per-series families of a query exporting its band in time."""
    q = QueryConfig(name="cpu", expr="x", detector="prophet", export_band=True)
    w = QueryWatch(q, registry.container("prophet", {}))
    ts = 1_700_000_000.0 + np.arange(30.0)
    w.observe(Columns.of([Series({"cpu": "0"}, ts, np.ones(30))]), ts[-1])
    profile = Profile(0.0, ts[0], np.array([1.0]), 0.5, 0.1)
    w.install(w.waiting(), registry.from_profile("prophet", {}, profile), np.array([ts[10]]))
    w.observe(Columns.of([Series({"cpu": "0"}, ts + 30, np.ones(30))]), ts[-1] + 30)
    metrics = MonitorMetrics(["cpu"])
    metrics.series_text = render_series([w])
    metrics.band_text = lambda: render_band([w], ts[-1] + 31)
    assert types_in(metrics.exposition().decode()) == documented_by("monitor")


def test_the_incident_detector_exports_exactly_its_rows() -> None:
    metrics = IncidentMetrics(("energy_consumption", "energy_price"))
    assert types_in(generate_latest(metrics.registry).decode()) == documented_by("incident detector")


def test_the_alert_receiver_exports_exactly_its_rows(tmp_path: Path) -> None:
    log = AppendOnlyLog(tmp_path / "alerts.log")
    text = create_receiver(WebhookConfig(), log).test_client().get("/metrics").get_data(as_text=True)
    log.close()
    assert types_in(text) == documented_by("alert receiver")


def test_the_simulator_exports_exactly_its_rows() -> None:
    config = SimulatorConfig()
    text = create_simulator(config).test_client().get("/metrics").get_data(as_text=True)
    exported = types_in(text)
    # One `<name>_metric` gauge per configured metric stands behind the table's `<name>_metric` row.
    for spec in config.metrics:
        assert exported.pop(f"{spec.name}_metric") == "gauge"
    assert {"<name>_metric": "gauge", **exported} == documented_by("simulator")


def test_every_recording_rule_has_its_row() -> None:
    doc = yaml.safe_load((ROOT / "prometheus" / "rules" / "streamwatch.rules.yml").read_text())
    records = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
    assert records == set(documented_by("Prometheus"))


@pytest.mark.parametrize("source", ["monitor", "incident detector", "alert receiver", "simulator"])
def test_exported_names_follow_the_conventions(source: str) -> None:
    for name, typ in documented_by(source).items():
        assert re.fullmatch(r"[a-z_<>]+", name), name
        assert name.endswith("_total") == (typ == "counter"), name

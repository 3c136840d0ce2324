"""`make watch` on real processes (issue 21): the watch stack as `python -m stack --watch` starts it, on
free ports with one-second scrapes (harness.stack_run.write_watch_stack: settings only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from harness.services import assert_promtool_metrics_ok
from harness.stack_run import processes_under, start_stack, write_watch_stack
from monitor import presets
from streamwatch.net import wait_until
from streamwatch.promapi import PrometheusClient

pytestmark = pytest.mark.e2e

QUERIES = [q.name for q in presets.expand("node_exporter")]


def test_make_watch_takes_the_node_exporter_to_the_incident_detector_with_the_rules_loaded(
    tmp_path: Path,
) -> None:
    config, watch = write_watch_stack(tmp_path)
    stack = start_stack(config, tmp_path, watch)
    try:
        banner = stack.output()
        for name in ("prometheus", "alertmanager", "alert-receiver", "incident-detector", "node-exporter"):
            assert f"  {name} " in banner, banner
        assert "simulator" not in banner and "dashboard" not in banner
        prom = PrometheusClient(stack.url("prometheus"))
        up = {s.labels["job"] for s in prom.query("up == 1")}
        assert {"node", "monitor_watch", "anomaly_detector", "alertmanager", "alert_receiver"} <= up
        rules = requests.get(f"{stack.url('prometheus')}/api/v1/rules", timeout=5).json()
        names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert {"StreamwatchSev1", "StreamwatchSev2", "StreamwatchMonitorDown"} <= names
        # Every query of the preset is watched by the monitor, and its series reach the incident detector.
        state: dict = {}

        def detector_scores_every_query() -> bool:
            nonlocal state
            state = requests.get(f"{stack.url('incident-detector')}/state", timeout=5).json()
            return set(QUERIES) <= set(state["series_per_metric"])

        assert wait_until(detector_scores_every_query, 60, 1), state.get("series_per_metric")
        text = requests.get(f"{stack.url('monitor-watch')}/metrics", timeout=5).text
        assert_promtool_metrics_ok(text)
        assert 'streamwatch_monitor_sample_interval_seconds{metric="cpu_busy"} 1.0' in text
        data = tmp_path / "var" / "watch"
        assert (data / "prometheus").is_dir() and not (tmp_path / "var" / "prometheus").exists()
    finally:
        rc = stack.stop()
    assert rc == 0, stack.output()[-3000:]
    assert list(processes_under(str(tmp_path))) == []

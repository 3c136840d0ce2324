"""The presets on real processes (issue 21): Debian's node exporter, scraped by a real Prometheus, watched by
`monitor.py --config` holding only `preset = "node_exporter"` (with short windows for a fast test)."""

from __future__ import annotations

import pytest
import requests

from harness.services import ScrapeTarget, assert_promtool_metrics_ok
from monitor import presets
from streamwatch.net import wait_until
from streamwatch.promapi import PrometheusError

# A second's scrape: rate() over 5 s has its points within seconds, and the fill rate over 30 s.
FAST_VARS = {"rate_window": "5s", "fill_window": "30s"}


@pytest.mark.e2e
def test_every_node_exporter_query_has_series_and_the_monitor_exports_them(
    start_node_exporter, start_prometheus, start_fleet_monitor
):
    node = start_node_exporter()
    prom = start_prometheus([ScrapeTarget("node", node.address)])
    queries = presets.expand("node_exporter", FAST_VARS)
    missing: list[str] = []

    def every_query_answers() -> bool:
        missing[:] = [q.name for q in queries if not prom.client.query(q.expr)]
        return not missing

    assert wait_until(every_query_answers, 30, 0.5), f"queries without series: {missing}"
    # Every preset's PromQL parses (the node exporter's has series; the others need their exporters).
    for name in presets.PRESETS:
        for q in presets.expand(name):
            try:
                prom.client.query(q.expr)
            except PrometheusError as exc:
                pytest.fail(f"preset {name}, query {q.name}: Prometheus refuses {q.expr!r}: {exc}")

    monitor = start_fleet_monitor(
        prom.url, [{"preset": "node_exporter", "vars": FAST_VARS, "step": 1.0}], interval=1.0
    )
    text = ""

    def every_query_exported() -> bool:
        nonlocal text
        text = requests.get(monitor.url, timeout=5).text
        return all(_exported(text, q.name) for q in queries)

    assert wait_until(every_query_exported, 60, 0.5), text[-3000:]
    assert_promtool_metrics_ok(text)
    for q in queries:  # one series per host at least, each with its own detector
        assert f'streamwatch_monitor_series{{metric="{q.name}"}}' in text
        series = [ln for ln in text.splitlines() if ln.startswith("streamwatch_monitor_series{")]
        count = next(float(ln.split()[-1]) for ln in series if f'metric="{q.name}"' in ln)
        assert count >= 1, (q.name, count)


def _exported(text: str, name: str) -> bool:
    """True when /metrics holds a per-series anomaly score of query ``name``."""
    return any(
        ln.startswith("streamwatch_monitor_anomaly_score{") and f'metric="{name}"' in ln
        for ln in text.splitlines()
    )

"""The positional monitor on a selector that returns several series: one series is watched, never a
merge of all of them into one stream for one detector (issue 13's interleaving bug)."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge

from harness.monitor_doubles import NORMAL, TROUBLE, Recording, constant_detector
from harness.services import ScrapeTarget
from monitor.exporter import MonitorMetrics
from monitor.runner import Runner, RunnerSettings
from monitor.source import PrometheusSource
from streamwatch.clock import FakeClock
from streamwatch.net import free_port, start_metrics_server, wait_until
from streamwatch.promapi import PrometheusClient

QUERY = "two_series_metric"


@pytest.fixture
def two_series() -> Iterator[str]:
    """A /metrics endpoint with one gauge and two label sets: i="a" at NORMAL, i="b" at TROUBLE."""
    registry = CollectorRegistry()
    gauge = Gauge(QUERY, "Two series the test controls.", ["i"], registry=registry)
    gauge.labels("a").set(NORMAL)
    gauge.labels("b").set(TROUBLE)
    port = free_port()
    server, _ = start_metrics_server(registry, "127.0.0.1", port, "test target")
    yield f"127.0.0.1:{port}"
    server.shutdown()


@pytest.mark.e2e
def test_a_selector_with_two_series_feeds_one_series_to_the_detector(start_prometheus, two_series, caplog):
    caplog.set_level(logging.WARNING, logger="monitor.runner")
    prom = start_prometheus([ScrapeTarget("t", two_series)])

    def stored() -> int:
        found = prom.client.query(f"{QUERY}[30s]")
        return min((len(s) for s in found), default=0) if len(found) == 2 else 0

    assert wait_until(lambda: stored() >= 3, 30, 0.1)
    clock = FakeClock(time.time())
    rec = Recording(constant_detector())
    metrics = MonitorMetrics("watched")
    runner = Runner(
        rec,
        PrometheusSource(PrometheusClient(prom.url), QUERY, first_window=30.0, max_window=3600.0),
        metrics,
        clock,
        RunnerSettings(interval=2.0),
        out=io.StringIO(),
    )
    for _ in range(3):
        clock.now = time.time()
        assert runner.run_cycle()
    assert len(rec.ts) >= 3
    # One stream: strictly increasing timestamps (two merged series repeat every scrape's timestamp),
    # and only the NORMAL series' values (the merged stream holds TROUBLE too and flags it).
    assert np.all(np.diff(rec.ts) > 0), rec.ts
    labels = {"metric": "watched"}
    anomalies = metrics.registry.get_sample_value("streamwatch_monitor_anomalies_total", labels)
    assert anomalies == 0
    warned = [r.getMessage() for r in caplog.records if "series" in r.getMessage()]
    assert len(warned) == 1 and 'i="a"' in warned[0] and "--config" in warned[0], warned

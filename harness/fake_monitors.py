"""The monitors as the incident detector reads them, without Prophet: a real exporter of their anomaly
counter and last-success gauge, scraped every second by a real Prometheus; tests set the values."""

from __future__ import annotations

from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge

from harness.services import PrometheusFactory, PrometheusServer, ScrapeTarget
from streamwatch.net import free_port, start_metrics_server, wait_until


@dataclass
class FakeMonitors:
    """Real exporter with the monitors' anomaly counter, scraped by a real Prometheus."""

    counter: Counter
    prometheus: PrometheusServer
    last_success: Gauge

    def completed_cycle(self, at: float) -> None:
        """Every monitor says it completed a cycle at ``at`` (as after a Prometheus outage)."""
        for m in ("energy_consumption", "energy_price"):
            self.last_success.labels(metric=m).set(at)
        q = "min(streamwatch_monitor_last_success_timestamp_seconds)"

        def visible() -> bool:
            res = self.prometheus.client.query(q)
            return bool(res) and res[0].values[-1] == at

        assert wait_until(visible, 15), "Prometheus did not scrape the monitors' last success"

    def add(self, metric: str, n: int) -> None:
        self.counter.labels(metric=metric).inc(n)
        want = self.counter.labels(metric=metric)._value.get()
        q = f'sum by (metric) (streamwatch_monitor_anomalies_total{{metric="{metric}"}})'

        def visible() -> bool:
            res = self.prometheus.client.query(q)
            return bool(res) and res[0].values[-1] == want

        assert wait_until(visible, 15), f"Prometheus did not scrape {metric}={want}"


def start_fake_monitors(start_prometheus: PrometheusFactory) -> tuple[FakeMonitors, WSGIServer]:
    """Serve the counters on a free port, have a new Prometheus scrape them every second; wait for both
    metrics. The caller shuts the returned server down."""
    registry = CollectorRegistry()
    counter = Counter("streamwatch_monitor_anomalies_total", "anomalies", ["metric"], registry=registry)
    # Labelled, so it appears only once set: as a monitor's, with its first successful cycle.
    last_success = Gauge(
        "streamwatch_monitor_last_success_timestamp_seconds", "last cycle", ["metric"], registry=registry
    )
    for m in ("energy_consumption", "energy_price"):
        counter.labels(metric=m)
    port = free_port()
    server, _thread = start_metrics_server(registry, "127.0.0.1", port)
    prom = start_prometheus([ScrapeTarget("monitor_any_name", f"127.0.0.1:{port}", "1s")])
    fm = FakeMonitors(counter, prom, last_success)
    assert wait_until(lambda: len(prom.client.query("streamwatch_monitor_anomalies_total")) == 2, 15)
    return fm, server

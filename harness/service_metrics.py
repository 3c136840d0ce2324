"""Helpers for the dashboard's tests: an in-test exporter with the contract's metric names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

from streamwatch.net import free_port, start_metrics_server

disable_created_metrics()


@dataclass
class ServiceMetrics:
    """The monitors' and the incident detector's gauges, served on a free port for Prometheus to scrape.

    The dashboard reads only Prometheus, so what matters is that these names and labels are the ones the
    contract (docs/metrics.md) fixes; the tests set their values to known numbers.
    """

    address: str
    actual: Gauge
    forecast: Gauge
    cycle_anomalies: Gauge
    anomalies_total: Counter
    mae: Gauge
    mape: Gauge
    score: Gauge
    threshold: Gauge
    severity: Gauge
    open: Gauge
    raw: dict[str, Gauge]  # the watched series itself, as the simulator exports it: <metric>_metric
    band: Gauge  # streamwatch_monitor_band: a Prophet monitor's band at scrape time (none until set)
    _server: Any

    def set_band(self, metric: str, actual: float, lower: float, expected: float, upper: float) -> None:
        self.actual.labels(metric=metric).set(actual)
        for bound, v in (("lower", lower), ("expected", expected), ("upper", upper)):
            self.forecast.labels(metric=metric, bound=bound).set(v)

    def set_scrape_band(self, metric: str, lower: float, expected: float, upper: float) -> None:
        for bound, v in (("lower", lower), ("expected", expected), ("upper", upper)):
            self.band.labels(metric=metric, bound=bound).set(v)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_service_metrics(metrics: Sequence[str]) -> ServiceMetrics:
    reg = CollectorRegistry()
    m = ["metric"]
    port = free_port()
    exporter = ServiceMetrics(
        address=f"127.0.0.1:{port}",
        actual=Gauge("streamwatch_monitor_actual", "Latest actual value scored", m, registry=reg),
        forecast=Gauge("streamwatch_monitor_forecast", "Forecast band", [*m, "bound"], registry=reg),
        cycle_anomalies=Gauge("streamwatch_monitor_cycle_anomalies", "Anomalies last cycle", m, registry=reg),
        anomalies_total=Counter("streamwatch_monitor_anomalies", "All anomalies", m, registry=reg),
        mae=Gauge("streamwatch_monitor_mae", "MAE of the last cycle", m, registry=reg),
        mape=Gauge("streamwatch_monitor_mape_ratio", "MAPE of the last cycle", m, registry=reg),
        score=Gauge("streamwatch_incident_score", "Decayed anomaly score", m, registry=reg),
        threshold=Gauge("streamwatch_incident_threshold", "Score threshold", registry=reg),
        severity=Gauge("streamwatch_incident_severity", "0 none, 1 Sev 1, 2 Sev 2", registry=reg),
        open=Gauge("streamwatch_incident_open", "Open incidents", registry=reg),
        raw={m: Gauge(f"{m}_metric", f"The watched {m}", registry=reg) for m in metrics},
        band=Gauge("streamwatch_monitor_band", "Forecast band at scrape time", [*m, "bound"], registry=reg),
        _server=None,
    )
    for metric in metrics:
        exporter.set_band(metric, 50, 40, 50, 60)
        exporter.raw[metric].set(50)
        exporter.score.labels(metric=metric).set(0)
        exporter.anomalies_total.labels(metric=metric)
    exporter.threshold.set(2.0)
    server, _thread = start_metrics_server(reg, "127.0.0.1", port, "test exporter")
    exporter._server = server
    return exporter

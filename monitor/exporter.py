"""The monitor's Prometheus metrics, exactly as docs/metrics.md names them, on a private registry."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.detectors.scores import ANOMALY_THRESHOLD
from monitor.scoring import CycleStats
from streamwatch.health import QueryHealth

# The files the monitor writes, as the ``file`` label of its save-error counter.
SAVED_FILES = ("model", "position")


# The band now, as (lower, expected, upper), or None when the detector has none for this time.
BandNow = Callable[[], "tuple[float, float, float] | None"]

BAND = "streamwatch_monitor_band"
BAND_HELP = (
    "Forecast band at scrape time (bound: lower, expected, upper); only for detectors whose band is a "
    "function of time (prophet)."
)


class BandCollector(Collector):
    """``streamwatch_monitor_band`` evaluated when Prometheus scrapes, so the band is drawn at the scrape
    step instead of once per cycle. No series while ``band_now`` gives None (no band detector yet)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.band_now: BandNow | None = None

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(BAND, BAND_HELP, labels=("metric", "bound"))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        band = self.band_now() if self.band_now is not None else None
        if band is not None:
            for bound, value in zip(("lower", "expected", "upper"), band, strict=True):
                family.add_metric((self.metric, bound), value)
        yield family


class MonitorMetrics:
    """One watched metric's gauges and counters; every series carries ``metric=<short name>``."""

    def __init__(self, metric: str, registry: CollectorRegistry | None = None):
        prometheus_client.disable_created_metrics()  # counters without their _created twins
        self.registry = registry or CollectorRegistry()
        self.metric = metric
        r = self.registry
        m = ("metric",)
        self.actual = Gauge("streamwatch_monitor_actual", "Latest actual value scored.", m, registry=r)
        self.forecast = Gauge(
            "streamwatch_monitor_forecast",
            "Forecast band at the latest sample scored (bound: lower, expected, upper).",
            ("metric", "bound"),
            registry=r,
        )
        self.cycle_anomalies = Gauge(
            "streamwatch_monitor_cycle_anomalies", "Anomalies found in the last cycle.", m, registry=r
        )
        self.anomalies = Counter(
            "streamwatch_monitor_anomalies", "Samples found outside the forecast band.", m, registry=r
        )
        self.samples = Counter("streamwatch_monitor_samples_scored", "Samples scored.", m, registry=r)
        self.nonfinite = Counter(
            "streamwatch_monitor_samples_nonfinite",
            "Samples whose value was NaN (not scored) or +/-Inf (scored as anomalies).",
            m,
            registry=r,
        )
        self.mae = Gauge(
            "streamwatch_monitor_mae",
            "Mean absolute error of the last cycle, in the watched metric's unit.",
            m,
            registry=r,
        )
        self.mape = Gauge(
            "streamwatch_monitor_mape_ratio",
            "Mean absolute percentage error of the last cycle as a ratio (0.05 = 5%); zero actuals left out.",
            m,
            registry=r,
        )
        self.score = Gauge(
            "streamwatch_monitor_anomaly_score",
            f"Highest anomaly score of the last cycle (above {ANOMALY_THRESHOLD:g} = outside the band).",
            m,
            registry=r,
        )
        self.fit_duration = Gauge(
            "streamwatch_monitor_fit_duration_seconds", "Duration of the last model fit.", m, registry=r
        )
        self.skipped = Counter(
            "streamwatch_monitor_samples_skipped",
            "Samples never scored: older than max_catchup when catching up after an outage or restart.",
            m,
            registry=r,
        )
        self.save_errors = Counter(
            "streamwatch_monitor_save_errors",
            "Failed writes of the monitor's files (file: model or position); it runs on from memory.",
            ("metric", "file"),
            registry=r,
        )
        self.health = QueryHealth("streamwatch_monitor", r, m, (metric,))
        self.band = BandCollector(metric)
        r.register(self.band)
        # Every series exists from the start, so dashboards and rate() see zeros rather than gaps.
        for metric_child in (
            self.cycle_anomalies,
            self.anomalies,
            self.samples,
            self.score,
            self.nonfinite,
            self.skipped,
        ):
            metric_child.labels(metric)
        for file in SAVED_FILES:
            self.save_errors.labels(metric, file)

    def watch_band(self, band_now: BandNow) -> None:
        """Export ``band_now()`` as ``streamwatch_monitor_band`` at every scrape."""
        self.band.band_now = band_now

    def record_fit(self, seconds: float) -> None:
        self.fit_duration.labels(self.metric).set(seconds)

    def record_cycle(
        self, stats: CycleStats, now: float, last: tuple[float, float, float, float] | None
    ) -> None:
        """``last`` is (actual, lower, expected, upper) of the newest sample scored, if any."""
        mm = self.metric
        self.cycle_anomalies.labels(mm).set(stats.anomalies)
        self.anomalies.labels(mm).inc(stats.anomalies)
        self.samples.labels(mm).inc(stats.samples)
        self.score.labels(mm).set(stats.max_score)
        # An empty cycle (or one whose actuals are all 0, for MAPE) keeps the previous error figures.
        if not math.isnan(stats.mae):
            self.mae.labels(mm).set(stats.mae)
        if not math.isnan(stats.mape):
            self.mape.labels(mm).set(stats.mape)
        if last is not None:
            actual, lower, expected, upper = last
            self.actual.labels(mm).set(actual)
            self.forecast.labels(mm, "lower").set(lower)
            self.forecast.labels(mm, "expected").set(expected)
            self.forecast.labels(mm, "upper").set(upper)
        self.health.succeeded(now)

    def record_nonfinite(self, n: int) -> None:
        self.nonfinite.labels(self.metric).inc(n)

    def record_skipped(self, n: int) -> None:
        self.skipped.labels(self.metric).inc(n)

    def record_save_error(self, file: str) -> None:
        self.save_errors.labels(self.metric, file).inc()

    def record_error(self) -> None:
        self.health.failed()

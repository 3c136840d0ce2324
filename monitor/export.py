"""The monitor's /metrics: per-series families written as text once per cycle, the rest ordinary metrics.

Per series, with the input series' labels (without ``__name__``) plus ``metric="<query name>"``, only what
a user reads per series: ``streamwatch_monitor_anomaly_score`` and ``streamwatch_monitor_anomalies_total``,
two series per input series. A query with ``export_band = true`` (the positional form) adds the band:
``streamwatch_monitor_actual`` and ``streamwatch_monitor_forecast{bound}`` at the latest point scored, and
``streamwatch_monitor_band{bound}`` evaluated at scrape time for a detector whose band is a function of
time. Everything else is per query (``{metric}``) or per process, on a private ``prometheus_client``
registry (docs/metrics.md is the one table).

Ten thousand series times a few samples are too many ``prometheus_client`` children to format in a
second, so each series' exported label text is formatted once, when it is admitted, and each cycle
writes the per-series families in one pass (``render_series``). A dropped series is simply not written
again: no child to remove, none left behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.detectors.scores import ANOMALY_THRESHOLD
from monitor.query import CycleReport, QueryWatch
from streamwatch.health import QueryHealth

CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
BOUNDS = ("lower", "expected", "upper")
# The files the monitor writes, as the ``file`` label of its save-error counter.
SAVED_FILES = ("snapshot",)

SCORE = "streamwatch_monitor_anomaly_score"
ANOMALIES = "streamwatch_monitor_anomalies_total"
ACTUAL = "streamwatch_monitor_actual"
FORECAST = "streamwatch_monitor_forecast"
BAND = "streamwatch_monitor_band"


def number(v: float) -> str:
    """A sample value as the text format writes it."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _family(name: str, kind: str, help_text: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def render_series(watches: Iterable[QueryWatch]) -> bytes:
    """The per-series families of every exported series, as Prometheus text exposition."""
    watches = list(watches)
    rows = [(w, w.exported()) for w in watches]
    score = [
        _family(
            SCORE,
            "gauge",
            f"Highest anomaly score of the series' last cycle (above {ANOMALY_THRESHOLD:g} = anomalous).",
        )
    ]
    total = [_family(ANOMALIES, "counter", "Points of the series scored as anomalous.")]
    actual = [_family(ACTUAL, "gauge", "Latest value of the series scored (queries with export_band).")]
    forecast = [
        _family(
            FORECAST, "gauge", "Band at the latest point scored (bound: lower, expected, upper; export_band)."
        )
    ]
    banded = False
    for w, idx in rows:
        c = w.table.col
        texts = w.table.texts
        for r, s, a in zip(idx.tolist(), c["score"][idx].tolist(), c["anomalies"][idx].tolist(), strict=True):
            score.append(f"{SCORE}{{{texts[r]}}} {number(s)}\n")
            total.append(f"{ANOMALIES}{{{texts[r]}}} {a}.0\n")
        if not w.query.export_band:
            continue
        banded = True
        for r in idx.tolist():
            if c["actual"][r] == c["actual"][r]:  # NaN: nothing scored yet; a gap, not a NaN sample
                actual.append(f"{ACTUAL}{{{texts[r]}}} {number(c['actual'][r])}\n")
            if c["expected"][r] == c["expected"][r]:  # NaN while the detector warms up
                for bound in BOUNDS:
                    forecast.append(f'{FORECAST}{{{texts[r]},bound="{bound}"}} {number(c[bound][r])}\n')
    out = score + total + (actual + forecast if banded else [])
    return "".join(out).encode()


def render_band(watches: Iterable[QueryWatch], now: float) -> bytes:
    """``streamwatch_monitor_band``: the band of every exported series at ``now`` (scrape time), for
    queries with ``export_band`` whose detector's band is a function of time (``band_at``)."""
    lines: list[str] = []
    for w in watches:
        band_at = getattr(w.detector, "band_at", None)
        if not w.query.export_band or band_at is None:
            continue
        idx = w.exported()
        if not idx.size:
            continue
        expected, lower, upper = band_at(np.full(w.detector.rows, now))
        for r in idx.tolist():
            if expected[r] == expected[r]:
                for bound, v in zip(BOUNDS, (lower[r], expected[r], upper[r]), strict=True):
                    lines.append(f'{BAND}{{{w.table.texts[r]},bound="{bound}"}} {number(v)}\n')
    if not lines:
        return b""
    head = _family(
        BAND,
        "gauge",
        "Band at scrape time (bound: lower, expected, upper), for a band that is a function of time.",
    )
    return (head + "".join(lines)).encode()


class MonitorMetrics:
    """The process' own metrics on a private registry, plus the per-series text of the last cycle."""

    def __init__(self, queries: Sequence[str], registry: CollectorRegistry | None = None):
        prometheus_client.disable_created_metrics()  # counters without their _created twins
        self.registry = registry or CollectorRegistry()
        r = self.registry
        m = ("metric",)
        self.series = Gauge("streamwatch_monitor_series", "Series watched, per query.", m, registry=r)
        self.warming = Gauge(
            "streamwatch_monitor_series_warming",
            "Series whose detector is still warming up (scores 0 until it has seen enough), per query.",
            m,
            registry=r,
        )
        self.refused = Counter(
            "streamwatch_monitor_series_refused",
            "New series refused because the query watches max_series already.",
            m,
            registry=r,
        )
        self.dropped = Counter(
            "streamwatch_monitor_series_dropped",
            "Series dropped after stale_after without a new point.",
            m,
            registry=r,
        )
        self.restored = Counter(
            "streamwatch_monitor_series_restored",
            "Series whose detector was restored from the snapshot at start, not trained again.",
            m,
            registry=r,
        )
        self.fits = Counter(
            "streamwatch_monitor_fits", "Models made for new series, per query.", m, registry=r
        )
        self.fit_duration = Gauge(
            "streamwatch_monitor_fit_duration_seconds",
            "Duration of the last model fit (Prophet) of the query.",
            m,
            registry=r,
        )
        self.samples = Counter(
            "streamwatch_monitor_samples_scored", "Points scored, per query.", m, registry=r
        )
        self.nonfinite = Counter(
            "streamwatch_monitor_samples_nonfinite",
            "Points whose value was NaN (not scored) or +/-Inf (scored as anomalies, never learnt).",
            m,
            registry=r,
        )
        self.skipped = Counter(
            "streamwatch_monitor_samples_skipped",
            "Points never scored: older than max_catchup when catching up after an outage or restart.",
            m,
            registry=r,
        )
        self.cycle_anomalies = Gauge(
            "streamwatch_monitor_cycle_anomalies",
            "Anomalous points of the query's last cycle.",
            m,
            registry=r,
        )
        self.mae = Gauge(
            "streamwatch_monitor_mae",
            "Mean absolute error of the last cycle's points, in the metric's unit (an empty cycle keeps it).",
            m,
            registry=r,
        )
        self.mape = Gauge(
            "streamwatch_monitor_mape_ratio",
            "Mean absolute percentage error of the last cycle as a ratio (0.05 = 5%); zero actuals left out.",
            m,
            registry=r,
        )
        self.spacing = Gauge(
            "streamwatch_monitor_sample_interval_seconds",
            "Median seconds between a series' consecutive points in the query's last cycle with two.",
            m,
            registry=r,
        )
        self.save_errors = Counter(
            "streamwatch_monitor_save_errors",
            "Failed writes of the monitor's files (file: snapshot); it runs on from memory.",
            ("metric", "file"),
            registry=r,
        )
        self.fits_pending = Gauge(
            "streamwatch_monitor_fits_pending",
            "Series waiting for their model (fit queue depth).",
            registry=r,
        )
        self.cycle_duration = Histogram(
            "streamwatch_monitor_cycle_duration_seconds",
            "Duration of a cycle: read, score and export every query.",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.shard_info = Gauge(
            "streamwatch_monitor_shard_info",
            "Always 1: which shard of the series this replica watches (shard of shards; 0 of 1 unsharded).",
            ("shard", "shards"),
            registry=r,
        )
        self.health = QueryHealth("streamwatch_monitor", r, m)
        for q in queries:
            for metric in (
                self.series,
                self.warming,
                self.refused,
                self.dropped,
                self.restored,
                self.fits,
                self.samples,
                self.nonfinite,
                self.skipped,
                self.cycle_anomalies,
            ):
                metric.labels(q)
            for file in SAVED_FILES:
                self.save_errors.labels(q, file)
            self.health.track((q,))
        self.series_text = b""
        self.band_text: Callable[[], bytes] = lambda: b""

    def record_query(self, watch: QueryWatch, now: float, report: CycleReport) -> None:
        name = watch.query.name
        self.series.labels(name).set(len(watch.table))
        self.warming.labels(name).set(watch.warming())
        self.refused.labels(name).inc(report.refused)
        self.dropped.labels(name).inc(report.dropped)
        self.samples.labels(name).inc(report.scored)
        self.nonfinite.labels(name).inc(report.nonfinite)
        self.cycle_anomalies.labels(name).set(report.anomalies)
        # An empty cycle (or one whose actuals are all 0, for MAPE) keeps the previous error figures.
        if not math.isnan(report.mae):
            self.mae.labels(name).set(report.mae)
        if not math.isnan(report.mape):
            self.mape.labels(name).set(report.mape)
        if not math.isnan(report.spacing):  # what one point stands for (the incident detector's weight)
            self.spacing.labels(name).set(report.spacing)
        self.health.succeeded(now, (name,))

    def record_error(self, query: str) -> None:
        self.health.failed((query,))

    def exposition(self) -> bytes:
        return generate_latest(self.registry) + self.series_text + self.band_text()

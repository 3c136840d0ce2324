"""The detector's Prometheus metrics, on a registry of its own (names as in docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

from incident.severity import SEV1, SEV2, IncidentEvent, IncidentTracker
from streamwatch.health import QueryHealth

disable_created_metrics()

# Series exported by name per metric in trouble: enough for an alert to say where to look, few enough
# that thousands of series in trouble stay a handful of children.
TROUBLED_SERIES_SHOWN = 3


class IncidentMetrics:
    def __init__(self, metrics: tuple[str, ...], registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.score = Gauge(
            "streamwatch_incident_score",
            "Decayed anomaly score per watched metric: the score of its worst series",
            ["metric"],
            registry=r,
        )
        self.in_trouble = Gauge(
            "streamwatch_incident_metric_in_trouble",
            "1 while a series of the metric counts as trouble (reached threshold, not yet below "
            "clear_threshold)",
            ["metric"],
            registry=r,
        )
        self.series = Gauge(
            "streamwatch_incident_series",
            "Series of streamwatch_monitor_anomalies_total scored per metric (each has its own score)",
            ["metric"],
            registry=r,
        )
        self.weight = Gauge(
            "streamwatch_incident_anomaly_weight",
            "What one anomaly of the metric adds to its series' score: the seconds its point stands for "
            "over reference_spacing_s, 1 to max_anomaly_share x threshold",
            ["metric"],
            registry=r,
        )
        self.series_in_trouble = Gauge(
            "streamwatch_incident_series_in_trouble", "Series in trouble per metric", ["metric"], registry=r
        )
        self.troubled_series = Gauge(
            "streamwatch_incident_troubled_series_score",
            f"Score of the worst series in trouble per metric (at most {TROUBLED_SERIES_SHOWN} per metric; "
            "series: its labels)",
            ["metric", "series"],
            registry=r,
        )
        self.series_refused = Gauge(
            "streamwatch_incident_series_refused",
            "New series the last cycle could not score because max_series were kept already",
            registry=r,
        )
        self.threshold = Gauge(
            "streamwatch_incident_threshold", "Score at which a metric counts as in trouble", registry=r
        )
        self.clear_threshold = Gauge(
            "streamwatch_incident_clear_threshold",
            "Score below which a metric in trouble counts as recovered (hysteresis)",
            registry=r,
        )
        self.severity = Gauge(
            "streamwatch_incident_severity",
            "Current severity: 0 none, 1 Sev 1 (several metrics, worst), 2 Sev 2 (one metric)",
            registry=r,
        )
        self.open = Gauge("streamwatch_incident_open", "Open incidents (0 or 1)", registry=r)
        self.started = Gauge(
            "streamwatch_incident_started_timestamp_seconds",
            "Start time of the open incident, 0 when none is open",
            registry=r,
        )
        self.opened = Counter(
            "streamwatch_incident_opened_total",
            "Incidents opened, by the severity they opened with (1 or 2)",
            ["severity"],
            registry=r,
        )
        self.events = Counter(
            "streamwatch_incident_events_total",
            "Incident lifecycle events (opened, escalated, de-escalated, changed, resolved)",
            ["event"],
            registry=r,
        )
        self.health = QueryHealth("streamwatch_incident", r)
        self.log_errors = Counter(
            "streamwatch_incident_log_write_errors_total",
            "Failed writes to the incident log (disk full, file gone); each event is retried every cycle",
            registry=r,
        )
        self.log_unwritten = Gauge(
            "streamwatch_incident_log_unwritten_events",
            "Incident events waiting to be written to the incident log (0 when it is up to date)",
            registry=r,
        )
        self.nonfinite = Counter(
            "streamwatch_incident_nonfinite_values_total",
            "Anomaly counts read as +Inf, -Inf or NaN, by watched metric; ignored (the last value is kept)",
            ["metric"],
            registry=r,
        )
        self.holding = Gauge(
            "streamwatch_incident_holding",
            "1 while scores and incidents hold: Prometheus unreadable, or monitors not caught up since",
            registry=r,
        )
        self.state_errors = Counter(
            "streamwatch_incident_state_write_errors_total",
            "Failed saves of the incident state file (a restart meanwhile would start afresh); retried",
            registry=r,
        )
        for sev in (SEV1, SEV2):
            self.opened.labels(severity=str(sev))
        for kind in ("opened", "escalated", "de-escalated", "changed", "resolved"):
            self.events.labels(event=kind)
        self.exported: set[str] = set()  # metrics with children now
        self.troubled_children: set[tuple[str, str]] = set()
        for m in metrics:
            self._add_metric(m)

    def _add_metric(self, metric: str) -> None:
        for gauge in (self.score, self.in_trouble, self.series, self.series_in_trouble):
            gauge.labels(metric=metric).set(0)
        self.weight.labels(metric=metric).set(1)
        self.nonfinite.labels(metric=metric)  # a counter: kept when the metric's series go
        self.exported.add(metric)

    def update_state(self, tracker: IncidentTracker, ts: float) -> None:
        self.threshold.set(tracker.rules.threshold)
        self.clear_threshold.set(tracker.rules.clear_threshold)
        self._scores(tracker.score_values(ts), tracker, ts)
        cur = tracker.current
        self.severity.set(tracker.severity)
        self.open.set(1 if cur else 0)
        self.started.set(cur.started_at if cur else 0)
        self.series_refused.set(len(tracker.refused))

    def _scores(self, values: Mapping[str, float], tracker: IncidentTracker, ts: float) -> None:
        for metric in self.exported - values.keys():  # its last series was dropped: so are its children
            for gauge in (self.score, self.in_trouble, self.series, self.series_in_trouble, self.weight):
                gauge.remove(metric)
            self.exported.discard(metric)
        worst = tracker.worst_per_metric(ts, TROUBLED_SERIES_SHOWN)
        counts: dict[str, int] = {}
        for sid, st in tracker.series.items():
            if st.in_trouble:
                counts[sid.metric] = counts.get(sid.metric, 0) + 1
        for metric, value in values.items():
            if metric not in self.exported:
                self._add_metric(metric)
            self.score.labels(metric=metric).set(value)
            self.in_trouble.labels(metric=metric).set(1 if metric in tracker.in_trouble else 0)
            self.series.labels(metric=metric).set(tracker.per_metric.get(metric, 0))
            self.series_in_trouble.labels(metric=metric).set(counts.get(metric, 0))
            if metric in tracker.weights:
                self.weight.labels(metric=metric).set(tracker.weights[metric])
        children = {(m, sid.label_text() or m): v for m, pairs in worst.items() for sid, v in pairs}
        for key in self.troubled_children - children.keys():
            self.troubled_series.remove(*key)
        for (metric, series), v in children.items():
            self.troubled_series.labels(metric=metric, series=series).set(v)
        self.troubled_children = set(children)

    def record(self, event: IncidentEvent) -> None:
        self.events.labels(event=event.event).inc()
        if event.event == "opened":
            self.opened.labels(severity=str(event.severity)).inc()

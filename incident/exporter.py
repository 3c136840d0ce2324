"""The detector's Prometheus metrics, on a registry of its own (names as in docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

from incident.severity import SEV1, SEV2, IncidentEvent, IncidentTracker
from streamwatch.health import QueryHealth

disable_created_metrics()


class IncidentMetrics:
    def __init__(self, metrics: tuple[str, ...], registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.score = Gauge(
            "streamwatch_incident_score", "Decayed anomaly score per watched metric", ["metric"], registry=r
        )
        self.in_trouble = Gauge(
            "streamwatch_incident_metric_in_trouble",
            "1 while the metric's score counts as trouble (reached threshold, not yet below clear_threshold)",
            ["metric"],
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
        for m in metrics:
            self.nonfinite.labels(metric=m)
            self.score.labels(metric=m).set(0)
            self.in_trouble.labels(metric=m).set(0)

    def update_state(self, tracker: IncidentTracker, ts: float) -> None:
        self.threshold.set(tracker.rules.threshold)
        self.clear_threshold.set(tracker.rules.clear_threshold)
        self._scores(tracker.score_values(ts), tracker)
        cur = tracker.current
        self.severity.set(tracker.severity)
        self.open.set(1 if cur else 0)
        self.started.set(cur.started_at if cur else 0)

    def _scores(self, values: Mapping[str, float], tracker: IncidentTracker) -> None:
        for metric, value in values.items():
            self.score.labels(metric=metric).set(value)
            self.in_trouble.labels(metric=metric).set(1 if metric in tracker.in_trouble else 0)

    def record(self, event: IncidentEvent) -> None:
        self.events.labels(event=event.event).inc()
        if event.event == "opened":
            self.opened.labels(severity=str(event.severity)).inc()

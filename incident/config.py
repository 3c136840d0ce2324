"""The detector's typed configuration; the defaults are worked out in docs/incidents.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from incident.log import check_rotation
from incident.severity import Rules, SeriesLimits
from streamwatch.backoff import DEFAULT_MAX_S as DEFAULT_BACKOFF_MAX_S
from streamwatch.config import check_host, check_interval
from streamwatch.promapi import check_base_url
from streamwatch.ranges import (
    INTERVAL,
    LOG_BACKUPS,
    LOG_BYTES,
    PORT,
    PROMETHEUS_TIMEOUT,
    Range,
    check_ranges,
)

# Empty: every metric the monitors export (the ``metric`` label of their anomaly counter) is watched.
DEFAULT_METRICS: list[str] = []
# Counting from the counter (not the per-cycle gauge) counts every anomaly exactly once, whatever the
# monitors' cycle and our poll interval are. Every series is read on its own, never summed: each keeps
# its own score (docs/incidents-many-series.md).
DEFAULT_QUERY = "streamwatch_monitor_anomalies_total"
# When each monitor last completed a cycle: after a Prometheus outage, scores hold until every watched
# metric's monitor has completed one (their counters are not news before that).
DEFAULT_MONITORS_QUERY = "max by (metric) (streamwatch_monitor_last_success_timestamp_seconds)"
# The same per monitor replica (scrape target): the series of a replica that was down hold until it has
# completed a cycle since it came back (docs/incidents-many-series.md).
DEFAULT_REPLICAS_QUERY = "max by (job, instance) (streamwatch_monitor_last_success_timestamp_seconds)"
# The seconds between the points of each watched metric's series: an anomaly adds what its point stands
# for (a monitor that does not export it: 1 per anomaly).
DEFAULT_SPACING_QUERY = "max by (metric) (streamwatch_monitor_sample_interval_seconds)"


@dataclass
class IncidentConfig:
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    query: str = DEFAULT_QUERY
    monitors_query: str = DEFAULT_MONITORS_QUERY
    replicas_query: str = DEFAULT_REPLICAS_QUERY
    spacing_query: str = DEFAULT_SPACING_QUERY
    metric_label: str = "metric"  # the label of the queries' results that names the watched metric
    # The limits and the state machine's numbers: their defaults are written once, in incident.severity.
    top_series: int = SeriesLimits.top_series  # series named in each incident log line, then "+N more"
    forget_series_after_s: float = SeriesLimits.forget_after_s  # a series unseen this long is dropped
    max_series: int = SeriesLimits.max_series  # series kept at most; more are refused (counted, logged once)
    half_life_s: float = Rules.half_life_s
    threshold: float = Rules.threshold
    clear_threshold: float | None = None  # None: half the threshold
    sev1_min_metrics: int = Rules.sev1_min_metrics
    reference_spacing_s: float = Rules.reference_spacing_s  # an anomaly adds its point's spacing / this
    max_anomaly_share: float = Rules.max_anomaly_share  # ... at most this share of threshold
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_timeout_s: float = 3.0
    interval: float = 5.0
    # Prometheus restarts in well under a second: retry every few seconds, so the watcher is not the last
    # to see it back (a 60 s backoff made it resolve after an outage before it looked again).
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    # After an outage, the longest wait for the monitors to complete a cycle (the monitors' default 60 s
    # backoff plus a 30 s cycle fit in it); a monitor that never does then stops holding the scores.
    catchup_max_s: float = 120.0
    host: str = "127.0.0.1"
    port: int = 8110
    log: str = "incidents.log"
    log_format: Literal["json", "text"] = "json"
    log_max_bytes: int = 10_000_000
    log_backup_count: int = 5
    recent_incidents: int = 20

    # Wide enough for any real deployment, narrow enough that no value breaks time arithmetic or memory
    # (a 1e300 s half-life was accepted and held every score forever).
    RANGES: ClassVar[dict[str, Range]] = {
        "top_series": Range(1, 1000),
        "forget_series_after_s": Range(1, 604_800, "s"),
        "max_series": Range(1, 1_000_000),
        "half_life_s": Range(1, 86_400, "s"),
        "threshold": Range(0, 1e9, low_open=True),
        "clear_threshold": Range(0, 1e9, low_open=True),
        "sev1_min_metrics": Range(1, 1000),
        "reference_spacing_s": Range(0.1, 3600, "s"),
        "max_anomaly_share": Range(0.01, 0.99),
        "prometheus_timeout_s": PROMETHEUS_TIMEOUT,
        "interval": INTERVAL,
        "backoff_max_s": Range(0.1, 3600, "s"),
        "catchup_max_s": Range(1, 86_400, "s"),
        "port": PORT,
        "log_max_bytes": LOG_BYTES,
        "log_backup_count": LOG_BACKUPS,
        "recent_incidents": Range(0, 10_000),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_host("host", self.host)
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics has duplicates: {self.metrics}")
        for name in ("query", "monitors_query", "replicas_query", "spacing_query"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        for name in ("interval", "prometheus_timeout_s", "backoff_max_s", "catchup_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        check_interval("interval", self.interval)
        if not self.metric_label.strip():
            raise ValueError("metric_label must name the label that holds the watched metric, got ''")
        check_base_url("prometheus_url", self.prometheus_url)
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        check_rotation(self.log_max_bytes, self.log_backup_count)
        if self.recent_incidents < 0:
            raise ValueError(f"recent_incidents must be 0 or more, got {self.recent_incidents}")
        # Built once, here: Rules runs the state machine's own range checks (half-life, thresholds,
        # sev1_min_metrics), and the service and its start-up line use this same value.
        clear = self.threshold / 2 if self.clear_threshold is None else self.clear_threshold
        self._rules = Rules(
            self.half_life_s,
            self.threshold,
            clear,
            self.sev1_min_metrics,
            self.reference_spacing_s,
            self.max_anomaly_share,
        )
        self.limits()  # range checks
        if self.metrics and self.sev1_min_metrics > len(self.metrics):
            raise ValueError(
                f"sev1_min_metrics ({self.sev1_min_metrics}) is more than the {len(self.metrics)} watched "
                "metrics, so Sev 1 could never be raised"
            )

    def limits(self) -> SeriesLimits:
        return SeriesLimits(self.top_series, self.forget_series_after_s, self.max_series)

    def rules(self) -> Rules:
        """The state machine's slice of this config (validated when the config was made)."""
        return self._rules

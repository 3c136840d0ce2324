"""The dashboard's settings, as a typed dataclass loaded with ``streamwatch.config.load``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from streamwatch.config import check_host
from streamwatch.httpguard import MAX_BODY_BYTES, Guard
from streamwatch.promapi import check_base_url
from streamwatch.ranges import BODY_BYTES, PORT, PROMETHEUS_TIMEOUT, Range, check_ranges

# A watched metric's short name is pasted into PromQL label matchers, so only plain names are accepted.
METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _default_metrics() -> list[str]:
    return ["energy_consumption", "energy_price"]


@dataclass
class DashboardConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    prometheus_url: str = "http://127.0.0.1:9090"
    simulator_url: str = "http://127.0.0.1:5000"
    # The incident detector's /state: the banner and the incident list show its own times and metrics.
    incident_url: str = "http://127.0.0.1:8110"
    # The watched series itself, as the monitor reads it ({metric} is the short name): the band chart
    # draws it at its scrape resolution, not the monitor's once-a-cycle copy.
    source_query: str = "{metric}_metric"
    scrape_step_s: float = 2.0  # the watched series' scrape interval: the finest step the charts ask for
    top_k: int = 20  # rows of the "series by anomaly score" table
    metrics: list[str] = field(default_factory=_default_metrics)
    refresh_s: float = 2.0  # the original design's live view refreshed every 2 s
    timeout_s: float = 3.0  # per request to Prometheus or the simulator, so a hung peer cannot stall the page
    max_points: int = 300  # samples per chart; the query step is range / max_points
    spike_magnitude: float = 3.0  # the injection buttons' spike: multiply the value by this
    transient_duration_s: float = 10.0  # short enough for the decaying score to stay under the threshold
    prolonged_duration_s: float = 120.0  # long enough for the score to cross it
    # Host names the page may be opened by besides the bind address and localhost (DNS rebinding).
    allowed_hosts: list[str] = field(default_factory=list)
    max_body_bytes: int = MAX_BODY_BYTES

    RANGES: ClassVar[dict[str, Range]] = {
        "port": PORT,
        "scrape_step_s": Range(0.1, 3600, "s"),
        "top_k": Range(1, 200),
        "refresh_s": Range(0.5, 3600, "s"),
        "timeout_s": PROMETHEUS_TIMEOUT,
        "max_points": Range(10, 11_000),  # Prometheus answers at most 11,000 points per series
        "spike_magnitude": Range(0, 1000, low_open=True),  # the simulator's own limit for a spike
        "transient_duration_s": Range(1, 86_400, "s"),  # the simulator's limit for an anomaly
        "prolonged_duration_s": Range(1, 86_400, "s"),
        "max_body_bytes": BODY_BYTES,
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_host("host", self.host)
        for name in ("prometheus_url", "simulator_url", "incident_url"):
            url = getattr(self, name)
            check_base_url(name, url)
            setattr(self, name, url.rstrip("/"))
        if not self.metrics:
            raise ValueError("metrics must name at least one watched metric")
        for metric in self.metrics:
            if not METRIC_NAME.match(metric):
                raise ValueError(f"metrics: {metric!r} is not a valid metric name")
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics has duplicates: {self.metrics}")
        for name in (
            "refresh_s",
            "timeout_s",
            "spike_magnitude",
            "transient_duration_s",
            "prolonged_duration_s",
            "scrape_step_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 1 <= self.top_k <= 200:
            raise ValueError(f"top_k must be between 1 and 200, got {self.top_k}")
        if not self.source_query.strip():
            raise ValueError("source_query must not be empty")
        if self.max_points < 10:
            raise ValueError(f"max_points must be at least 10, got {self.max_points}")
        self.guard()  # a malformed allowed_hosts entry is a config error at start

    def guard(self) -> Guard:
        """What POST /api/inject accepts: the page's own same-origin JSON fetch, not a foreign page's."""
        return Guard.for_server(self.host, self.port, self.allowed_hosts, self.max_body_bytes)

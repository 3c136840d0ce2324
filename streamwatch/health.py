"""Whether a service can read Prometheus, exported so an outage is a metric rather than a silence."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge


class QueryHealth:
    """``<prefix>_prometheus_up``, ``<prefix>_prometheus_errors_total`` and
    ``<prefix>_last_success_timestamp_seconds``, for one label set.

    Services keep running while Prometheus is away; these three series are how a user (and the
    ``*Blind`` alerting rules) can tell "nothing wrong" from "cannot see".
    """

    def __init__(
        self,
        prefix: str,
        registry: CollectorRegistry,
        labelnames: Sequence[str] = (),
        labelvalues: Sequence[str] = (),
    ):
        self.up = Gauge(
            f"{prefix}_prometheus_up",
            "1 when the last query to Prometheus succeeded.",
            labelnames,
            registry=registry,
        )
        self.errors = Counter(
            f"{prefix}_prometheus_errors",
            "Failed queries to Prometheus (unreachable or answering an error).",
            labelnames,
            registry=registry,
        )
        self.last_success = Gauge(
            f"{prefix}_last_success_timestamp_seconds",
            "Unix time of the last cycle that read Prometheus successfully.",
            labelnames,
            registry=registry,
        )
        self._labelvalues = tuple(labelvalues) if labelnames else None
        # With label names but no values, the caller tracks several label sets (``track`` each one).
        if self._labelvalues != ():
            self.track(self._labelvalues)

    def track(self, labelvalues: Sequence[str] | None = None) -> None:
        """Make one label set's series exist: errors at 0 and up at 0 until the first query answers."""
        self._child(self.errors, labelvalues)  # a zero, so rate() sees no gap before the first failure
        self._child(self.up, labelvalues).set(0)
        # A labelled last-success series appears only with the first success: the stall rules tell
        # "never read Prometheus" from "stopped reading it" by its absence.

    def _child(self, metric: Gauge | Counter, labelvalues: Sequence[str] | None = None) -> Gauge | Counter:
        values = labelvalues if labelvalues is not None else self._labelvalues
        return metric if values is None else metric.labels(*values)

    def succeeded(self, now: float, labelvalues: Sequence[str] | None = None) -> None:
        """``labelvalues``: which tracked label set (default: the one given at construction)."""
        self._child(self.up, labelvalues).set(1)
        self._child(self.last_success, labelvalues).set(now)

    def failed(self, labelvalues: Sequence[str] | None = None) -> None:
        self._child(self.errors, labelvalues).inc()
        self._child(self.up, labelvalues).set(0)

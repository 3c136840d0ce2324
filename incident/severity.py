"""The incident state machine: per-metric decaying scores -> Sev 1 / Sev 2 incidents with a lifecycle.

A metric is *in trouble* once its score reaches ``threshold`` and stays so until the score falls below
``clear_threshold`` (hysteresis, so a score hovering at the threshold does not flap). Severity follows
from how many metrics are in trouble: at least ``sev1_min_metrics`` -> Sev 1, at least one -> Sev 2,
none -> no incident. Severity is encoded as Prometheus exports it: 0 none, 1 Sev 1 (worst), 2 Sev 2.

The tracker emits one event per change (opened, escalated, de-escalated, changed, resolved), never one
per cycle. It has no clock: every call takes the timestamp it is about.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

from incident.decay import DecayingScore, spread_weight

NONE, SEV1, SEV2 = 0, 1, 2
EventKind = Literal["opened", "escalated", "de-escalated", "changed", "resolved"]


def severity_label(severity: int) -> str:
    return {NONE: "none", SEV1: "Sev 1", SEV2: "Sev 2"}[severity]


def severity_for(in_trouble: int, sev1_min_metrics: int) -> int:
    """0 with no metric in trouble, Sev 1 with at least ``sev1_min_metrics``, Sev 2 otherwise."""
    if in_trouble <= 0:
        return NONE
    return SEV1 if in_trouble >= sev1_min_metrics else SEV2


@dataclass(frozen=True)
class Rules:
    """The numbers the state machine needs (a slice of the service config)."""

    half_life_s: float = 60.0
    threshold: float = 10.0
    clear_threshold: float = 5.0
    sev1_min_metrics: int = 2

    def __post_init__(self) -> None:
        if self.half_life_s <= 0:
            raise ValueError(f"half_life_s must be positive, got {self.half_life_s}")
        if self.threshold <= 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")
        # A decaying score only approaches 0, so a clear threshold of 0 would never resolve an incident.
        if not 0 < self.clear_threshold <= self.threshold:
            raise ValueError(
                f"clear_threshold must be above 0 and at most threshold ({self.threshold}), "
                f"got {self.clear_threshold}"
            )
        if self.sev1_min_metrics < 1:
            raise ValueError(f"sev1_min_metrics must be at least 1, got {self.sev1_min_metrics}")


@dataclass(frozen=True)
class IncidentEvent:
    """One lifecycle event; ``to_dict`` is the incident log's JSON object."""

    event: EventKind
    incident_id: str
    at: float
    severity: int  # after the event; 0 for resolved
    previous_severity: int
    peak_severity: int
    metrics: tuple[str, ...]  # metrics in trouble after the event (before it, for resolved)
    started_at: float
    duration_s: float
    scores: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {  # written with allow_nan=False: a non-finite score fails loudly instead of breaking JSON
            "ts": _iso(self.at),
            "time": round(self.at, 3),
            "event": self.event,
            "incident_id": self.incident_id,
            "severity": self.severity,
            "previous_severity": self.previous_severity,
            "peak_severity": self.peak_severity,
            "metrics": list(self.metrics),
            "started_at": round(self.started_at, 3),
            "duration_s": round(self.duration_s, 3),
            "scores": {k: round(v, 3) for k, v in self.scores.items()},
        }

    def one_line(self) -> str:
        """The readable form for people: stderr and ``--log-format text``."""
        sev = severity_label(self.severity if self.event != "resolved" else self.previous_severity)
        scores = " ".join(f"{k}={v:.1f}" for k, v in self.scores.items())
        what = {
            "opened": f"{sev} incident opened",
            "escalated": f"escalated to {sev}",
            "de-escalated": f"de-escalated to {sev}",
            "changed": f"{sev} metrics changed",
            "resolved": f"{sev} incident resolved (peak {severity_label(self.peak_severity)})",
        }[self.event]
        metrics = ",".join(self.metrics) or "-"
        return (
            f"{_iso(self.at)} incident {self.incident_id} {what}: metrics={metrics} "
            f"duration={self.duration_s:.0f}s scores: {scores}"
        )


@dataclass
class Incident:
    incident_id: str
    started_at: float
    severity: int
    peak_severity: int
    metrics: tuple[str, ...]
    ended_at: float | None = None

    def to_dict(self, now: float) -> dict[str, Any]:
        end = self.ended_at if self.ended_at is not None else now
        return {
            "incident_id": self.incident_id,
            "started_at": round(self.started_at, 3),
            "ended_at": None if self.ended_at is None else round(self.ended_at, 3),
            "severity": self.severity,
            "peak_severity": self.peak_severity,
            "metrics": list(self.metrics),
            "duration_s": round(end - self.started_at, 3),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        ended_at = doc["ended_at"]
        return cls(
            str(doc["incident_id"]), float(doc["started_at"]), int(doc["severity"]),
            int(doc["peak_severity"]), tuple(str(m) for m in doc["metrics"]),
            None if ended_at is None else float(ended_at),
        )  # fmt: skip


@dataclass
class IncidentTracker:
    """Per-metric scores plus the current incident; feed it ``observe(ts, new_anomalies)`` each cycle."""

    metrics: tuple[str, ...]
    rules: Rules = field(default_factory=Rules)
    recent_limit: int = 20

    def __post_init__(self) -> None:
        self.metrics = tuple(self.metrics)
        if not self.metrics:
            raise ValueError("at least one metric must be watched")
        self.scores = {m: DecayingScore(self.rules.half_life_s) for m in self.metrics}
        self.in_trouble: set[str] = set()
        self.current: Incident | None = None
        self.recent: deque[Incident] = deque(maxlen=self.recent_limit)
        self.last_ts: float | None = None

    @property
    def severity(self) -> int:
        return self.current.severity if self.current else NONE

    def score_values(self, ts: float) -> dict[str, float]:
        return {m: s.value_at(ts) for m, s in self.scores.items()}

    def hold(self, ts: float) -> None:
        """Freeze every score from the last ``observe`` until ``ts``: call it before the first ``observe``
        after a spell without data, so the spell neither decays a score (resolving an incident that may be
        ongoing) nor, by itself, adds to one (what the counters gained is still spread over the gap)."""
        if self.last_ts is not None:
            for score in self.scores.values():
                score.hold(self.last_ts, ts)

    def observe(self, ts: float, new_anomalies: Mapping[str, float]) -> list[IncidentEvent]:
        """Add the anomalies seen since the last call, decay everything to ``ts``, return the changes.

        The anomalies are taken as spread over the time since the last call (``spread_weight``), so the
        lump a counter shows after a Prometheus outage does not open an incident by itself.
        """
        gap = 0.0 if self.last_ts is None else ts - self.last_ts
        weight = spread_weight(gap, self.rules.half_life_s)
        for metric, count in new_anomalies.items():
            if metric in self.scores and math.isfinite(count) and count > 0:
                self.scores[metric].add(float(count) * weight, ts)
        self.last_ts = ts if self.last_ts is None else max(ts, self.last_ts)
        values = self.score_values(ts)
        for metric, value in values.items():
            if value >= self.rules.threshold:
                self.in_trouble.add(metric)
            elif value < self.rules.clear_threshold:
                self.in_trouble.discard(metric)
        troubled = tuple(m for m in self.metrics if m in self.in_trouble)
        return self._transition(ts, troubled, values)

    def _transition(
        self, ts: float, troubled: tuple[str, ...], values: dict[str, float]
    ) -> list[IncidentEvent]:
        new = severity_for(len(troubled), self.rules.sev1_min_metrics)
        cur = self.current
        if cur is None:
            if new == NONE:
                return []
            self.current = cur = Incident(_incident_id(ts), ts, new, new, troubled)
            return [self._event("opened", cur, ts, NONE, values)]
        old = cur.severity
        if new == NONE:
            cur.ended_at = ts
            self.recent.appendleft(cur)
            self.current = None
            event = IncidentEvent(
                "resolved", cur.incident_id, ts, NONE, old, cur.peak_severity, cur.metrics,
                cur.started_at, ts - cur.started_at, values,
            )  # fmt: skip
            return [event]
        if new == old and troubled == cur.metrics:
            return []
        cur.severity, cur.metrics = new, troubled
        cur.peak_severity = min(cur.peak_severity, new)  # Sev 1 is the worse, and the smaller number
        kind: EventKind = "changed" if new == old else ("escalated" if new < old else "de-escalated")
        return [self._event(kind, cur, ts, old, values)]

    def _event(
        self, kind: EventKind, inc: Incident, ts: float, previous: int, values: dict[str, float]
    ) -> IncidentEvent:
        return IncidentEvent(
            kind, inc.incident_id, ts, inc.severity, previous, inc.peak_severity, inc.metrics,
            inc.started_at, ts - inc.started_at, values,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Everything a restart needs to continue where this tracker stopped (see ``from_dict``)."""
        ts = self.last_ts or 0.0
        return {
            "last_ts": self.last_ts,
            "scores": {m: s.to_dict() for m, s in self.scores.items()},
            "in_trouble": [m for m in self.metrics if m in self.in_trouble],
            "current": self.current.to_dict(ts) if self.current else None,
            "recent": [i.to_dict(ts) for i in self.recent],
        }

    @classmethod
    def from_dict(
        cls, doc: dict[str, Any], metrics: tuple[str, ...], rules: Rules, recent_limit: int = 20
    ) -> Self:
        """A tracker for ``metrics`` and ``rules`` (today's configuration) resumed from saved state.

        Saved scores of metrics no longer watched are dropped; newly watched metrics start at 0. An open
        incident stays open: the next ``observe`` continues it or resolves it, exactly once.
        """
        out = cls(metrics, rules, recent_limit)
        for metric, saved in dict(doc["scores"]).items():
            if metric in out.scores:
                out.scores[metric] = DecayingScore.from_dict(saved, rules.half_life_s)
        out.in_trouble = {m for m in doc["in_trouble"] if m in out.scores}
        out.current = None if doc["current"] is None else Incident.from_dict(doc["current"])
        out.recent.extend(Incident.from_dict(i) for i in doc["recent"])
        out.last_ts = None if doc["last_ts"] is None else float(doc["last_ts"])
        return out

    def snapshot(self, ts: float) -> dict[str, Any]:
        """The state for people and dashboards (GET /state): scores, current and recent incidents."""
        values = self.score_values(ts)
        return {
            "time": round(ts, 3),
            "severity": self.severity,
            "severity_label": severity_label(self.severity),
            "threshold": self.rules.threshold,
            "clear_threshold": self.rules.clear_threshold,
            "half_life_s": self.rules.half_life_s,
            "sev1_min_metrics": self.rules.sev1_min_metrics,
            "scores": {m: round(v, 3) for m, v in values.items()},
            "in_trouble": [m for m in self.metrics if m in self.in_trouble],
            "current": self.current.to_dict(ts) if self.current else None,
            "recent": [i.to_dict(ts) for i in self.recent],
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _incident_id(ts: float) -> str:
    # The start time names the incident: unique per detector, readable, and stable across log rotation.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")

"""The incident state machine: per-series decaying scores -> Sev 1 / Sev 2 incidents with a lifecycle.

Every series of ``streamwatch_monitor_anomalies_total`` (one per watched input series, told apart by its
labels) has a score of its own. A series is *in trouble* once its score reaches ``threshold`` and stays
so until the score falls below ``clear_threshold`` (hysteresis, so a score hovering at the threshold does
not flap). A metric (the ``metric`` label: one monitor query) is in trouble while any of its series is.
Severity follows from how many metrics are in trouble: at least ``sev1_min_metrics`` -> Sev 1, at least
one -> Sev 2, none -> no incident. Severity is encoded as Prometheus exports it: 0 none, 1 Sev 1
(worst), 2 Sev 2.

Scores are never summed across series: 1,000 quiet series each with a rare false alarm would add up to
a steady stream of anomalies for their metric, while no single series is in trouble
(docs/incidents-many-series.md).

The tracker emits one event per change (opened, escalated, de-escalated, changed, resolved), never one
per cycle. It has no clock: every call takes the timestamp it is about.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

from incident.decay import DecayingScore, spread_weight
from streamwatch.series import SeriesKey, label_text, series_key

NONE, SEV1, SEV2 = 0, 1, 2
EventKind = Literal["opened", "escalated", "de-escalated", "changed", "resolved"]
# Labels a monitor's scrape adds: they tell monitors apart, not the watched series, so the readable
# name leaves them out (the series' key and the JSON log keep them).
TARGET_LABELS = frozenset({"job", "instance"})
# The most anomalies one series can have per second: one per sample, at a scrape interval of 100 ms.
# A counter that jumps by more (1e308 once killed the detector, and one jump would have held a score
# for 17 hours) is a broken monitor, not news: what it adds is capped at this rate over the gap (and at
# least over a minute, so a burst counted in one short cycle is not cut), so one absurd reading adds at
# most 600 (gone below the clear threshold in 7 half-lives) and every score stays a finite number.
MAX_ANOMALIES_PER_S = 10.0
MIN_COUNT_WINDOW_S = 60.0


def severity_label(severity: int) -> str:
    return {NONE: "none", SEV1: "Sev 1", SEV2: "Sev 2"}[severity]


def bounded_count(gap_s: float) -> float:
    """The most anomalies a series may add in ``gap_s`` seconds (at least a minute's worth).

    >>> bounded_count(5.0)
    600.0
    >>> bounded_count(3600.0)
    36000.0
    """
    return MAX_ANOMALIES_PER_S * max(MIN_COUNT_WINDOW_S, gap_s)


def anomaly_weight(spacing_s: float | None, reference_s: float, most: float) -> float:
    """What one anomaly adds to its series' score: the time its point stands for (the seconds between the
    series' points, ``streamwatch_monitor_sample_interval_seconds``) over ``reference_s``, at most ``most``
    and at least 1; 1 when the spacing is unknown.

    A score counted in points measures a series scraped every 15 s with a ruler made for one sampled
    every 2 s: a minute of trouble is 4 points there and 30 here. Weighed by what each point stands for,
    a minute of trouble scores alike, while ``most`` (half the threshold by default) keeps one or two
    points, however sparse their series, from opening an incident by themselves.

    >>> anomaly_weight(2.0, 2.0, 5.0), anomaly_weight(5.0, 2.0, 5.0), anomaly_weight(15.0, 2.0, 5.0)
    (1.0, 2.5, 5.0)
    >>> anomaly_weight(1.0, 2.0, 5.0), anomaly_weight(None, 2.0, 5.0), anomaly_weight(600.0, 2.0, 5.0)
    (1.0, 1.0, 5.0)
    """
    if spacing_s is None or not math.isfinite(spacing_s) or spacing_s <= 0:
        return 1.0
    return max(min(spacing_s / reference_s, most), 1.0)


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
    # An anomaly adds the seconds its point stands for over this (1 for the simulator's 2 s samples) ...
    reference_spacing_s: float = 2.0
    # ... at most this share of the threshold (5 of 10: a point counts for 10 s at most), so that a series
    # however sparse needs three flagged points in a row, never one, to open an incident
    # (docs/incidents.md: two 30 s monitor cycles of a 15 s query).
    max_anomaly_share: float = 0.5

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
        if not self.reference_spacing_s > 0:
            raise ValueError(f"reference_spacing_s must be positive, got {self.reference_spacing_s}")
        if not 0 < self.max_anomaly_share < 1:
            raise ValueError(
                "max_anomaly_share must be above 0 and below 1 (one anomaly must never open an incident "
                f"alone), got {self.max_anomaly_share:g}"
            )

    def weight(self, spacing_s: float | None) -> float:
        """What one anomaly of a series whose points are ``spacing_s`` apart adds to its score."""
        return anomaly_weight(spacing_s, self.reference_spacing_s, self.max_anomaly_share * self.threshold)


@dataclass(frozen=True, order=True)
class SeriesId:
    """One series of the monitors' anomaly counter: its ``metric`` label and all its other labels."""

    metric: str
    labels: SeriesKey = ()  # the series' key without metric and __name__

    @classmethod
    def of(cls, labels: Mapping[str, str], metric_label: str = "metric") -> SeriesId:
        rest = series_key((k, v) for k, v in labels.items() if k not in (metric_label, "__name__"))
        return cls(labels.get(metric_label, ""), rest)

    def label_text(self) -> str:
        """The series' own labels as PromQL writes them (without the monitor's job and instance)."""
        return label_text(self.labels, drop=TARGET_LABELS)

    def __str__(self) -> str:
        text = self.label_text()
        return f"{self.metric}{{{text}}}" if text else self.metric

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "labels": dict(self.labels)}

    def to_key(self) -> str:
        """One string naming the series exactly, for saved state (JSON object keys are strings)."""
        return json.dumps([self.metric, [list(p) for p in self.labels]], separators=(",", ":"))

    @classmethod
    def from_key(cls, key: str) -> SeriesId:
        metric, labels = json.loads(key)
        return cls(str(metric), tuple((str(k), str(v)) for k, v in labels))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SeriesId:
        return cls(str(doc["metric"]), series_key(dict(doc["labels"])))


SeriesScores = tuple[tuple[SeriesId, float], ...]  # series and their scores, worst first


def _series_dicts(series: SeriesScores) -> list[dict[str, Any]]:
    return [{**sid.to_dict(), "name": str(sid), "score": round(v, 3)} for sid, v in series]


def _series_from_dicts(docs: list[dict[str, Any]]) -> SeriesScores:
    return tuple((SeriesId.from_dict(d), float(d["score"])) for d in docs)


@dataclass(frozen=True)
class SeriesLimits:
    """How many series the tracker names and keeps, and when it forgets one."""

    top_series: int = 5  # series named per event
    forget_after_s: float = 900.0  # unseen this long: dropped (its score has long decayed to nothing)
    max_series: int = 100_000  # kept at most; newer ones are refused until room frees

    def __post_init__(self) -> None:
        if self.top_series < 1:
            raise ValueError(f"top_series must be at least 1, got {self.top_series}")
        if self.forget_after_s <= 0:
            raise ValueError(f"forget_series_after_s must be positive, got {self.forget_after_s}")
        if self.max_series < 1:
            raise ValueError(f"max_series must be at least 1, got {self.max_series}")


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
    scores: Mapping[str, float]  # per metric: its worst series' score
    series: SeriesScores = ()  # the worst series in trouble (at most the tracker's top_series)
    series_in_trouble: int = 0  # all series in trouble, of which ``series`` are the worst

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
            "series": _series_dicts(self.series),
            "series_in_trouble": self.series_in_trouble,
        }

    def series_text(self) -> str:
        """``cpu{cpu="1"}=12.3 cpu{cpu="7"}=11.0 (+3 more)``: the worst series, bounded, and how many else."""
        text = " ".join(f"{sid}={v:.1f}" for sid, v in self.series) or "-"
        more = self.series_in_trouble - len(self.series)
        return text + (f" (+{more} more)" if more > 0 else "")

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
            f"duration={self.duration_s:.0f}s series: {self.series_text()} scores: {scores}"
        )


@dataclass
class Incident:
    incident_id: str
    started_at: float
    severity: int
    peak_severity: int
    metrics: tuple[str, ...]
    ended_at: float | None = None
    series: SeriesScores = ()  # the worst series in trouble, as of the last cycle in trouble
    series_in_trouble: int = 0
    all_metrics: tuple[str, ...] = ()  # every metric in trouble at some time during the incident

    def to_dict(self, now: float) -> dict[str, Any]:
        end = self.ended_at if self.ended_at is not None else now
        return {
            "incident_id": self.incident_id,
            "started_at": round(self.started_at, 3),
            "ended_at": None if self.ended_at is None else round(self.ended_at, 3),
            "severity": self.severity,
            "peak_severity": self.peak_severity,
            "metrics": list(self.metrics),
            "all_metrics": sorted(set(self.all_metrics) | set(self.metrics)),
            "duration_s": round(end - self.started_at, 3),
            "series": _series_dicts(self.series),
            "series_in_trouble": self.series_in_trouble,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        ended_at = doc["ended_at"]
        metrics = tuple(str(m) for m in doc["metrics"])
        return cls(
            str(doc["incident_id"]), float(doc["started_at"]), int(doc["severity"]),
            int(doc["peak_severity"]), metrics, None if ended_at is None else float(ended_at),
            _series_from_dicts(doc.get("series", [])), int(doc.get("series_in_trouble", 0)),
            tuple(str(m) for m in doc.get("all_metrics", metrics)),
        )  # fmt: skip


@dataclass
class SeriesState:
    """What the tracker keeps per series: a few floats, so thousands of series cost little memory."""

    score: DecayingScore
    last_seen: float
    in_trouble: bool = False


@dataclass
class IncidentTracker:
    """Per-series scores plus the current incident; feed it ``observe(ts, new_anomalies)`` each cycle.

    ``metrics`` limits the watched metrics (and is reported even before any of their series is seen);
    empty watches every metric that shows up. ``new_anomalies`` is keyed by ``SeriesId``, or by a plain
    metric name for a metric with one series. ``limits`` bounds memory: a series unseen for long is
    dropped, and beyond ``max_series`` new ones are refused.
    """

    metrics: tuple[str, ...] = ()
    rules: Rules = field(default_factory=Rules)
    recent_limit: int = 20
    limits: SeriesLimits = field(default_factory=SeriesLimits)

    def __post_init__(self) -> None:
        self.metrics = tuple(self.metrics)
        self.fixed = bool(self.metrics)
        self.series: dict[SeriesId, SeriesState] = {}
        self.per_metric: dict[str, int] = {m: 0 for m in self.metrics}  # series kept per metric
        self.in_trouble: set[str] = set()  # metrics with a series in trouble
        self.current: Incident | None = None
        self.recent: deque[Incident] = deque(maxlen=self.recent_limit)
        self.last_ts: float | None = None
        self.weights: dict[str, float] = {}  # per metric, what one anomaly added in the last observe
        self.dropped: list[SeriesId] = []  # dropped by the last observe, for the shell's counter memory
        self.refused: list[SeriesId] = []  # new series the last observe could not keep (max_series)

    @property
    def severity(self) -> int:
        return self.current.severity if self.current else NONE

    @property
    def scores(self) -> dict[str, DecayingScore]:
        """Per watched metric, the score of its worst series (a fresh 0 for one with no series yet)."""
        ts = self.last_ts or 0.0
        out = {m: DecayingScore(self.rules.half_life_s) for m in self.known_metrics()}
        best: dict[str, float] = {}
        for sid, st in self.series.items():
            v = st.score.value_at(ts)
            if sid.metric not in best or v > best[sid.metric]:
                best[sid.metric], out[sid.metric] = v, st.score
        return out

    def watches(self, metric: str) -> bool:
        return not self.fixed or metric in self.per_metric

    def known_metrics(self) -> tuple[str, ...]:
        return self.metrics if self.fixed else tuple(sorted(self.per_metric))

    def score_values(self, ts: float) -> dict[str, float]:
        """Per metric, its worst series' score (0 for a watched metric with no series yet)."""
        out = {m: 0.0 for m in self.known_metrics()}
        for sid, st in self.series.items():
            v = st.score.value_at(ts)
            if v > out[sid.metric]:
                out[sid.metric] = v
        return out

    def series_values(self, ts: float, metric: str | None = None) -> dict[SeriesId, float]:
        return {
            sid: st.score.value_at(ts)
            for sid, st in self.series.items()
            if metric is None or sid.metric == metric
        }

    def worst_in_trouble(self, ts: float, limit: int) -> SeriesScores:
        """The ``limit`` worst series in trouble, worst first (ties in label order, so logs are stable)."""
        troubled = ((sid, st.score.value_at(ts)) for sid, st in self.series.items() if st.in_trouble)
        return tuple(heapq.nsmallest(limit, troubled, key=_worst_first))

    def worst_per_metric(self, ts: float, limit: int) -> dict[str, SeriesScores]:
        """Per metric in trouble, its ``limit`` worst series in trouble, worst first."""
        groups: dict[str, list[tuple[SeriesId, float]]] = {}
        for sid, st in self.series.items():
            if st.in_trouble:
                groups.setdefault(sid.metric, []).append((sid, st.score.value_at(ts)))
        return {
            m: tuple(heapq.nsmallest(limit, pairs, key=_worst_first)) for m, pairs in sorted(groups.items())
        }

    def series_in_trouble(self) -> int:
        return sum(1 for st in self.series.values() if st.in_trouble)

    def _admit(self, sid: SeriesId, ts: float) -> SeriesState | None:
        st = self.series.get(sid)
        if st is not None:
            st.last_seen = max(st.last_seen, ts)
            return st
        if not self.watches(sid.metric):
            return None
        if len(self.series) >= self.limits.max_series:
            self.refused.append(sid)
            return None
        st = self.series[sid] = SeriesState(DecayingScore(self.rules.half_life_s), ts)
        self.per_metric[sid.metric] = self.per_metric.get(sid.metric, 0) + 1
        return st

    def _forget(self, ts: float, seen: Mapping[SeriesId, float]) -> None:
        self.dropped = [
            sid
            for sid, st in self.series.items()
            if ts - st.last_seen > self.limits.forget_after_s and sid not in seen
        ]
        for sid in self.dropped:
            del self.series[sid]
            self.per_metric[sid.metric] -= 1
            if self.per_metric[sid.metric] == 0 and not self.fixed:
                del self.per_metric[sid.metric]

    def hold(self, ts: float, only: Iterable[SeriesId] | None = None) -> None:
        """Freeze every score from the last ``observe`` until ``ts``: call it before the first ``observe``
        after a spell without data, so the spell neither decays a score (resolving an incident that may be
        ongoing) nor, by itself, adds to one (what the counters gained is still spread over the gap). The
        spell does not count towards forgetting a series either. ``only``: just these series (those of a
        monitor replica that is down), called before each ``observe`` while they are blind."""
        if self.last_ts is not None:
            picked = self.series.values() if only is None else (self.series.get(s) for s in only)
            held = [st for st in picked if st is not None]
            for st in held:
                st.score.hold(self.last_ts, ts)
                st.last_seen += max(0.0, ts - self.last_ts)

    def observe(
        self,
        ts: float,
        new_anomalies: Mapping[SeriesId | str, float],
        spacing: Mapping[str, float] | None = None,
    ) -> list[IncidentEvent]:
        """Add the anomalies seen since the last call, decay everything to ``ts``, return the changes.

        Every key of ``new_anomalies`` counts as seen at ``ts`` (0 anomalies included). The anomalies are
        taken as spread over the time since the last call (``spread_weight``), so the lump a counter
        shows after a Prometheus outage does not open an incident by itself. ``spacing`` gives, per
        metric, the seconds between its series' points: each anomaly adds what its point stands for
        (``Rules.weight``; 1 for a metric without one).
        """
        gap = 0.0 if self.last_ts is None else ts - self.last_ts
        spread = spread_weight(gap, self.rules.half_life_s)
        most = bounded_count(gap)
        self.refused = []
        reading = {k if isinstance(k, SeriesId) else SeriesId(k): n for k, n in new_anomalies.items()}
        self._forget(ts, reading)  # first, so the room they leave takes new series at once
        spacing = spacing or {}
        self.weights = {m: self.rules.weight(spacing.get(m)) for m in {s.metric for s in reading}}
        for sid, count in reading.items():
            st = self._admit(sid, ts)
            if st is not None and math.isfinite(count) and count > 0:
                st.score.add(min(float(count), most) * self.weights[sid.metric] * spread, ts)
        self.last_ts = ts if self.last_ts is None else max(ts, self.last_ts)
        # One pass over the series (thousands of them): hysteresis, each metric's worst score, the troubled.
        values = {m: 0.0 for m in self.known_metrics()}
        in_trouble: list[tuple[SeriesId, float]] = []
        for sid, st in self.series.items():
            value = st.score.value_at(ts)
            if value >= self.rules.threshold:
                st.in_trouble = True
            elif value < self.rules.clear_threshold:
                st.in_trouble = False
            if value > values[sid.metric]:
                values[sid.metric] = value
            if st.in_trouble:
                in_trouble.append((sid, value))
        self.in_trouble = {sid.metric for sid, _ in in_trouble}
        troubled = tuple(m for m in self.known_metrics() if m in self.in_trouble)
        worst = tuple(heapq.nsmallest(self.limits.top_series, in_trouble, key=_worst_first))
        return self._transition(ts, troubled, values, worst, len(in_trouble))

    def _transition(
        self,
        ts: float,
        troubled: tuple[str, ...],
        values: dict[str, float],
        worst: SeriesScores,
        count: int,
    ) -> list[IncidentEvent]:
        new = severity_for(len(troubled), self.rules.sev1_min_metrics)
        cur = self.current
        if cur is None:
            if new == NONE:
                return []
            self.current = cur = Incident(
                _incident_id(ts), ts, new, new, troubled, None, worst, count, all_metrics=troubled
            )
            return [self._event("opened", cur, ts, NONE, values)]
        old = cur.severity
        if new == NONE:
            cur.ended_at = ts
            self.recent.appendleft(cur)
            self.current = None
            # Named by the series that were in trouble until now: the last cycle in trouble's list.
            event = IncidentEvent(
                "resolved", cur.incident_id, ts, NONE, old, cur.peak_severity, cur.metrics,
                cur.started_at, ts - cur.started_at, values, cur.series, cur.series_in_trouble,
            )  # fmt: skip
            return [event]
        cur.series, cur.series_in_trouble = worst, count
        if new == old and troubled == cur.metrics:
            return []
        cur.severity, cur.metrics = new, troubled
        cur.all_metrics = tuple(sorted(set(cur.all_metrics) | set(troubled)))
        cur.peak_severity = min(cur.peak_severity, new)  # Sev 1 is the worse, and the smaller number
        kind: EventKind = "changed" if new == old else ("escalated" if new < old else "de-escalated")
        return [self._event(kind, cur, ts, old, values)]

    def _event(
        self, kind: EventKind, inc: Incident, ts: float, previous: int, values: dict[str, float]
    ) -> IncidentEvent:
        return IncidentEvent(
            kind, inc.incident_id, ts, inc.severity, previous, inc.peak_severity, inc.metrics,
            inc.started_at, ts - inc.started_at, values, inc.series, inc.series_in_trouble,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Everything a restart needs to continue where this tracker stopped (see ``from_dict``)."""
        ts = self.last_ts or 0.0
        return {
            "last_ts": self.last_ts,
            # Per series: key, score, last seen, in trouble (a list: thousands of them stay compact).
            "series": [
                [sid.to_key(), st.score.to_dict(), st.last_seen, st.in_trouble]
                for sid, st in self.series.items()
            ],
            "in_trouble": [m for m in self.known_metrics() if m in self.in_trouble],
            "current": self.current.to_dict(ts) if self.current else None,
            "recent": [i.to_dict(ts) for i in self.recent],
        }

    @classmethod
    def from_dict(
        cls,
        doc: dict[str, Any],
        metrics: tuple[str, ...],
        rules: Rules,
        recent_limit: int = 20,
        limits: SeriesLimits | None = None,
    ) -> Self:
        """A tracker for ``metrics`` and ``rules`` (today's configuration) resumed from saved state.

        Saved series of metrics no longer watched are dropped; newly watched metrics start at 0. An open
        incident stays open: the next ``observe`` continues it or resolves it, exactly once. A state saved
        with one score per metric (before scores were per series) resumes each as a one-series metric.
        """
        out = cls(metrics, rules, recent_limit, limits or SeriesLimits())
        last_ts = None if doc["last_ts"] is None else float(doc["last_ts"])
        rows = [(SeriesId.from_key(k), sc, float(seen), bool(t)) for k, sc, seen, t in doc.get("series", [])]
        if "series" not in doc:
            troubled = set(doc["in_trouble"])
            rows = [(SeriesId(m), sc, last_ts or 0.0, m in troubled) for m, sc in dict(doc["scores"]).items()]
        for sid, saved, seen, trouble in rows:
            if not out.watches(sid.metric) or len(out.series) >= out.limits.max_series:
                continue
            out.series[sid] = SeriesState(DecayingScore.from_dict(saved, rules.half_life_s), seen, trouble)
            out.per_metric[sid.metric] = out.per_metric.get(sid.metric, 0) + 1
        out.in_trouble = {sid.metric for sid, st in out.series.items() if st.in_trouble}
        out.current = None if doc["current"] is None else Incident.from_dict(doc["current"])
        out.recent.extend(Incident.from_dict(i) for i in doc["recent"])
        out.last_ts = last_ts
        return out

    def snapshot(self, ts: float, top: int = 20) -> dict[str, Any]:
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
            "reference_spacing_s": self.rules.reference_spacing_s,
            "max_anomaly_share": self.rules.max_anomaly_share,
            "scores": {m: round(v, 3) for m, v in values.items()},
            "in_trouble": [m for m in self.known_metrics() if m in self.in_trouble],
            "series_tracked": len(self.series),
            "series_per_metric": dict(sorted(self.per_metric.items())),
            "series_in_trouble": _series_dicts(self.worst_in_trouble(ts, top)),
            "series_in_trouble_count": self.series_in_trouble(),
            "series_refused": len(self.refused),
            "current": self.current.to_dict(ts) if self.current else None,
            "recent": [i.to_dict(ts) for i in self.recent],
        }


def _worst_first(pair: tuple[SeriesId, float]) -> tuple[float, SeriesId]:
    # Highest score first; ties in label order, so logs and exports are stable.
    return (-pair[1], pair[0])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _incident_id(ts: float) -> str:
    # The start time names the incident: unique per detector, readable, and stable across log rotation.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")

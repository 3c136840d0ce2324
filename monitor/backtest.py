"""The backtest: what the monitor would have flagged over a stretch of recorded history.

``replay`` runs the monitor's own ``Engine`` (every query's ``QueryWatch``, the same reader, training,
retraining and Prophet fit pool) over a recording (``monitor.replay``) with a ``FakeClock`` stepped every
``interval`` from ``since`` to ``until``, exactly as the live loop cycles; a ``Collector`` on each query
keeps every point scored, with its band and score. Two things differ from a live run, both on purpose:
a fit is installed before the next cycle however long it took (live, within a second of finishing, so
the same unless the fit pool is saturated for a whole interval), and nothing is saved or exported.

Counting (``summarise``): a series' *flagged points* are its points scored above ``ANOMALY_THRESHOLD``
(what ``streamwatch_monitor_anomalies_total`` counts live); an *incident* is a run of flagged points of
one series in which consecutive ones are at most ``gap`` seconds apart (a flagged point more than
``gap`` after the previous one opens a new incident). Series are identified by their full label set
across the whole run, so a series that went stale and came back is one series here.

>>> t = np.array([0.0, 10.0, 20.0, 100.0, 110.0, 500.0])
>>> incident_starts(np.zeros(6, dtype=np.int64), t, gap=30.0).tolist()  # three runs
[True, False, False, True, False, True]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.config import MonitorConfig, QueryConfig
from monitor.detectors.scores import ANOMALY_THRESHOLD, Scores
from monitor.engine import Engine
from monitor.fitpool import FitPool
from monitor.query import QueryWatch
from monitor.replay import Recording, ReplayClient
from streamwatch.clock import FakeClock
from streamwatch.series import SeriesKey, label_text

# An incident ends after this many cycles without a flagged point of its series (the default gap).
INCIDENT_GAP_CYCLES = 5
BAND = ("expected", "lower", "upper")


@dataclass
class Points:
    """Every point a query scored, grouped by series (``sid``) and in time order within each."""

    sid: np.ndarray  # int32 series number (``QueryOutcome.labels`` index)
    t: np.ndarray
    # float32, for the report only: ``flagged`` was decided on the engine's float64 score
    x: np.ndarray
    score: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    flagged: np.ndarray  # score > ANOMALY_THRESHOLD, as the monitor counts

    @classmethod
    def empty(cls) -> Points:
        f = np.empty(0)
        return cls(np.empty(0, dtype=np.int32), f, f, f, f, f, f, np.empty(0, dtype=bool))

    def of_series(self, i: int) -> Points:
        a, b = np.searchsorted(self.sid, [i, i + 1])
        return Points(*(getattr(self, name)[a:b] for name in Points.__dataclass_fields__))


class Collector:
    """A ``QueryWatch.observer``: keeps each scored point with its series' identity, band and score.

    33 bytes per point scored (a day of 1,000 series every 15 s is 5.8 million points, 190 MB), held
    column by column so that ``points`` needs little more than that again.
    """

    FIELDS = ("sid", "t", "x", "score", *BAND, "flagged")

    def __init__(self) -> None:
        self.ids: dict[SeriesKey, int] = {}
        self.labels: list[dict[str, str]] = []
        self.columns: dict[str, list[np.ndarray]] = {name: [] for name in self.FIELDS}

    def __call__(self, watch: QueryWatch, x: np.ndarray, t: np.ndarray, scores: Scores) -> None:
        scored = ~np.isnan(x)  # +/-Inf is scored (an anomaly), NaN is not
        r, c = np.nonzero(scored)  # row by row, each row's points in time order
        if not r.size:
            return
        sid_of = np.full(x.shape[0], -1, dtype=np.int32)
        keys, labels = watch.table.keys, watch.table.labels
        for row in np.unique(r).tolist():
            key = keys[row]
            assert key is not None
            sid = self.ids.get(key)
            if sid is None:
                sid = self.ids[key] = len(self.labels)
                self.labels.append(dict(labels[row] or {}))
            sid_of[row] = sid
        score = scores.score[r, c]
        cols = self.columns
        cols["sid"].append(sid_of[r])
        cols["t"].append(t[r, c])
        cols["x"].append(x[r, c].astype(np.float32))
        cols["score"].append(score.astype(np.float32))
        for name in BAND:
            cols[name].append(getattr(scores, name)[r, c].astype(np.float32))
        cols["flagged"].append(score > ANOMALY_THRESHOLD)

    def points(self) -> Points:
        """Every point kept, grouped by series; a point comes after its series' earlier ones (a cycle
        scores each series' points in time order, and a series is scored once per cycle), so a stable
        sort by series is enough."""
        if not self.columns["sid"]:
            return Points.empty()
        sid = np.concatenate(self.columns.pop("sid"))
        order = np.argsort(sid, kind="stable")
        out = {"sid": sid[order]}
        del sid
        for name in self.FIELDS[1:]:
            out[name] = np.concatenate(self.columns.pop(name))[order]
        self.columns = {name: [] for name in self.FIELDS}
        return Points(**out)


def incident_starts(sid: np.ndarray, t: np.ndarray, gap: float) -> np.ndarray:
    """For flagged points sorted by series then time: True where a point opens an incident (the first of
    its series, or more than ``gap`` seconds after the previous one)."""
    starts = np.ones(sid.size, dtype=bool)
    starts[1:] = (sid[1:] != sid[:-1]) | (np.diff(t) > gap)
    return starts


@dataclass
class QueryOutcome:
    """One query's replay: its series (``labels``), every point scored, and per-series figures."""

    query: QueryConfig
    labels: list[dict[str, str]]
    points: Points
    recorded_series: int = 0
    scored: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    flagged: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    incidents: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    max_score: np.ndarray = field(default_factory=lambda: np.empty(0))

    def count(self, gap: float) -> None:
        """Fill the per-series figures (``incidents`` with incidents ``gap`` seconds apart at most)."""
        p, n = self.points, len(self.labels)
        self.scored = np.bincount(p.sid, minlength=n)
        self.flagged = np.bincount(p.sid[p.flagged], minlength=n)
        fs, ft = p.sid[p.flagged], p.t[p.flagged]
        self.incidents = np.bincount(fs[incident_starts(fs, ft, gap)], minlength=n)
        self.max_score = np.zeros(n)
        if p.sid.size:
            np.maximum.at(
                self.max_score, p.sid, np.nan_to_num(p.score.astype(np.float64), nan=0.0, posinf=np.inf)
            )

    def rank(self, i: int) -> tuple[int, int, float, str, str]:
        """Series ``i``'s place: most flagged points first, then most incidents, highest score, names."""
        return (
            -int(self.flagged[i]),
            -int(self.incidents[i]),
            -float(self.max_score[i]),
            self.query.name,
            label_text(self.labels[i]),
        )

    def ranking(self) -> list[int]:
        """Series numbers, first the one with the most flagged points (``rank``)."""
        return sorted(range(len(self.labels)), key=self.rank)

    def first_last_flagged(self, i: int) -> tuple[float | None, float | None]:
        s = self.points.of_series(i)
        ts = s.t[s.flagged]
        return (float(ts[0]), float(ts[-1])) if ts.size else (None, None)


def cycle_times(since: float, until: float, interval: float) -> np.ndarray:
    """``since``, every ``interval`` after it, and ``until`` last (the live loop's cycles over the span).

    >>> cycle_times(0.0, 70.0, 30.0).tolist()
    [0.0, 30.0, 60.0, 70.0]
    """
    n = math.floor((until - since) / interval)
    times = since + interval * np.arange(n + 1)
    return times if times[-1] >= until else np.append(times, until)


class Replay:
    """The engine over ``recordings`` (one per query, in ``cfg.queries`` order), from ``since``: ``run``
    its cycles up to a time, then read each query's ``outcome``."""

    def __init__(
        self, cfg: MonitorConfig, recordings: list[Recording], since: float, pool: FitPool | None = None
    ):
        self.cfg = cfg
        self.recordings = recordings
        self.since = since
        self.clock = FakeClock(since)
        self.engine = Engine(cfg, ReplayClient(recordings), self.clock, pool=pool, offline=True)
        self.collectors = []
        for w in self.engine.watches:
            collector = Collector()
            w.core.observer = collector
            self.collectors.append(collector)

    def run(self, until: float) -> int:
        """Every cycle from ``since`` to ``until`` (``cycle_times``); returns how many."""
        times = cycle_times(self.since, until, self.cfg.interval).tolist()
        try:
            for now in times:
                self.clock.now = now
                self.engine.run_cycle()
                self.engine.settle()
        finally:
            self.engine.pool.close()
        return len(times)

    def outcomes(self, gap: float | None = None) -> list[QueryOutcome]:
        """Each query's outcome, with incidents ``gap`` seconds apart at most (default:
        ``INCIDENT_GAP_CYCLES`` cycles)."""
        out = []
        for q, rec, collector in zip(self.cfg.queries, self.recordings, self.collectors, strict=True):
            outcome = QueryOutcome(q, collector.labels, collector.points(), recorded_series=rec.series)
            outcome.count(gap if gap is not None else INCIDENT_GAP_CYCLES * self.cfg.interval)
            out.append(outcome)
        return out


def replay(
    cfg: MonitorConfig,
    recordings: list[Recording],
    since: float,
    until: float,
    gap: float | None = None,
    pool: FitPool | None = None,
) -> list[QueryOutcome]:
    """``Replay(cfg, recordings, since, pool).run(until)``, then every query's outcome."""
    r = Replay(cfg, recordings, since, pool)
    r.run(until)
    return r.outcomes(gap)


def number(v: float) -> float | str:
    """A float for JSON: non-finite values as Prometheus' API writes them (``"+Inf"``, ``"NaN"``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return float(v)


def series_summary(outcome: QueryOutcome, i: int) -> dict[str, Any]:
    first, last = outcome.first_last_flagged(i)
    return {
        "query": outcome.query.name,
        "labels": outcome.labels[i],
        "points_scored": int(outcome.scored[i]),
        "points_flagged": int(outcome.flagged[i]),
        "incidents": int(outcome.incidents[i]),
        "max_score": number(float(f"{outcome.max_score[i]:.6g}")),
        "first_flagged": first,
        "last_flagged": last,
    }


def summarise(outcomes: list[QueryOutcome], top: int) -> dict[str, Any]:
    """The report's figures: per query, and the ``top`` series of each and of all queries together."""
    queries = []
    everyone: list[tuple[QueryOutcome, int]] = []
    for o in outcomes:
        q = o.query
        ranked = o.ranking()
        scored, flagged = int(o.scored.sum()), int(o.flagged.sum())
        queries.append(
            {
                "name": q.name,
                "expr": q.expr,
                "detector": q.detector,
                "params": q.params,
                "step": q.step,
                "series": len(o.labels),
                "series_recorded": o.recorded_series,
                "series_flagged": int(np.count_nonzero(o.flagged)),
                "points_scored": scored,
                "points_flagged": flagged,
                "flagged_ratio": flagged / scored if scored else 0.0,
                "incidents": int(o.incidents.sum()),
                "top": [series_summary(o, i) for i in ranked[:top]],
            }
        )
        everyone.extend((o, i) for i in ranked)
    everyone.sort(key=lambda oi: oi[0].rank(oi[1]))
    return {"queries": queries, "top": [series_summary(o, i) for o, i in everyone[:top]]}

"""Every series of one query, scored together: the pure core of the monitor.

A series is keyed by its full label set. The first time a key is read it is *admitted* (unless the query
watches ``max_series`` already, or the process' ``accept`` predicate, its shard, says it is another's)
into a row of the query's ``SeriesTable`` and of its columnar ``Detector``; it scores once the shell has
trained that row (``install``). From then on each cycle's new points, those after the row's
``trained_until``, of every series are laid out as one ``(rows, T)`` matrix and scored by one
``Detector.update`` call: a few numpy operations per time column for all series at once, not a Python
call per series. A key with no new point for ``stale_after`` seconds is dropped with its row.

Non-finite values: NaN (an exporter's NaN, 0/0 in a ratio) has nothing to score and is left out; +/-Inf
is an anomaly with an infinite score that no detector learns; both are counted.

No HTTP and no clock here: the shell passes each read (``streamwatch.promapi.Columns``) and ``now``.

>>> from monitor.config import QueryConfig
>>> from monitor.detectors.registry import create
>>> from streamwatch.promapi import Columns
>>> from streamwatch.series import Series
>>> ema = {"warmup": 1}
>>> q = QueryWatch(QueryConfig("cpu", "cpu_busy", detector="ema", params=ema), create("ema", ema, rows=0))
>>> a, b = {"host": "a"}, {"host": "b"}
>>> read = Columns.of([Series(a, [10.0, 20.0], [1.0, 1.0]), Series(b, [10.0], [5.0])])
>>> q.observe(read, now=20.0).admitted, q.waiting().tolist()  # admitted, waiting for a model
(2, [0, 1])
>>> q.install(q.waiting(), create("ema", {"warmup": 1}, rows=2), np.array([20.0, 10.0]))
>>> later = Columns.of([Series(a, [30.0], [1.0]), Series(b, [20.0, 30.0], [5.0, 50.0])])
>>> r = q.observe(later, now=30.0)
>>> r.scored, r.anomalies, q.table.col["anomalies"][:2].tolist()
(3, 1, [0, 1])
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from monitor.config import RESERVED_LABELS, QueryConfig
from monitor.detectors.base import Detector
from monitor.detectors.scores import ANOMALY_THRESHOLD, Scores
from monitor.table import SeriesTable
from streamwatch.promapi import Columns
from streamwatch.series import SeriesKey, label_text, series_key

log = logging.getLogger(__name__)

Accept = Callable[[Mapping[str, str]], bool]
# Called by ``observe`` with every scored matrix: (watch, values, times, scores), rows as in the table.
Observer = Callable[["QueryWatch", np.ndarray, np.ndarray, Scores], None]


def exported_labels(query: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The input series' labels without ``__name__``, plus ``metric``; a clash becomes ``exported_<name>``."""
    out = {("exported_" + k if k in RESERVED_LABELS else k): v for k, v in labels.items() if k != "__name__"}
    out["metric"] = query
    return out


def describe(labels: Mapping[str, str]) -> str:
    """``name{a="1"}``, for log lines."""
    return labels.get("__name__", "") + "{" + label_text(series_key(labels), drop=("__name__",)) + "}"


def layout(r: np.ndarray, ts: np.ndarray, xs: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of rows ``r`` as ``(rows, T)`` value and time matrices, each row's in time order (NaN: no
    point). A read holds each series' points together and in time order, so a point's column is its
    place in its series' run.

    >>> x, t = layout(np.array([1, 1, 0]), np.array([10.0, 20.0, 10.0]), np.array([5.0, 6.0, 7.0]), 2)
    >>> x.tolist()
    [[7.0, nan], [5.0, 6.0]]
    """
    if not r.size:
        return np.full((rows, 0), np.nan), np.full((rows, 0), np.nan)
    starts = np.flatnonzero(np.concatenate(([True], r[1:] != r[:-1])))
    lengths = np.diff(np.append(starts, r.size))
    col = np.arange(r.size) - np.repeat(starts, lengths)
    x, t = np.full((rows, int(lengths.max())), np.nan), np.full((rows, int(lengths.max())), np.nan)
    x[r, col] = xs
    t[r, col] = ts
    return x, t


def sample_spacing(t: np.ndarray, before: np.ndarray) -> float:
    """The median of the gaps between each series' consecutive points in ``t`` (``(rows, T)``, NaN: no
    point), counting from ``before`` (each row's newest point already seen); NaN when there is none. What
    one scored point of the query stands for, in seconds: the incident detector weighs anomalies by it.

    >>> t = np.array([[30.0, 45.0], [np.nan, np.nan], [30.0, np.nan]])
    >>> sample_spacing(t, np.array([15.0, 10.0, -np.inf]))
    15.0
    """
    if not t.size:
        return math.nan
    gaps = np.diff(np.concatenate([before[: t.shape[0], None], t], axis=1), axis=1)
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
    return float(np.median(gaps)) if gaps.size else math.nan


@dataclass
class CycleReport:
    """What one cycle did to one query's series."""

    scored: int = 0
    anomalies: int = 0
    admitted: int = 0
    refused: int = 0
    dropped: int = 0
    nonfinite: int = 0
    max_score: float = 0.0  # 0.0 for an empty cycle
    spacing: float = math.nan  # median seconds between a series' consecutive points (NaN: none seen)
    # Absolute errors of the finite points with an expected value, and their ratios to non-zero actuals.
    error_sum: float = 0.0
    error_n: int = 0
    ratio_sum: float = 0.0
    ratio_n: int = 0

    @property
    def mae(self) -> float:
        """Mean absolute error, in the metric's unit; NaN when no point had an expected value."""
        return self.error_sum / self.error_n if self.error_n else math.nan

    @property
    def mape(self) -> float:
        """Mean absolute percentage error as a ratio; points whose actual is 0 are left out (NaN: none)."""
        return self.ratio_sum / self.ratio_n if self.ratio_n else math.nan

    def add(self, other: CycleReport) -> None:
        """Take in a second pass over the same cycle (series that got their model meanwhile)."""
        for name in (
            "scored",
            "anomalies",
            "admitted",
            "refused",
            "dropped",
            "nonfinite",
            "error_n",
            "ratio_n",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.error_sum += other.error_sum
        self.ratio_sum += other.ratio_sum
        self.max_score = max(self.max_score, other.max_score)
        if math.isnan(self.spacing):
            self.spacing = other.spacing


class QueryWatch:
    """The series of one query and their detector. Public: ``observe``, ``waiting``, ``install``,
    ``fail``, ``restore``, ``drop_stale``, ``read_from``, ``warming``."""

    def __init__(
        self,
        query: QueryConfig,
        detector: Detector,
        accept: Accept | None = None,
        prefer: Mapping[str, str] | None = None,
    ):
        self.query = query
        self.detector = detector
        self.accept = accept
        # Admitted first when several new series arrive at once (the positional form's training labels).
        self.prefer = {k: v for k, v in (prefer or {}).items() if k != "__name__"}
        self.table = SeriesTable()
        self.detector.resize(0)
        self.refused: dict[SeriesKey, float] = {}  # key -> last seen, so each is counted once
        self.refused_total = 0
        self.refusal_logged = False
        self.dropped_total = 0
        self.texts: set[str] = set()  # exported label sets in use (two inputs may differ only in __name__)
        self.duplicates_logged = False
        # Sees every point scored, with its band and score (the backtest's record); None in the monitor.
        self.observer: Observer | None = None

    # --- reading ----------------------------------------------------------------------------------

    def read_from(self, fallback: float, active_since: float) -> float:
        """Where the next read must start: the oldest newest point among ready series still reporting.

        Series silent since before ``active_since`` (the last cycle that read Prometheus) do not hold the
        read window open while they wait to go stale; ``fallback`` is used when there are none.
        """
        c = self.table.col
        marks = c["trained_until"][c["ready"] & (c["last_seen"] >= active_since)]
        marks = marks[np.isfinite(marks)]
        return float(marks.min()) if marks.size else fallback

    def observe(self, read: Columns, now: float) -> CycleReport:
        """Admit new series, then score every ready series' points newer than what it has seen."""
        report = CycleReport()
        rows = self._rows(read, now, report)
        c = self.table.col  # after admission, which may have grown the table
        srow = np.repeat(rows, read.counts)
        watched = srow >= 0
        srow_safe = np.where(watched, srow, 0)
        new = watched & (read.ts > c["trained_until"][srow_safe])
        c["last_seen"][srow[new]] = now
        keep = new & c["ready"][srow_safe]
        if not keep.any():
            return report
        r, ts, xs = srow[keep], read.ts[keep], read.values[keep]
        report.nonfinite = int(np.count_nonzero(np.isnan(xs) | np.isinf(xs)))
        x, t = self._matrix(r, ts, xs)
        report.spacing = sample_spacing(t, c["trained_until"])
        c["seen"][r] = True
        scores = self.detector.update(x, t)
        if self.observer is not None:
            self.observer(self, x, t, scores)
        self._record(x, scores.score, scores.expected, scores.lower, scores.upper, report)
        np.maximum.at(c["trained_until"], r, ts)
        return report

    def begin_cycle(self) -> None:
        """A new cycle: the per-cycle figures start from 0 (``observe`` may run twice in one cycle)."""
        self.table.col["cycle_anomalies"][:] = 0

    def _rows(self, read: Columns, now: float, report: CycleReport) -> np.ndarray:
        """Each read series' row, -1 for those not watched; new keys are admitted here."""
        index = self.table.index
        keys = read.keys
        rows = np.fromiter(map(index.get, keys, itertools.repeat(-1)), np.intp, len(keys))
        fresh = np.flatnonzero(rows < 0).tolist()
        if fresh:
            fresh.sort(key=lambda i: (self._preferred(read.labels[i]), keys[i]))
            for i in fresh:
                rows[i] = self._admit(keys[i], read.labels[i], now, report)
        return rows

    def _preferred(self, labels: Mapping[str, str]) -> bool:
        """Sorts before (False) when the labels are the preferred ones."""
        return not (self.prefer and {k: v for k, v in labels.items() if k != "__name__"} == self.prefer)

    def _admit(self, key: SeriesKey, labels: Mapping[str, str], now: float, report: CycleReport) -> int:
        if self.accept is not None and not self.accept(labels):
            return -1
        if len(self.table) >= self.query.max_series:
            if key not in self.refused:
                self.refused_total += 1
                report.refused += 1
            self.refused[key] = now
            if not self.refusal_logged:
                self._log_refusal(labels)
                self.refusal_logged = True
            return -1
        self.refused.pop(key, None)
        text = label_text(series_key(exported_labels(self.query.name, labels)))
        if text in self.texts:
            if not self.duplicates_logged:
                log.warning(
                    "query %s: several series differ only in their metric name (%s); one is watched "
                    "(give each metric name its own query)",
                    self.query.name,
                    labels.get("__name__", ""),
                )
                self.duplicates_logged = True
            return -1
        self.texts.add(text)
        row = self.table.add(key, dict(labels), text)
        self._sync_rows()
        self.detector.reset([row])
        report.admitted += 1
        return row

    def _log_refusal(self, labels: Mapping[str, str]) -> None:
        if self.query.max_series == 1:  # the positional form: one series, one detector
            watched = next(lab for lab in self.table.labels if lab is not None)
            log.warning(
                "the query returns several series; watching only %s (to watch every series with its own "
                "detector, run monitor.py --config with [[monitor.queries]])",
                describe(watched),
            )
            return
        log.warning(
            "query %s: %d series watched (max_series); refusing new ones such as %s "
            "(counted in streamwatch_monitor_series_refused_total)",
            self.query.name,
            self.query.max_series,
            describe(labels),
        )

    def _sync_rows(self) -> None:
        if self.detector.rows != self.table.capacity:
            self.detector.resize(self.table.capacity)

    def _matrix(self, r: np.ndarray, ts: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return layout(r, ts, xs, self.table.capacity)

    def _record(
        self,
        x: np.ndarray,
        score: np.ndarray,
        expected: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        report: CycleReport,
    ) -> None:
        c = self.table.col
        scored = ~np.isnan(x)  # +/-Inf included: scored as anomalies
        n = scored.sum(axis=1)
        rows = np.flatnonzero(n)
        flagged = (score > ANOMALY_THRESHOLD).sum(axis=1)
        c["samples"] += n
        c["anomalies"] += flagged
        c["cycle_anomalies"] += flagged
        c["score"][rows] = np.nanmax(np.where(scored, score, -np.inf), axis=1)[rows]
        finite = np.isfinite(x)
        has = finite.any(axis=1)
        last = x.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
        at = (np.flatnonzero(has), last[has])
        for name, v in (("actual", x), ("expected", expected), ("lower", lower), ("upper", upper)):
            c[name][at[0]] = v[at]
        report.scored = int(n.sum())
        report.anomalies = int(flagged.sum())
        report.max_score = float(c["score"][rows].max()) if rows.size else 0.0
        known = finite & ~np.isnan(expected)
        err = np.abs(x[known] - expected[known])
        nonzero = x[known] != 0
        report.error_sum, report.error_n = float(err.sum()), int(err.size)
        report.ratio_sum = float(np.sum(err[nonzero] / np.abs(x[known][nonzero])))
        report.ratio_n = int(np.count_nonzero(nonzero))

    # --- models -----------------------------------------------------------------------------------

    def waiting(self) -> np.ndarray:
        """Rows admitted without a model yet (the shell trains them)."""
        c = self.table.col
        return np.flatnonzero(self.table.used & ~c["ready"])

    def install(self, rows: np.ndarray, trained: Detector, trained_until: np.ndarray) -> None:
        """Give ``rows`` their models (``trained``'s rows, in the same order): they score from the point
        after ``trained_until``."""
        rows = np.asarray(rows, dtype=np.intp)
        self.detector.put(rows, trained)
        c = self.table.col
        c["ready"][rows] = True
        c["trained_until"][rows] = np.maximum(c["trained_until"][rows], trained_until)

    def fail(self, rows: np.ndarray) -> None:
        """Series whose model could not be made are forgotten; they are admitted afresh when read again."""
        self._remove(np.asarray(rows, dtype=np.intp))

    def restore(
        self,
        labels: list[dict[str, str]],
        saved: Detector,
        columns: Mapping[str, np.ndarray],
        now: float,
    ) -> int:
        """Watch series again with the state they had before a restart (``monitor.snapshot``).

        Each passes the same ``accept`` and ``max_series`` checks as a new series, scores from the point
        after its ``trained_until``, and goes stale from its ``last_seen`` as if the process had never
        stopped (one stale by ``now`` is not restored). A restored series is exported again only once
        Prometheus returns it: until then it may belong to a target that has moved away. Returns how
        many were restored."""
        take: list[int] = []
        rows: list[int] = []
        horizon = now - self.query.stale_after
        for i, lab in enumerate(labels):
            key = series_key(lab)
            if key in self.table.index or (self.accept is not None and not self.accept(lab)):
                continue
            if columns["last_seen"][i] < horizon or len(self.table) >= self.query.max_series:
                continue
            text = label_text(series_key(exported_labels(self.query.name, lab)))
            if text in self.texts:
                continue
            self.texts.add(text)
            rows.append(self.table.add(key, lab, text))
            take.append(i)
        if not rows:
            return 0
        self._sync_rows()
        idx = np.array(rows, dtype=np.intp)
        self.detector.put(idx, saved.take(take))
        c = self.table.col
        for name, values in columns.items():
            c[name][idx] = np.asarray(values)[take]
        c["ready"][idx] = True
        c["seen"][idx] = False
        return len(rows)

    # --- leaving ----------------------------------------------------------------------------------

    def drop_stale(self, now: float) -> int:
        """Forget series (and refusals) with no new point for ``stale_after`` seconds; returns how many."""
        horizon = now - self.query.stale_after
        c = self.table.col
        gone = np.flatnonzero(self.table.used & (c["last_seen"] < horizon))
        self._remove(gone)
        self.refused = {k: t for k, t in self.refused.items() if t >= horizon}
        self.dropped_total += int(gone.size)
        return int(gone.size)

    def _remove(self, rows: np.ndarray) -> None:
        if not rows.size:
            return
        for r in rows.tolist():
            self.texts.discard(self.table.texts[r])
        self.table.remove(rows)
        self.detector.reset(rows)

    # --- figures ----------------------------------------------------------------------------------

    def count_after(self, read: Columns) -> int:
        """Points of ready series in ``read`` after what each has seen (a skipped gap's size)."""
        index = self.table.index
        c = self.table.col
        rows = np.fromiter(map(index.get, read.keys, itertools.repeat(-1)), np.intp, len(read))
        srow = np.repeat(rows, read.counts)
        ok = srow >= 0
        safe = np.where(ok, srow, 0)
        return int(np.count_nonzero(ok & c["ready"][safe] & (read.ts > c["trained_until"][safe])))

    def warming(self) -> int:
        """Series whose detector is still in its warm-up (scores 0 until it has seen enough)."""
        c = self.table.col
        return int(np.count_nonzero(self.table.used & c["ready"] & self.detector.warming()))

    def exported(self) -> np.ndarray:
        """Rows whose figures are exported: with a model, and returned by Prometheus since start."""
        c = self.table.col
        return np.flatnonzero(self.table.used & c["ready"] & c["seen"])

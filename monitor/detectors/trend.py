"""Trend detector: a rolling least-squares line over a long window, for slow trouble band detectors adapt to.

The window is the last ``window - 1`` learnt points plus the point being scored. A straight line is
fitted by least squares against the timestamps; the detector reports its direction (+1 rising, -1
falling), slope per hour and r squared (the share of the window's variance the line explains). It flags
a *sustained* rise or fall: score = ``r2 / r2_threshold``, so > 1 exactly when the line explains more than
``r2_threshold`` of the variance. Why r squared and not the slope alone: a seasonal wave averaged over
several periods fits a nearly flat line that explains almost nothing (r2 near 0), and a single level
shift explains at most 0.75 of the variance of a step (the default threshold 0.8 stays above that), while a
drift that rises by several noise widths across the window fits a line well.
With ``min_deviation`` the fitted rise across the window (|slope| times the window's span) must exceed it
as well; ``direction`` ``above`` keeps rises only, ``below`` falls only. ``expected`` is the line's value
at the scored point; the method has no band (lower/upper NaN). Warm-up: scores 0 until the window is full.

Complexity: O(1) per point (running sums of t, x, t², tx, x², re-anchored every window); O(window)
memory. Vectorised: chunked cumulative sums, O(1) per point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import Score, Scores
from monitor.detectors.options import DetectorOptions
from monitor.detectors.rolling import RollingMoments, window_sums


@dataclass(frozen=True)
class TrendParams(DetectorOptions):
    window: int = 300
    r2_threshold: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 3:
            raise ValueError(f"window must be >= 3, got {self.window}")
        if not 0 < self.r2_threshold <= 1:
            raise ValueError(f"r2_threshold must be in (0, 1], got {self.r2_threshold}")


@dataclass(frozen=True)
class TrendScore(Score):
    direction: int = 0
    slope_per_hour: float = 0.0
    r2: float = 0.0


@dataclass(frozen=True)
class TrendScores(Scores):
    direction: np.ndarray = None  # type: ignore[assignment]
    slope_per_hour: np.ndarray = None  # type: ignore[assignment]
    r2: np.ndarray = None  # type: ignore[assignment]

    def at(self, i: int) -> TrendScore:
        return TrendScore(
            float(self.score[i]),
            float(self.expected[i]),
            float(self.lower[i]),
            float(self.upper[i]),
            int(self.direction[i]),
            float(self.slope_per_hour[i]),
            float(self.r2[i]),
        )


def _fit(
    p: TrendParams, stt: np.ndarray, sxx: np.ndarray, stx: np.ndarray, span: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope (per second), r squared and score from centred sums; the same code serves both paths."""
    ok = (stt > 0) & (sxx > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(stt > 0, stx / np.where(stt > 0, stt, 1.0), 0.0)
        r2 = np.where(ok, stx * stx / np.where(ok, stt * sxx, 1.0), 0.0)
    r2 = np.minimum(r2, 1.0)
    score = r2 / p.r2_threshold
    if p.min_deviation > 0:
        score = np.minimum(score, np.abs(slope) * span / p.min_deviation)
    if p.direction == "above":
        score = np.where(slope > 0, score, 0.0)
    elif p.direction == "below":
        score = np.where(slope < 0, score, 0.0)
    return slope, r2, score


class TrendDetector:
    """Rolling least-squares trend detector (window 300 points, r squared threshold 0.8 by default)."""

    Params = TrendParams

    def __init__(self, params: TrendParams | None = None) -> None:
        self.p = params or TrendParams()
        self._win = RollingMoments(self.p.window - 1, with_t=True)

    def score_one(self, x: float, t: float) -> TrendScore:
        w = self._win
        if len(w) < self.p.window - 1:
            return TrendScore(0.0)
        # Add x hypothetically: drop the oldest is not needed, the learnt window holds window-1 points.
        n = len(w) + 1
        dx, dt = float(x) - w.cx, float(t) - w.ct
        sx, st = w.sx + dx, w.st + dt
        sxx = max(w.sxx + dx * dx - sx * sx / n, 0.0)
        stt = max(w.stt + dt * dt - st * st / n, 0.0)
        stx = w.stx + dt * dx - st * sx / n
        span = float(t) - w.ts[0]
        slope, r2, score = (
            float(v[0])
            for v in _fit(self.p, np.array([stt]), np.array([sxx]), np.array([stx]), np.array([span]))
        )
        expected = w.cx + sx / n + slope * (dt - st / n)
        return TrendScore(score, expected, math.nan, math.nan, int(np.sign(slope)), slope * 3600.0, r2)

    def learn_one(self, x: float, t: float) -> None:
        self._win.push(float(x), float(t))

    def update_one(self, x: float, t: float) -> TrendScore:
        s = self.score_one(x, t)
        self.learn_one(x, t)
        return s

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> TrendScores:
        xs = np.asarray(xs, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        w, n = self.p.window, len(xs)
        h = len(self._win)
        fx = np.concatenate((np.fromiter(self._win.xs, np.float64, h), xs))
        ft = np.concatenate((np.fromiter(self._win.ts, np.float64, h), ts))
        score, expected, slope, r2 = np.zeros(n), np.full(n, np.nan), np.zeros(n), np.zeros(n)
        first = max(w - 1 - h, 0)  # point i (full index h+i) uses the window ending at h+i
        if first < n:
            st = window_sums({"t": ft, "x": fx}, w, (("t", "t"), ("x", "x"), ("t", "x")))
            k = slice(first + h - w + 1, None)
            span = ft[h + first :] - ft[first + h - w + 1 : len(ft) - w + 1]
            sl, rr, sc = _fit(self.p, st["Stt"][k], st["Sxx"][k], st["Stx"][k], span)
            score[first:], slope[first:], r2[first:] = sc, sl, rr
            expected[first:] = st["mean_x"][k] + sl * (ts[first:] - st["mean_t"][k])
        self._win.load(fx[-(w - 1) :], ft[-(w - 1) :])
        nan = np.full(n, np.nan)
        return TrendScores(
            score=score,
            expected=expected,
            lower=nan,
            upper=nan.copy(),
            direction=np.sign(slope).astype(int),
            slope_per_hour=slope * 3600.0,
            r2=r2,
        )

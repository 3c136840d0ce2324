"""Trend detector: a rolling least-squares line over a long window, for slow trouble band detectors adapt to.

Each value is first smoothed by a moving average over ``smooth`` points (set it to about one seasonal
period: 50 points = 100 s at the simulator's 2 s, so its 80 s and 100 s triangle waves average out), then
a straight line is fitted by least squares against the timestamps over the last ``window`` smoothed
points (the scored point's included). It reports direction (+1 rising, -1 falling), slope per hour and
r squared. A rise or fall is *sustained* when the line explains the smoothed series well (r2 over
``r2_threshold``) and *relevant* when the rise across the window (|slope| x span) is at least
``min_rise`` times the raw window's standard deviation; the score is
``min(r2 / r2_threshold, rise / (min_rise * sd))``, > 1 exactly when both hold. Seasonal waves alone fit a
nearly flat smoothed line (small rise next to their wide spread); a drift rising by a good part of
the range fits a line well and rises far. Measured on the simulator's waves (2 s ticks, defaults:
window 450 = 15 min): waves alone score at most 0.07; drifts of +/-40% to 60% of the range over 10 or
20 minutes all score above 1, the first flag 4 to 11 minutes into the drift.
Options: ``min_deviation`` also requires the rise across the window to exceed it (score capped at
``rise / min_deviation``); ``direction`` ``above`` keeps rises, ``below`` falls. ``expected`` is the
fitted line at the scored point (a smoothed level); there is no band (lower/upper NaN).
Warm-up: scores 0 until ``smooth + window - 2`` values have been learnt.

Complexity: O(1) per point (three running-sum windows, re-anchored every window, see
``rolling.RollingMoments``); O(window) memory. Vectorised: chunked cumulative sums, O(1) per point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import OnlineDetector
from monitor.detectors.options import DetectorOptions
from monitor.detectors.rolling import RollingMoments, window_sums
from monitor.detectors.scores import Score, Scores


@dataclass(frozen=True)
class TrendParams(DetectorOptions):
    window: int = 450
    smooth: int = 50
    r2_threshold: float = 0.6
    min_rise: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 3:
            raise ValueError(f"window must be >= 3, got {self.window}")
        if not 1 <= self.smooth <= self.window:
            raise ValueError(f"smooth must be between 1 and window ({self.window}), got {self.smooth}")
        if not 0 < self.r2_threshold <= 1:
            raise ValueError(f"r2_threshold must be in (0, 1], got {self.r2_threshold}")
        if not self.min_rise >= 0:
            raise ValueError(f"min_rise must be >= 0, got {self.min_rise}")


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


FLAT = 1e-12
"""A smoothed window whose spread is below this fraction of its level is flat: what is left is rounding
(a moving average of equal values differs in the last bit), not a trend."""


def _fit_one(
    p: TrendParams, stt: float, syy: float, sty: float, span: float, sd_raw: float, level: float
) -> tuple[float, float, float]:
    """Scalar twin of :func:`_fit` for the streaming path (numpy per point would cost ~50 µs)."""
    slope = sty / stt if stt > 0 else 0.0
    den = stt * syy
    flat = syy <= p.window * (FLAT * level) ** 2
    r2 = min(sty * sty / den, 1.0) if den > 0 and not flat else 0.0
    rise = abs(slope) * span
    score = r2 / p.r2_threshold
    if p.min_rise > 0:
        floor = p.min_rise * sd_raw
        rel = rise / floor if floor > 0 else math.inf
        score = min(score, rel if rise > 0 else 0.0)
    if p.min_deviation > 0:
        score = min(score, rise / p.min_deviation)
    if (p.direction == "above" and not slope > 0) or (p.direction == "below" and not slope < 0):
        score = 0.0
    return slope, r2, score


def _fit(
    p: TrendParams,
    stt: np.ndarray,
    syy: np.ndarray,
    sty: np.ndarray,
    span: np.ndarray,
    sd_raw: np.ndarray,
    level: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope (per second), r squared and score from centred sums, as :func:`_fit_one` for each point."""
    den = stt * syy
    ok = (den > 0) & (syy > p.window * (FLAT * level) ** 2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = np.where(stt > 0, sty / np.where(stt > 0, stt, 1.0), 0.0)
        r2 = np.minimum(np.where(ok, sty * sty / np.where(ok, den, 1.0), 0.0), 1.0)
        rise = np.abs(slope) * span
        score = r2 / p.r2_threshold
        if p.min_rise > 0:
            floor = p.min_rise * sd_raw
            rel = np.where(floor > 0, rise / np.where(floor > 0, floor, 1.0), np.inf)
            score = np.minimum(score, np.where(rise > 0, rel, 0.0))
        if p.min_deviation > 0:
            score = np.minimum(score, rise / p.min_deviation)
    if p.direction == "above":
        score = np.where(slope > 0, score, 0.0)
    elif p.direction == "below":
        score = np.where(slope < 0, score, 0.0)
    return slope, r2, score


class TrendDetector(OnlineDetector):
    """Rolling least-squares trend detector (window 450, smoothing 50, r2 0.6, rise 0.5 sd by default).

    >>> d = TrendDetector(TrendParams(window=3, smooth=1, r2_threshold=0.5, min_rise=0.0))
    >>> d.learn_one(0.0, 0.0)
    >>> d.learn_one(2.0, 1.0)
    >>> s = d.score_one(4.0, 2.0)  # 0, 2, 4: a perfect line rising 2 per second
    >>> s.direction, s.slope_per_hour, s.r2, s.score
    (1, 7200.0, 1.0, 2.0)
    """

    Params = TrendParams

    def __init__(self, params: TrendParams | None = None) -> None:
        self.p = params or TrendParams()
        w = self.p.window
        self._ma = RollingMoments(max(self.p.smooth - 1, 1))  # raw values for the moving average
        self._raw = RollingMoments(w - 1)  # raw values for the window's spread
        self._fit = RollingMoments(w - 1, with_t=True)  # smoothed values and their timestamps

    def _smoothed(self, x: float) -> float | None:
        m = self.p.smooth
        if m == 1:
            return x
        ma = self._ma
        if len(ma) < m - 1:
            return None
        return ma.cx + (ma.sx + (x - ma.cx)) / m

    def score_one(self, x: float, t: float) -> TrendScore:
        x, t = float(x), float(t)
        y = self._smoothed(x)
        f, r = self._fit, self._raw
        if y is None or len(f) < self.p.window - 1 or len(r) < self.p.window - 1:
            return TrendScore(0.0)
        n = self.p.window
        dy, dt = y - f.cx, t - f.ct
        sy, st = f.sx + dy, f.st + dt
        syy = max(f.sxx + dy * dy - sy * sy / n, 0.0)
        stt = max(f.stt + dt * dt - st * st / n, 0.0)
        sty = f.stx + dt * dy - st * sy / n
        dx = x - r.cx
        sx = r.sx + dx
        sxx = max(r.sxx + dx * dx - sx * sx / n, 0.0)
        mean_y = f.cx + sy / n
        slope, r2, score = _fit_one(self.p, stt, syy, sty, t - f.ts[0], math.sqrt(sxx / n), abs(mean_y))
        expected = mean_y + slope * (dt - st / n)
        return TrendScore(score, expected, math.nan, math.nan, (slope > 0) - (slope < 0), slope * 3600.0, r2)

    def learn_one(self, x: float, t: float) -> None:
        x, t = float(x), float(t)
        y = self._smoothed(x)
        if self.p.smooth > 1:
            self._ma.push(x)
        self._raw.push(x)
        if y is not None:
            self._fit.push(y, t)

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> TrendScores:
        xs = np.asarray(xs, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        w, m, n = self.p.window, self.p.smooth, len(xs)
        h = len(self._raw)  # every learnt value while fewer than w - 1, else the last w - 1
        fx = np.concatenate((np.fromiter(self._raw.xs, np.float64, h), xs))
        # Smoothed value of batch point i: mean of fx[h+i-m+1 .. h+i], once m values exist.
        i0 = min(max(m - 1 - h, 0), n)
        ys = window_sums({"x": fx}, m, ())["mean_x"][h + i0 - m + 1 :] if m > 1 else xs
        g = len(self._fit)
        fy = np.concatenate((np.fromiter(self._fit.xs, np.float64, g), ys))
        ft = np.concatenate((np.fromiter(self._fit.ts, np.float64, g), ts[i0:]))
        score, expected, slope, r2 = np.zeros(n), np.full(n, np.nan), np.zeros(n), np.zeros(n)
        # Point i >= i0 sits at fy index g + i - i0 and at fx index h + i; both windows must be full.
        first = max(i0, w - 1 - g + i0, w - 1 - h)
        if first < n:
            fit = window_sums({"t": ft, "y": fy}, w, (("t", "t"), ("y", "y"), ("t", "y")))
            k = slice(g + first - i0 - w + 1, None)
            raw = window_sums({"x": fx}, w, (("x", "x"),))
            sd = np.sqrt(raw["Sxx"][h + first - w + 1 :] / w)
            span = ft[g + first - i0 :] - ft[g + first - i0 - w + 1 : len(ft) - w + 1]
            mean_y = fit["mean_y"][k]
            sl, rr, sc = _fit(self.p, fit["Stt"][k], fit["Syy"][k], fit["Sty"][k], span, sd, np.abs(mean_y))
            score[first:], slope[first:], r2[first:] = sc, sl, rr
            expected[first:] = mean_y + sl * fit["dlast_t"][k]
        if m > 1:
            self._ma.load(fx[-(m - 1) :])
        self._raw.load(fx[-(w - 1) :])
        self._fit.load(fy[-(w - 1) :], ft[-(w - 1) :])
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

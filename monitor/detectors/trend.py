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

Learning (``monitor.detectors.learning``): the trend has no band of its own, so a value is learnt capped
by its raw window's band ``mean +/- LEARN_SD * sd``: a spike does not bend the smoothed line.

Complexity: O(1) per point and row (three running-sum windows, re-anchored every window, see
``rolling.Moments``); state: the raw window, the smoothed window and its timestamps, about
``24 * window + 8 * smooth`` bytes a series (11 KiB at the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.detectors import learning
from monitor.detectors.base import Detector, State
from monitor.detectors.options import DetectorOptions
from monitor.detectors.rolling import Moments
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


def _fit(
    p: TrendParams,
    stt: np.ndarray,
    syy: np.ndarray,
    sty: np.ndarray,
    span: np.ndarray,
    sd_raw: np.ndarray,
    level: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope (per second), r squared and score from centred sums, for every row at once."""
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


LEARN_SD = 4.0
"""The band a value is learnt by: the raw window's mean +/- this many standard deviations."""


class TrendDetector(Detector):
    """Rolling least-squares trend detector (window 450, smoothing 50, r2 0.6, rise 0.5 sd by default).

    >>> d = TrendDetector(TrendParams(window=3, smooth=1, r2_threshold=0.5, min_rise=0.0))
    >>> d.learn_one(0.0, 0.0)
    >>> d.learn_one(2.0, 1.0)
    >>> s = d.score_one(4.0, 2.0)  # 0, 2, 4: a perfect line rising 2 per second
    >>> s.direction, s.slope_per_hour, s.r2, s.score
    (1, 7200.0, 1.0, 2.0)
    """

    Params = TrendParams

    def __init__(self, params: TrendParams | None = None, rows: int = 1) -> None:
        p = params or TrendParams()
        self.ma = Moments(p.smooth - 1, "ma.") if p.smooth > 1 else None  # raw values averaged with x
        self.raw = Moments(p.window - 1, "raw.")  # raw values for the window's spread
        self.fit = Moments(p.window - 1, "fit.", with_t=True)  # smoothed values and their timestamps
        super().__init__(p, rows)

    @property
    def warmup(self) -> int:
        return self.p.smooth + self.p.window - 2

    def fresh(self, n: int) -> State:
        state = {**self.raw.fresh(n), **self.fit.fresh(n)}
        if self.ma is not None:
            state.update(self.ma.fresh(n))
        return state

    def _smoothed(self, st: State, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the moving average ending at ``x``, True where the average has its ``smooth`` values)."""
        if self.ma is None:
            return x, np.ones(x.shape, dtype=bool)
        c, s, _ = self.ma.sums(st)
        return c + (s + (x - c)) / self.p.smooth, self.ma.full(st)

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> TrendScores:
        st = self.state
        n = self.p.window
        y, has_y = self._smoothed(st, x)
        ready = has_y & self.fit.full(st) & self.raw.full(st)
        fc, fs, fss = self.fit.sums(st, "x")
        tc, ts, tss = self.fit.sums(st, "t")
        dy, dt = y - fc, t - tc
        sy, stn = fs + dy, ts + dt
        syy = np.maximum(fss + dy * dy - sy * sy / n, 0.0)
        stt = np.maximum(tss + dt * dt - stn * stn / n, 0.0)
        sty = st["fit.stx"] + dt * dy - stn * sy / n
        rc, rs, rss = self.raw.sums(st)
        dx = x - rc
        sx = rs + dx
        sxx = np.maximum(rss + dx * dx - sx * sx / n, 0.0)
        mean_y = fc + sy / n
        span = t - self.fit.oldest(st, "t")
        slope, r2, score = _fit(self.p, stt, syy, sty, span, np.sqrt(sxx / n), np.abs(mean_y))
        slope = np.where(ready & ok, slope, 0.0)
        expected = np.where(ready, mean_y + slope * (dt - stn / n), np.nan)
        nan = np.full(x.shape, np.nan)
        out = TrendScores(
            score=np.where(ready, score, 0.0),
            expected=expected,
            lower=nan,
            upper=nan.copy(),
            direction=np.sign(slope).astype(np.int64),
            slope_per_hour=slope * 3600.0,
            r2=np.where(ready & ok, r2, 0.0),
        )
        # Learn, capped by the raw window's band (the learning rule), what scoring just used.
        _, mean, rsxx = self.raw.moments(st)
        half = LEARN_SD * np.sqrt(rsxx / max(n - 1, 1))
        band = np.where(self.raw.full(st), mean, np.nan)
        xl = learning.learnable(x, band, band - half, band + half)
        yl, has_yl = self._smoothed(st, xl)
        if self.ma is not None:
            self.ma.push(st, xl, ok)
        self.raw.push(st, xl, ok)
        self.fit.push(st, yl, ok & has_yl, t)
        return out

"""Simple-moving-average z-score: how many standard deviations ``x`` lies from the mean of the last w points.

Band: ``mean ± threshold * sd`` over the previous ``window`` values (sample standard deviation, ddof=1,
as river's ``RollingVar``); score = ``|x - mean| / (threshold * sd)``, so > 1 exactly when |z| > threshold.
Warm-up: until ``window`` values have been learnt the detector has no band and scores 0.

Complexity: streaming O(1) per point (running sums, re-anchored every ``window`` points, see
``rolling.RollingMoments``), O(window) memory; vectorised O(1) per point (chunked cumsum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import OnlineDetector
from monitor.detectors.options import DetectorOptions, finish, finish_one
from monitor.detectors.rolling import RollingMoments, window_sums
from monitor.detectors.scores import Score, Scores


@dataclass(frozen=True)
class SMAParams(DetectorOptions):
    window: int = 10
    threshold: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")


class SMAZScore(OnlineDetector):
    """Moving-average z-score detector (window 10, threshold 2.0 by default).

    >>> d = SMAZScore(SMAParams(window=3, threshold=2.0))
    >>> for t, x in enumerate([1.0, 2.0, 3.0]):
    ...     d.learn_one(x, float(t))
    >>> s = d.score_one(5.0, 3.0)  # mean 2, sample sd 1: band 2 +/- 2, and (5 - 2) / 2 = 1.5
    >>> (s.lower, s.expected, s.upper), s.score, s.anomalous
    ((0.0, 2.0, 4.0), 1.5, True)
    """

    Params = SMAParams

    def __init__(self, params: SMAParams | None = None) -> None:
        self.p = params or SMAParams()
        self._win = RollingMoments(self.p.window)

    def _band(self) -> tuple[float, float, float]:
        if not self._win.full:
            return math.nan, math.nan, math.nan
        mean, sxx = self._win.mean_var()
        half = self.p.threshold * math.sqrt(sxx / (self.p.window - 1))
        return mean, mean - half, mean + half

    def score_one(self, x: float, t: float) -> Score:
        return finish_one(self.p, x, *self._band())

    def learn_one(self, x: float, t: float) -> None:
        self._win.push(float(x))

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        w = self.p.window
        hist = np.fromiter(self._win.xs, dtype=np.float64, count=len(self._win.xs))
        full = np.concatenate((hist, xs))
        n, h = len(xs), len(hist)
        expected = np.full(n, np.nan)
        half = np.full(n, np.nan)
        # Point i of the batch (index h+i of `full`) is scored against the window ending at h+i-1.
        st = window_sums({"x": full[:-1]}, w, (("x", "x"),))
        if len(st["mean_x"]):
            first = max(w - h, 0)  # first batch index with a full window before it
            expected[first:] = st["mean_x"][first + h - w :]
            half[first:] = self.p.threshold * np.sqrt(st["Sxx"][first + h - w :] / (w - 1))
        self._win.load(full[-w:])
        return finish(self.p, xs, expected, expected - half, expected + half)

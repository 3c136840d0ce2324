"""Simple-moving-average z-score: how many standard deviations ``x`` lies from the mean of the last w points.

Band: ``mean ± threshold * sd`` over the previous ``window`` values (sample standard deviation, ddof=1,
as river's ``RollingVar``); score = ``|x - mean| / (threshold * sd)``, so > 1 exactly when |z| > threshold.
Warm-up: until ``window`` values have been learnt the detector has no band and scores 0.

Complexity: O(1) per point and row (running sums, re-anchored every ``window`` points, see
``rolling.Moments``); state: the window and a few sums, ``8 * window + 88`` bytes a series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import Detector, State
from monitor.detectors.options import DetectorOptions
from monitor.detectors.rolling import Moments
from monitor.detectors.scores import Scores


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


class SMAZScore(Detector):
    """Moving-average z-score detector (window 10, threshold 2.0 by default).

    >>> d = SMAZScore(SMAParams(window=3, threshold=2.0))
    >>> for t, x in enumerate([1.0, 2.0, 3.0]):
    ...     d.learn_one(x, float(t))
    >>> s = d.score_one(5.0, 3.0)  # mean 2, sample sd 1: band 2 +/- 2, and (5 - 2) / 2 = 1.5
    >>> (s.lower, s.expected, s.upper), s.score, s.anomalous
    ((0.0, 2.0, 4.0), 1.5, True)
    """

    Params = SMAParams

    def __init__(self, params: SMAParams | None = None, rows: int = 1) -> None:
        p = params or SMAParams()
        self.win = Moments(p.window, "w.")
        super().__init__(p, rows)

    @property
    def warmup(self) -> int:
        return self.p.window

    def fresh(self, n: int) -> State:
        return self.win.fresh(n)

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        st = self.state
        count, mean, sxx = self.win.moments(st)
        expected = np.where(count >= self.p.window, mean, np.nan)
        half = self.p.threshold * np.sqrt(sxx / (self.p.window - 1))
        s = self.finish(x, expected, expected - half, expected + half)
        self.win.push(st, self.learnable(x, s), ok)
        return s

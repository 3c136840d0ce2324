"""EMA z-score: distance from an exponentially weighted mean, in exponentially weighted standard deviations.

Recurrences (Finch, "Incremental calculation of weighted mean and variance", 2009), with ``d = x - mean``:
``mean += alpha * d``; ``var = (1 - alpha) * (var + alpha * d**2)``. The first value sets the mean; the
detector scores 0 until it has learnt ``warmup`` values (default ``ceil(2 / alpha)``, the EMA's span).
Band: ``mean ± threshold * sqrt(var)``; score = ``|x - mean| / (threshold * sd)``.

Complexity: O(1) per point and two floats of state per series; a query's series are stepped together,
one time column at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import Detector, State
from monitor.detectors.options import DetectorOptions
from monitor.detectors.scores import Scores


@dataclass(frozen=True)
class EMAParams(DetectorOptions):
    alpha: float = 0.1
    threshold: float = 2.5
    warmup: int = 0  # 0: ceil(2 / alpha)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")

    @property
    def warmup_n(self) -> int:
        return self.warmup or max(math.ceil(2 / self.alpha), 2)


class EMAZScore(Detector):
    """Exponentially weighted z-score detector (alpha 0.1, threshold 2.5 by default).

    >>> d = EMAZScore(EMAParams(alpha=0.5, threshold=2.0, warmup=2))
    >>> d.update_one(0.0, 0.0).score, d.update_one(2.0, 1.0).score  # warming up: scores 0
    (0.0, 0.0)
    >>> s = d.score_one(4.0, 2.0)  # mean 1, variance 1: band 1 +/- 2
    >>> (s.lower, s.expected, s.upper), s.score
    ((-1.0, 1.0, 3.0), 1.5)
    """

    Params = EMAParams

    def fresh(self, n: int) -> State:
        return {"mean": np.zeros(n), "var": np.zeros(n)}

    @property
    def warmup(self) -> int:
        return self.p.warmup_n

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        st = self.state
        n, mean, var = st["n"], st["mean"], st["var"]
        expected = np.where(n < self.p.warmup_n, np.nan, mean)
        half = self.p.threshold * np.sqrt(var)
        scores = self.finish(x, expected, expected - half, expected + half)
        a = self.p.alpha
        first = n == 0  # the first value only seeds the mean
        d = self.learnable(x, scores) - mean
        np.copyto(var, np.where(first, 0.0, (1 - a) * (var + a * d * d)), where=ok)
        np.copyto(mean, np.where(first, x, mean + a * d), where=ok)
        return scores

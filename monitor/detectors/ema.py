"""EMA z-score: distance from an exponentially weighted mean, in exponentially weighted standard deviations.

Recurrences (Finch, "Incremental calculation of weighted mean and variance", 2009), with ``d = x - mean``:
``mean += alpha * d``; ``var = (1 - alpha) * (var + alpha * d**2)``. The first value sets the mean; the
detector scores 0 until it has learnt ``warmup`` values (default ``ceil(2 / alpha)``, the EMA's span).
Band: ``mean ± threshold * sqrt(var)``; score = ``|x - mean| / (threshold * sd)``.

Complexity: O(1) per point and O(1) memory. Vectorised path: both recurrences are first-order linear
filters once the means are known, so ``scipy.signal.lfilter`` computes them in C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from monitor.detectors.base import OnlineDetector, Score, Scores
from monitor.detectors.options import DetectorOptions, finish, finish_one


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


class EMAZScore(OnlineDetector):
    """Exponentially weighted z-score detector (alpha 0.1, threshold 2.5 by default).

    >>> d = EMAZScore(EMAParams(alpha=0.5, threshold=2.0, warmup=2))
    >>> d.update_one(0.0, 0.0).score, d.update_one(2.0, 1.0).score  # warming up: scores 0
    (0.0, 0.0)
    >>> s = d.score_one(4.0, 2.0)  # mean 1, variance 1: band 1 +/- 2
    >>> (s.lower, s.expected, s.upper), s.score
    ((-1.0, 1.0, 3.0), 1.5)
    """

    Params = EMAParams

    def __init__(self, params: EMAParams | None = None) -> None:
        self.p = params or EMAParams()
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    def score_one(self, x: float, t: float) -> Score:
        if self.n < self.p.warmup_n:
            return finish_one(self.p, x, math.nan, math.nan, math.nan)
        half = self.p.threshold * math.sqrt(self.var)
        return finish_one(self.p, x, self.mean, self.mean - half, self.mean + half)

    def learn_one(self, x: float, t: float) -> None:
        x = float(x)
        if self.n == 0:
            self.mean, self.var = x, 0.0
        else:
            a = self.p.alpha
            d = x - self.mean
            self.mean += a * d
            self.var = (1 - a) * (self.var + a * d * d)
        self.n += 1

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        n = len(xs)
        if n == 0:
            return finish(self.p, xs, xs, xs, xs)
        a = self.p.alpha
        start = 0
        if self.n == 0:  # the first value only seeds the mean
            self.mean, self.var, start = float(xs[0]), 0.0, 1
        # prior[i] = mean before learning xs[i]; means after learning follow m_i = (1-a) m_{i-1} + a x_i.
        rest = xs[start:]
        if len(rest) == 0:  # a batch of one value that only seeded the mean
            self.n += n
            return finish(self.p, xs, np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))
        # Filtered about the current mean, so a run of values equal to it stays exactly on it (as the
        # streaming ``mean += a * 0`` does) instead of drifting by rounding into a zero-width band.
        ref = self.mean
        after = lfilter([a], [1.0, -(1 - a)], rest - ref, zi=[0.0])[0] + ref
        prior = np.concatenate(([self.mean] * (start + 1), after[:-1]))
        d = rest - prior[start:]
        vafter, _ = lfilter([(1 - a) * a], [1.0, -(1 - a)], d * d, zi=[(1 - a) * self.var])
        vprior = np.concatenate(([self.var] * (start + 1), vafter[:-1]))
        counts = self.n + np.arange(n)
        warm = counts < self.p.warmup_n
        expected = np.where(warm, np.nan, prior)
        half = self.p.threshold * np.sqrt(np.maximum(vprior, 0.0))
        self.mean, self.var = float(after[-1]), float(vafter[-1])
        self.n += n
        return finish(self.p, xs, expected, expected - half, expected + half)

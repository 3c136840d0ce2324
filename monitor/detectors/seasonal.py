"""The seasonal baseline (``monitor.seasonal``) as a streaming detector: Prophet's daily shapes, cheaply.

The detector keeps the last ``history`` samples and fits the profile on them once ``warmup`` samples
have been learnt, then again every ``refit_every`` samples. The period is ``period`` when given, else
found at the first fit that shows one (``monitor.period``) and kept from then on, as the monitor keeps
Prophet's; while none is found the model is flat (the history's median, a median-and-MAD band), and
detection is tried again at each refit. The level is the median over the last ``refit_every`` samples
(or the last period, if longer), so an anomaly under way at a refit does not become the baseline.
Band: ``expected +/- k * sigma``, scored by ``options.finish`` like every other detector (score > 1:
outside the band); before the first fit every point scores 0.

Streaming order holds: a point is scored against the model fitted on the points before it, and a refit
happens after the point that completes a schedule step, in both paths, so ``update_many`` equals
``update_one`` point by point. Non-finite values are scored but never learnt.

Complexity: scoring is O(1) per point (an index into the profile); a refit is O(h log h) for a history
of h samples, amortised over ``refit_every`` points. Memory: 16 bytes per sample of history (time and
value), so 0.2 MiB per series at the default 14,400.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import OnlineDetector
from monitor.detectors.options import DetectorOptions, finish, finish_one
from monitor.detectors.scores import Score, Scores
from monitor.period import PeriodError
from monitor.seasonal import SeasonalModel, find_period, fit


@dataclass(frozen=True)
class SeasonalParams(DetectorOptions):
    k: float = 4.0  # band half-width in robust sigmas of the in-sample residuals (as Prophet's band)
    period: float = 0.0  # seconds; 0: detect it from the history (kept once found)
    max_bins: int = 1440  # phase bins per period at most (a day in minutes); fewer when samples are fewer
    smooth: int = 1  # neighbouring bins on each side averaged into a bin holding few samples
    warmup: int = 600  # samples learnt before the first fit
    refit_every: int = 1800  # samples between refits
    history: int = 14_400  # most recent samples kept and fitted on

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.k > 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.period < 0:
            raise ValueError(f"period must be >= 0, got {self.period}")
        if self.max_bins < 1 or self.smooth < 0:
            raise ValueError(f"max_bins must be >= 1 and smooth >= 0, got {self.max_bins}, {self.smooth}")
        if self.warmup < 8 or self.refit_every < 1:
            raise ValueError(
                f"warmup must be >= 8 and refit_every >= 1, got {self.warmup}, {self.refit_every}"
            )
        if self.history < self.warmup:
            raise ValueError(f"history ({self.history}) must hold at least warmup ({self.warmup}) samples")


class SeasonalDetector(OnlineDetector):
    """Per-phase median profile with a residual band (k = 4, refit every 1,800 samples by default).

    >>> import numpy as np
    >>> ts = 2.0 * np.arange(700)
    >>> xs = np.where(np.arange(700) % 10 < 5, 100.0, 200.0)  # a square wave, period 20 s
    >>> xs[655] = 100.0  # a low sample where the wave is high
    >>> d = SeasonalDetector(SeasonalParams(period=20.0, warmup=600))
    >>> s = d.update_many(xs, ts)
    >>> float(s.expected[655]), bool(s.anomalous[655]), int(s.anomalous.sum())
    (200.0, True, 1)
    """

    Params = SeasonalParams

    def __init__(self, params: SeasonalParams | None = None) -> None:
        self.p = params or SeasonalParams()
        self.model: SeasonalModel | None = None
        self.period = self.p.period  # the period in use; 0 until one is given or found
        self.n = 0  # samples seen (the refit schedule counts them all)
        self.fits = 0
        cap = self.p.history
        self._ts = np.empty(cap)
        self._xs = np.empty(cap)
        self._head = 0  # next slot of the ring buffer
        self._size = 0

    # -- the model --------------------------------------------------------------------------------------

    def _next_fit(self) -> int:
        """The sample count after which the next fit happens."""
        if self.n < self.p.warmup:
            return self.p.warmup
        return self.p.warmup + ((self.n - self.p.warmup) // self.p.refit_every + 1) * self.p.refit_every

    def _due(self) -> bool:
        return self.n >= self.p.warmup and (self.n - self.p.warmup) % self.p.refit_every == 0

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept samples, oldest first."""
        if self._size < self.p.history:
            return self._ts[: self._size].copy(), self._xs[: self._size].copy()
        order = np.roll(np.arange(self.p.history), -self._head)
        return self._ts[order], self._xs[order]

    def _refit(self) -> None:
        ts, xs = self.history()
        if ts.size < 8:
            return
        period = self.period
        if not period:
            try:
                period = find_period(ts, xs)
            except PeriodError:
                period = 0.0  # no season yet: a flat model, and detection again at the next refit
        try:
            self.model = fit(ts, xs, period, self.p.max_bins, self.p.smooth, self.p.refit_every)
        except PeriodError:  # a given period the history cannot hold twice yet: keep waiting
            return
        self.period = period
        self.fits += 1

    def _keep(self, ts: np.ndarray, xs: np.ndarray) -> None:
        ok = np.isfinite(xs)
        ts, xs = ts[ok][-self.p.history :], xs[ok][-self.p.history :]
        cap, m = self.p.history, xs.size
        first = min(m, cap - self._head)
        self._ts[self._head : self._head + first] = ts[:first]
        self._xs[self._head : self._head + first] = xs[:first]
        self._ts[: m - first] = ts[first:]
        self._xs[: m - first] = xs[first:]
        self._head = (self._head + m) % cap
        self._size = min(cap, self._size + m)

    # -- streaming ----------------------------------------------------------------------------------------

    def score_one(self, x: float, t: float) -> Score:
        if self.model is None:
            return finish_one(self.p, x, math.nan, math.nan, math.nan)
        e = self.model.expected_one(float(t))
        half = self.p.k * self.model.sigma
        return finish_one(self.p, x, e, e - half, e + half)

    def learn_one(self, x: float, t: float) -> None:
        x = float(x)
        if math.isfinite(x):
            self._ts[self._head] = t
            self._xs[self._head] = x
            self._head = (self._head + 1) % self.p.history
            self._size = min(self.p.history, self._size + 1)
        self.n += 1
        if self._due():
            self._refit()

    # -- vectorised ---------------------------------------------------------------------------------------

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        n = xs.size
        expected = np.full(n, np.nan)
        half = np.full(n, np.nan)
        i = 0
        while i < n:
            # Every point up to the next scheduled fit is scored against the same model.
            j = min(n, i + self._next_fit() - self.n)
            if self.model is not None:
                expected[i:j] = self.model.expected(ts[i:j])
                half[i:j] = self.p.k * self.model.sigma
            self._keep(ts[i:j], xs[i:j])
            self.n += j - i
            if self._due():
                self._refit()
            i = j
        return finish(self.p, xs, expected, expected - half, expected + half)

"""A band detector's residual, re-scored against its own recent history: one threshold across series.

A fitted band (Prophet's) is calibrated on its training data only; on real metrics the residual
``r = x - expected`` then drifts, widens and narrows, so ``|r| / (k * sigma)`` is huge on one series and
tiny on another and no single threshold fits (the Prophet band scores 0 at NAB's best threshold).
:class:`Normalised` wraps any detector that reports ``expected`` and re-scores each residual:

- ``med`` and ``scale``: the median of the previous ``window`` residuals and their interquartile range
  over 1.349 (a robust standard deviation), so the residual is centred and scaled by its own recent
  behaviour;
- ``dev = |r - med|``, and the band's half-width is ``max(threshold * scale, peak_margin * peak)``
  where ``peak`` is the largest ``dev`` of the previous ``peak_window`` scored residuals: a deviation
  must also beat everything seen lately (a daily edge the forecast always misses is not news every day);
- after an alarm (score > 1) the next ``quiet`` points score 0: NAB rewards only the first detection in
  a window and charges every later one outside it, and an SRE wants one page per incident.

The wrapped score is ``dev / half-width`` through ``options.finish`` (the inner detector's ``direction``
and ``min_deviation`` apply), with ``expected + med`` as the new expected value. The inner detector's
warm-up (NaN expected) is skipped; this one scores 0 until it has ``window`` residuals.

Complexity: streaming O(log window) for the quartiles (a sorted list, as ``iqr``) plus O(peak_window) for
the peak (``max`` over a deque, in C); vectorised: pandas' rolling quantiles and max, then one pass for
the quiet periods. Both give the same results (tested).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.detectors.base import SeriesDetector
from monitor.detectors.iqr import QUARTILES, _interp, _positions
from monitor.detectors.options import DetectorOptions, finish, finish_one
from monitor.detectors.scores import Score, Scores

# Interquartile range of a standard normal distribution: IQR / 1.349 estimates sigma.
IQR_TO_SIGMA = 1.349


@dataclass(frozen=True)
class NormaliseParams:
    """One set for every series: chosen on the shared NAB part (docs/seasonal-baseline.md)."""

    window: int = 100
    threshold: float = 3.0
    peak_window: int = 1200
    peak_margin: float = 1.0
    quiet: int = 100

    def __post_init__(self) -> None:
        if self.window < 4:
            raise ValueError(f"window must be >= 4, got {self.window}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")
        if self.peak_window < 0:
            raise ValueError(f"peak_window must be >= 0, got {self.peak_window}")
        if not self.peak_margin >= 0:
            raise ValueError(f"peak_margin must be >= 0, got {self.peak_margin}")
        if self.quiet < 0:
            raise ValueError(f"quiet must be >= 0, got {self.quiet}")


class Normalised:
    """``inner``'s residuals scored against their own recent median, spread and peak (see the module).

    >>> import numpy as np
    >>> from monitor.detectors.ema import EMAZScore
    >>> d = Normalised(EMAZScore(), NormaliseParams(window=4, threshold=3.0, peak_window=0, quiet=2))
    >>> xs = np.array([0.0] * 30 + [1.0, -1.0] * 10 + [40.0, 40.0, 40.0])
    >>> d.update_many(xs, np.arange(xs.size, dtype=float)).anomalous[-3:].tolist()  # alarm, then quiet
    [True, False, False]
    """

    def __init__(self, inner: SeriesDetector, params: NormaliseParams | None = None) -> None:
        self.inner = inner
        self.params = params or NormaliseParams()
        # The inner detector's parameters stay its ``p`` (the monitor reads them back to refit it), and
        # its options (direction, min_deviation) apply to the normalised score too.
        self.p: DetectorOptions = getattr(inner, "p", None) or DetectorOptions()
        self._fifo: deque[float] = deque()
        self._sorted: list[float] = []
        self._peaks: deque[float] = deque(maxlen=self.params.peak_window or 1)
        self._quiet_left = 0
        self._pos = _positions(self.params.window)

    # -- streaming -------------------------------------------------------------------------------------

    def _band(self) -> tuple[float, float]:
        """(median, half-width) from the residuals learnt so far; NaN while warming up."""
        if len(self._fifo) < self.params.window:
            return math.nan, math.nan
        s = self._sorted
        q1, med, q3 = (_interp(s[lo], s[min(lo + 1, len(s) - 1)], f) for lo, f in self._pos)
        peak = max(self._peaks) if self.params.peak_window and self._peaks else 0.0
        return float(med), max(
            self.params.threshold * (q3 - q1) / IQR_TO_SIGMA, self.params.peak_margin * peak
        )

    def _score(self, x: float, inner: Score) -> tuple[Score, float]:
        r = x - inner.expected
        if r != r:  # the inner detector is warming up: nothing to normalise
            return Score(0.0), math.nan
        med, half = self._band()
        if med != med:
            return finish_one(self.p, x, math.nan, math.nan, math.nan), r
        e = inner.expected + med
        s = finish_one(self.p, x, e, e - half, e + half)
        return (Score(0.0, s.expected, s.lower, s.upper) if self._quiet_left else s), r

    def score_one(self, x: float, t: float) -> Score:
        return self._score(float(x), self.inner.score_one(x, t))[0]

    def _learn(self, r: float, alarmed: bool) -> None:
        if r != r:
            return
        med, _ = self._band()
        if med == med and self.params.peak_window:
            self._peaks.append(abs(r - med))
        if self._quiet_left:
            self._quiet_left -= 1
        elif alarmed:
            self._quiet_left = self.params.quiet
        if len(self._fifo) >= self.params.window:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._fifo.append(r)
        bisect.insort(self._sorted, r)

    def update_one(self, x: float, t: float) -> Score:
        s, r = self._score(float(x), self.inner.update_one(x, t))
        self._learn(r, s.score > 1.0)
        return s

    def learn_one(self, x: float, t: float) -> None:
        self.update_one(x, t)

    def score_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        return Scores.of([self.score_one(float(x), float(t)) for x, t in zip(xs, ts, strict=True)])

    @property
    def fit_seconds(self) -> float | None:
        """The inner detector's fit duration, if it has one (the monitor exports it)."""
        return getattr(self.inner, "fit_seconds", None)

    # -- vectorised ------------------------------------------------------------------------------------

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        inner = self.inner.update_many(xs, ts)
        n = xs.size
        r_all = xs - inner.expected
        valid = np.flatnonzero(~np.isnan(r_all))
        r = r_all[valid]
        w, m = self.params.window, r.size
        hist = np.fromiter(self._fifo, dtype=np.float64, count=len(self._fifo))
        full = np.concatenate((hist, r))
        h = hist.size
        med, half = np.full(m, np.nan), np.full(m, np.nan)
        first = max(w - h, 0)  # the first new residual with a full window before it
        if first < m:
            # Residual i (full index h+i) is scored against full[h+i-w : h+i], the window ending at h+i-1.
            roll = pd.Series(full[:-1]).rolling(w)
            q1, md, q3 = (
                roll.quantile(q, interpolation="linear").to_numpy()[first + h - 1 :] for q in QUARTILES
            )
            med[first:] = md
            spread = self.params.threshold * (q3 - q1) / IQR_TO_SIGMA
            dev = np.abs(r[first:] - md)
            if self.params.peak_window:
                old = np.fromiter(self._peaks, dtype=np.float64, count=len(self._peaks))
                devs = np.concatenate((old, dev))
                # The peak before dev j is the max of the peak_window devs before it (0 with none yet).
                peak = (
                    pd.Series(devs).rolling(self.params.peak_window, min_periods=1).max().shift(1).to_numpy()
                )
                peak = np.nan_to_num(peak[old.size :], nan=0.0)
                self._peaks.extend(dev.tolist())
            else:
                peak = np.zeros(dev.size)
            half[first:] = np.maximum(spread, self.params.peak_margin * peak)
        tail = full[-w:].tolist()
        self._fifo = deque(tail)
        self._sorted = sorted(tail)
        expected, lower, upper = (np.full(n, np.nan) for _ in range(3))
        expected[valid] = inner.expected[valid] + med
        lower[valid] = expected[valid] - half
        upper[valid] = expected[valid] + half
        out = finish(self.p, xs, expected, lower, upper)
        score = out.score
        score[np.isnan(r_all)] = 0.0
        self._quiet_left = _quiet(score, valid, self._quiet_left, self.params.quiet)
        return Scores(score, out.expected, out.lower, out.upper)


def _quiet(score: np.ndarray, valid: np.ndarray, left: int, quiet: int) -> int:
    """Zero the scores of the ``quiet`` learnt residuals after each alarm, in place; the count still left.

    Only points with a residual count down (they are the ones ``learn`` sees); sequential by nature, and a
    tight loop over the alarms, not over every point.
    """
    i = 0
    while i < valid.size:
        if left:
            take = min(left, valid.size - i)
            score[valid[i : i + take]] = 0.0
            left -= take
            i += take
            continue
        hit = np.flatnonzero(score[valid[i:]] > 1.0)
        if not hit.size:
            break
        i += int(hit[0]) + 1
        left = quiet
    return left

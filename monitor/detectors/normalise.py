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
- after an alarm (score above 1) the next ``quiet`` points score 0: NAB rewards only the first detection in
  a window and charges every later one outside it, and an SRE wants one page per incident.

The wrapped score is ``dev / half-width`` through ``options.finish`` (the inner detector's ``direction``
and ``min_deviation`` apply), with ``expected + med`` as the new expected value. The inner detector's
warm-up (NaN expected) is skipped; this one scores 0 until it has ``window`` residuals.

Learning (``monitor.detectors.learning``): the inner detector learns by its own band; the residual
history and the peak learn the residual of the value capped by the normalised band, so one anomaly does
not raise the bar for the next one by more than ``LEARN_REACH`` half-widths.

Complexity: per point and row, the inner detector's cost plus O(window) for the sorted residuals (as
``iqr``: ``rolling.Sorted``) and O(sqrt(peak_window)) for the peak (``rolling.Maximum``); columnar over
any inner columnar detector, whose arrays are part of this one's state (``inner/...``). State: about
``16 * window + 8 * peak_window`` bytes a series beyond the inner detector's (11 KiB at the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from monitor.detectors.base import Detector, State
from monitor.detectors.iqr import QUARTILES
from monitor.detectors.rolling import Maximum, Sorted
from monitor.detectors.scores import ANOMALY_THRESHOLD, Scores

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


class Normalised(Detector):
    """``inner``'s residuals scored against their own recent median, spread and peak (see the module).

    >>> import numpy as np
    >>> from monitor.detectors.ema import EMAZScore
    >>> d = Normalised(EMAZScore(), NormaliseParams(window=4, threshold=3.0, peak_window=0, quiet=2))
    >>> xs = np.array([0.0] * 30 + [1.0, -1.0] * 10 + [40.0, 40.0, 40.0])
    >>> d.update_many(xs, np.arange(xs.size, dtype=float)).anomalous[-3:].tolist()  # alarm, then quiet
    [True, False, False]
    """

    def __init__(self, inner: Detector, params: NormaliseParams | None = None) -> None:
        self._inner = inner
        self.params = params or NormaliseParams()
        self.res = Sorted(self.params.window, "r.")
        self.peak = Maximum(self.params.peak_window, "peak.") if self.params.peak_window else None
        # The inner detector's parameters stay its ``p`` (the monitor reads them back to refit it), and
        # its options (direction, min_deviation) apply to the normalised score too.
        super().__init__(inner.p, inner.rows)

    def _children(self, rows: int) -> dict[str, Detector]:
        if self._inner.rows != rows:
            self._inner.resize(rows)
        return {"inner": self._inner}

    @property
    def inner(self) -> Detector:
        return self.children["inner"]

    @property
    def warmup(self) -> int:
        return self.inner.warmup + self.params.window

    @property
    def fit_seconds(self) -> float | None:
        """The inner detector's fit duration, if it has one (the monitor exports it)."""
        return getattr(self.inner, "fit_seconds", None)

    def fresh(self, n: int) -> State:
        state = {**self.res.fresh(n), "quiet": np.zeros(n, dtype=np.int64)}
        if self.peak is not None:
            state.update(self.peak.fresh(n))
        return state

    def copy_empty(self) -> Self:
        inner = self.inner.copy_empty()
        return type(self)(inner, self.params)

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        st = self.state
        inner = self.inner._advance(x, t, ok)
        has_r = ~np.isnan(inner.expected)  # NaN while the inner detector warms up: nothing to normalise
        full = self.res.full(st)
        q1, med, q3 = (np.where(full, q, np.nan) for q in self.res.quantiles(st, QUARTILES))
        half = self.params.threshold * (q3 - q1) / IQR_TO_SIGMA
        if self.peak is not None:
            half = np.maximum(half, self.params.peak_margin * np.maximum(self.peak.value(st), 0.0))
        e = inner.expected + med
        s = self.finish(x, e, e - half, e + half)
        quiet = st["quiet"]
        score = np.where(quiet > 0, 0.0, s.score)  # the band is kept through the quiet period
        # Learn the residual of the value capped by this band (the inner detector capped its own).
        learn = ok & has_r
        r = self.learnable(x, s) - inner.expected
        if self.peak is not None:
            self.peak.push(st, np.abs(r - med), learn & full)
        alarmed = score > ANOMALY_THRESHOLD
        np.copyto(quiet, np.where(quiet > 0, quiet - 1, np.where(alarmed, self.params.quiet, 0)), where=learn)
        self.res.push(st, r, learn)
        return Scores(score, s.expected, s.lower, s.upper)

"""Rolling interquartile range: Tukey's fences over the last ``window`` values.

Band: ``lower = Q1 - multiplier * IQR``, ``upper = Q3 + multiplier * IQR``, ``expected = median`` of the
previous ``window`` values (quantiles by linear interpolation, numpy's default). The score is the
deviation from the median over the distance from the median to the fence on that side, so > 1 exactly
outside the fences. Warm-up: until ``window`` values have been learnt it scores 0.

Complexity: per point and row, one removal and one insertion in the row's sorted window (O(w)
comparisons and moves, vectorised over the rows: ``rolling.Sorted``), then O(1) quantile reads; state:
the window twice (arrival order and sorted), ``16 * window`` bytes a series and a few counters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import Detector, State
from monitor.detectors.options import DetectorOptions
from monitor.detectors.rolling import Sorted
from monitor.detectors.scores import Scores


@dataclass(frozen=True)
class IQRParams(DetectorOptions):
    window: int = 50
    multiplier: float = 1.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 4:
            raise ValueError(f"window must be >= 4, got {self.window}")
        if not self.multiplier > 0:
            raise ValueError(f"multiplier must be positive, got {self.multiplier}")


QUARTILES = (0.25, 0.5, 0.75)


class RollingIQR(Detector):
    """Rolling-IQR detector (window 50, multiplier 1.5 by default).

    >>> d = RollingIQR(IQRParams(window=4, multiplier=1.5))
    >>> for t, x in enumerate([4.0, 1.0, 3.0, 2.0]):
    ...     d.learn_one(x, float(t))
    >>> s = d.score_one(8.0, 4.0)  # Q1 1.75, median 2.5, Q3 3.25: fences -0.5 and 5.5
    >>> (s.lower, s.expected, s.upper), round(s.score, 4), s.anomalous
    ((-0.5, 2.5, 5.5), 1.8333, True)
    """

    Params = IQRParams

    def __init__(self, params: IQRParams | None = None, rows: int = 1) -> None:
        p = params or IQRParams()
        self.win = Sorted(p.window, "w.")
        super().__init__(p, rows)

    @property
    def warmup(self) -> int:
        return self.p.window

    def fresh(self, n: int) -> State:
        return self.win.fresh(n)

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        st = self.state
        full = self.win.full(st)
        q1, med, q3 = (np.where(full, q, np.nan) for q in self.win.quantiles(st, QUARTILES))
        iqr = q3 - q1
        m = self.p.multiplier
        s = self.finish(x, med, q1 - m * iqr, q3 + m * iqr)
        self.win.push(st, self.learnable(x, s), ok)
        return s

"""The Prophet forecast band behind the ``Detector`` interface.

Prophet learns in batches, not per sample: ``learn_one`` does nothing, and the runner refits through
``build_detector`` every ``--retrain-every`` seconds instead. The band is ``monitor.forecast.Band``,
``yhat +/- k * sigma`` on a time grid predicted ahead; scores go through ``options.finish`` /
``finish_one`` like every other detector's, so ``direction`` and ``min_deviation`` mean the same here.

Complexity: O(1) per point, streaming or vectorised: an index into the precomputed grid. A point past the
grid's end extends it by ``horizon`` at once (one Prophet ``predict`` over ``horizon / step`` grid
points), so that cost is amortised over the points the extension covers. Memory O(horizon / step).
"""

from __future__ import annotations

import numpy as np

from monitor.detectors.base import Score, Scores
from monitor.detectors.options import DetectorOptions, finish, finish_one
from monitor.forecast import Band


class ProphetBandDetector:
    def __init__(
        self,
        band: Band,
        period: float,
        fit_seconds: float = 0.0,
        loaded: bool = False,
        options: DetectorOptions | None = None,
    ) -> None:
        self.band = band
        self.period = period
        self.fit_seconds = fit_seconds
        self.loaded = loaded  # True when the model came from the model store instead of a fit
        self.p = options or DetectorOptions()

    def score_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        expected, lower, upper = self.band.lookup(np.asarray(ts, dtype=np.float64))
        return finish(self.p, xs, expected, lower, upper)

    def score_one(self, x: float, t: float) -> Score:
        expected, lower, upper = self.band.lookup(np.array([t], dtype=np.float64))
        return finish_one(self.p, float(x), float(expected[0]), float(lower[0]), float(upper[0]))

    def learn_one(self, x: float, t: float) -> None:
        return None

    def update_one(self, x: float, t: float) -> Score:
        return self.score_one(x, t)

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        return self.score_many(xs, ts)


def fit_detector(
    ts: np.ndarray,
    vs: np.ndarray,
    period: float | None = None,
    k: float = 4.0,
    fourier_order: int = 12,
    horizon: float = 6 * 3600.0,
    options: DetectorOptions | None = None,
) -> ProphetBandDetector:
    """Detect the period (unless given), fit, and return a detector whose band starts at the last sample.

    Raises ``monitor.period.PeriodError`` (a ``ValueError``) when the data shows no usable period.
    """
    from monitor import forecast
    from monitor.period import detect_period, sampling_step

    ts = np.asarray(ts, dtype=np.float64)
    vs = np.asarray(vs, dtype=np.float64)
    found = period if period is not None else detect_period(ts, vs)
    fitted = forecast.fit(ts, vs, found, sampling_step(ts), k=k, fourier_order=fourier_order)
    return ProphetBandDetector(
        fitted.band(float(ts[-1]), horizon), found, fitted.fit_seconds, options=options
    )

"""The Prophet forecast band behind the ``Detector`` interface.

Prophet learns in batches, not per sample: ``learn_one`` does nothing, and the runner refits through
``build_detector`` every ``--retrain-every`` seconds instead.
"""

from __future__ import annotations

import numpy as np

from monitor.detectors.base import Score, Scores, band_score
from monitor.forecast import Band


class ProphetBandDetector:
    def __init__(self, band: Band, period: float, fit_seconds: float = 0.0, loaded: bool = False):
        self.band = band
        self.period = period
        self.fit_seconds = fit_seconds
        self.loaded = loaded  # True when the model came from the model store instead of a fit

    def score_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        expected, lower, upper = self.band.lookup(np.asarray(ts, dtype=np.float64))
        return Scores(band_score(xs, expected, lower, upper), expected, lower, upper)

    def score_one(self, x: float, t: float) -> Score:
        return self.score_many(np.array([x]), np.array([t])).at(0)

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
    return ProphetBandDetector(fitted.band(float(ts[-1]), horizon), found, fitted.fit_seconds)

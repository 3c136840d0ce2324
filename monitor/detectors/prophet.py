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

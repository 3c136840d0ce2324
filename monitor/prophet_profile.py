"""Prophet for many series: fit in a worker process, keep only one period of the forecast.

The monitor's Prophet model has flat growth and one seasonality, so its forecast repeats exactly every
period. A worker fits it and returns the forecast over one period on a fine phase grid (``PROFILE_POINTS``
values): a few kilobytes that pickle cheaply, where the fitted model (its training frame, Stan state)
would not, and a detector that needs no model and no grid extension to score any time. A series with
no repeating shape is not an error: it gets a flat profile (its median) and the reason is kept for a
log line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import FittedDetector
from monitor.detectors.options import DetectorOptions, finish, finish_one
from monitor.detectors.prophet import ProphetParams
from monitor.detectors.scores import Score, Scores

PROFILE_POINTS = 512


@dataclass(frozen=True)
class Profile:
    """What a fit leaves: ``values`` over one period from ``anchor`` (period 0: flat), and the band."""

    period: float  # 0.0: no season, ``values`` holds one level
    anchor: float
    values: np.ndarray
    half_width: float
    fit_seconds: float
    no_season: str = ""  # why the series was fitted without a season, when it was

    def expected(self, ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts, dtype=np.float64)
        if self.period == 0.0:
            return np.full(ts.shape, float(self.values[0]))
        phase = np.mod(ts - self.anchor, self.period)
        grid = np.arange(self.values.size) * (self.period / self.values.size)
        return np.interp(phase, grid, self.values, period=self.period)


def fit_profile(ts: np.ndarray, vs: np.ndarray, params: ProphetParams) -> Profile:
    """Detect the period (unless given) and fit Prophet; a flat profile when there is no season.

    Runs in a worker process: plain arrays in, a small picklable ``Profile`` out.
    """
    from monitor import forecast
    from monitor.period import PeriodError, detect_period, sampling_step

    ts = np.asarray(ts, dtype=np.float64)
    vs = np.asarray(vs, dtype=np.float64)
    began = time.perf_counter()
    try:
        period = params.period or detect_period(ts, vs)
    except PeriodError as exc:
        level = float(np.median(vs))
        return Profile(
            0.0,
            float(ts[-1]),
            np.array([level]),
            params.k * _floor_sigma(forecast.robust_sigma(vs - level), vs),
            time.perf_counter() - began,
            no_season=str(exc),
        )
    logging.getLogger("prophet").setLevel(logging.ERROR)
    fitted = forecast.fit(ts, vs, period, sampling_step(ts), k=params.k, fourier_order=params.fourier_order)
    anchor = float(ts[-1])
    grid = anchor + np.arange(PROFILE_POINTS) * (period / PROFILE_POINTS)
    values = forecast.predict_expected(fitted.model, grid)
    return Profile(period, anchor, values, fitted.k * fitted.sigma, time.perf_counter() - began)


def _floor_sigma(sigma: float, vs: np.ndarray) -> float:
    # A constant series still needs a non-zero band to score against (as forecast.fit does).
    return max(sigma, 1e-9 * max(1.0, float(np.max(np.abs(vs)))))


class ProfileBandDetector(FittedDetector):
    """The forecast band of a fitted ``Profile``: ``expected +/- half_width``; learns nothing online."""

    def __init__(self, profile: Profile, options: DetectorOptions | None = None) -> None:
        self.profile = profile
        self.p = options or DetectorOptions()

    def score_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        expected = self.profile.expected(ts)
        hw = self.profile.half_width
        return finish(self.p, np.asarray(xs, dtype=np.float64), expected, expected - hw, expected + hw)

    def score_one(self, x: float, t: float) -> Score:
        e = float(self.profile.expected(np.array([t]))[0])
        hw = self.profile.half_width
        return finish_one(self.p, float(x), e, e - hw, e + hw)

"""Prophet for many series: fit in a worker process, keep only one period of the forecast.

The monitor's Prophet model has flat growth and one seasonality, so its forecast repeats exactly every
period. A worker fits it and returns its ``Profile`` (``monitor.detectors.prophet``): the forecast over
one period on a phase grid, a few kilobytes that pickle cheaply, where the fitted model (its training
frame, Stan state) would not; the engine installs it in a row of a ``ProfileBand``. A series with no
repeating shape is not an error: it gets a flat profile (its median) and the reason is kept for a log
line.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from monitor.detectors.prophet import (
    PROFILE_POINTS,
    Profile,
    ProfileBand,
    ProphetParams,
    profile_of,
    unfitted,
)

__all__ = ["PROFILE_POINTS", "Profile", "ProfileBand", "fit_profile", "unfitted"]


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
    # The fit's duration as the worker spent it (the period's detection and the grid's prediction too).
    return profile_of(fitted, fit_seconds=time.perf_counter() - began)


def _floor_sigma(sigma: float, vs: np.ndarray) -> float:
    # A constant series still needs a non-zero band to score against (as forecast.fit does).
    return max(sigma, 1e-9 * max(1.0, float(np.max(np.abs(vs)))))

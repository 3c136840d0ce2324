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

from monitor.detectors.base import Detector, State
from monitor.detectors.options import DetectorOptions
from monitor.detectors.prophet import ProphetParams
from monitor.detectors.scores import Scores

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
    # The training samples' step: a time is looked up at the sample time at or before it, in phase with
    # the training grid (0: interpolated). A metric that changes once per scrape holds its value until
    # the next one, as Prometheus' lookups do; interpolating would be up to a step off.
    step: float = 0.0

    def expected(self, ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts, dtype=np.float64)
        if self.period == 0.0:
            return np.full(ts.shape, float(self.values[0]))
        phase = np.mod(ts - self.anchor, self.period)
        grid = np.arange(self.values.size) * (self.period / self.values.size)
        return np.interp(phase, grid, self.values, period=self.period)


def unfitted() -> Profile:
    """The profile of a series whose fit has not arrived: no expected value, so every point scores 0."""
    return Profile(0.0, 0.0, np.array([np.nan]), np.nan, 0.0)


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
    step = sampling_step(ts)
    fitted = forecast.fit(ts, vs, period, step, k=params.k, fourier_order=params.fourier_order)
    anchor = float(ts[-1])
    grid = anchor + np.arange(PROFILE_POINTS) * (period / PROFILE_POINTS)
    values = forecast.predict_expected(fitted.model, grid)
    return Profile(period, anchor, values, fitted.k * fitted.sigma, time.perf_counter() - began, step=step)


def _floor_sigma(sigma: float, vs: np.ndarray) -> float:
    # A constant series still needs a non-zero band to score against (as forecast.fit does).
    return max(sigma, 1e-9 * max(1.0, float(np.max(np.abs(vs)))))


class ProfileBand(Detector):
    """Fitted ``Profile`` bands, one per row: ``expected +/- half_width``; learns nothing online.

    A row's model is installed by ``put`` from a detector made with ``of`` (a fit finished in a worker
    process); until then its band is NaN and it scores 0. The expected value at any time is the
    profile's, interpolated on its phase grid, so ``band_at`` gives the band at scrape time as well.

    >>> flat = Profile(0.0, 0.0, np.array([100.0]), 5.0, 0.1)
    >>> d = ProfileBand.of(flat)
    >>> d.update_many(np.array([102.5, 110.0]), np.array([10.0, 20.0])).score.tolist()
    [0.5, 2.0]
    >>> [float(a[0]) for a in d.band_at(np.array([30.0]))]  # (expected, lower, upper)
    [100.0, 95.0, 105.0]
    """

    Params = DetectorOptions

    def fresh(self, n: int) -> State:
        return {
            "period": np.zeros(n),
            "anchor": np.zeros(n),
            "values": np.full((n, PROFILE_POINTS), np.nan),
            "half_width": np.full(n, np.nan),
            "fit_seconds": np.zeros(n),
            "step": np.zeros(n),
        }

    @classmethod
    def of(cls, profile: Profile, options: DetectorOptions | None = None, rows: int = 1) -> ProfileBand:
        """``rows`` rows with ``profile`` as their model."""
        d = cls(options, rows)
        values = np.asarray(profile.values, dtype=np.float64)
        grid = np.full(PROFILE_POINTS, values[0]) if values.size == 1 else values
        st = d.state
        st["period"][:], st["anchor"][:], st["values"][:] = profile.period, profile.anchor, grid
        st["half_width"][:], st["fit_seconds"][:] = profile.half_width, profile.fit_seconds
        st["step"][:] = profile.step
        return d

    def expected(self, t: np.ndarray) -> np.ndarray:
        """Each row's expected value at its times ``t`` (``(rows,)`` or ``(rows, T)``)."""
        st = self.state
        t = np.asarray(t, dtype=np.float64)
        extra = (slice(None),) + (None,) * (t.ndim - 1)
        period, anchor, step = st["period"][extra], st["anchor"][extra], st["step"][extra]
        held = step > 0  # at the training grid's sample time at or before t (within 1% of a step)
        with np.errstate(invalid="ignore"):
            t = np.where(held, anchor + np.floor((t - anchor) / np.where(held, step, 1.0) + 0.01) * step, t)
        seasonal = period > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            pos = np.where(
                seasonal,
                np.mod(t - anchor, np.where(seasonal, period, 1.0)) / np.where(seasonal, period, 1.0),
                0.0,
            )
        pos = np.nan_to_num(pos) * PROFILE_POINTS
        i0 = np.floor(pos).astype(np.intp) % PROFILE_POINTS
        frac = pos - np.floor(pos)
        rows = np.arange(self.rows).reshape((-1,) + (1,) * (t.ndim - 1))
        values = st["values"]
        return values[rows, i0] * (1.0 - frac) + values[rows, (i0 + 1) % PROFILE_POINTS] * frac

    def band_at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(expected, lower, upper) of each row at its time ``t``: what a point at ``t`` is scored against."""
        e = self.expected(t)
        hw = self.state["half_width"].reshape((-1,) + (1,) * (np.ndim(t) - 1))
        return e, e - hw, e + hw

    def _update(self, x: np.ndarray, t: np.ndarray) -> Scores:
        expected, lower, upper = self.band_at(t)
        s = self.finish(x, expected, lower, upper)
        s.score[np.isnan(x)] = np.nan
        s.score[np.isinf(x)] = np.inf
        self.state["n"] += np.isfinite(x).sum(axis=1)
        return s

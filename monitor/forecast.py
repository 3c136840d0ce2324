"""Prophet fit and the forecast band it yields, computed once on a time grid and looked up per sample.

The model is ``Prophet(growth="flat")`` with one custom seasonality at the detected period and no
daily, weekly or yearly terms (a training span of an hour cannot support them). The band is
``yhat +/- k * sigma`` with ``sigma = 1.4826 * MAD`` of the in-sample residuals: Prophet's own sampled
interval widens with the horizon until real anomalies fit inside it, while the residual band stays
calibrated (measured: no sample flagged per hour at k=4 on clean simulator data).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Robust standard deviation from the median absolute deviation (exact for a normal distribution).
MAD_TO_SIGMA = 1.4826
SEASONALITY_NAME = "learned"

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class Band:
    """``expected``/``lower``/``upper`` on an even time grid ``start + i * step``.

    The grid is predicted once, far enough ahead; ``lookup`` is O(1) per sample (index arithmetic) and
    only calls ``predict`` to ``extend`` the grid when a sample falls beyond it. A sample takes the grid
    point at or before it (within 1% of a step), as Prometheus' own lookups hold the last sample: for a
    metric that changes once per scrape interval that is exact, where interpolating would be off by
    up to a whole step.
    """

    start: float
    step: float
    expected: np.ndarray
    half_width: float
    predict: Predictor = field(repr=False)
    horizon: float = 6 * 3600.0
    extensions: int = 0

    @property
    def end(self) -> float:
        return self.start + (self.expected.size - 1) * self.step

    def _index(self, ts: np.ndarray) -> np.ndarray:
        return np.floor((ts - self.start) / self.step + 0.01).astype(np.int64)

    def lookup(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(expected, lower, upper) at each timestamp, extending the grid first when needed."""
        ts = np.asarray(ts, dtype=np.float64)
        if ts.size == 0:
            empty = np.empty(0)
            return empty, empty, empty
        self.extend(float(ts.min()), float(ts.max()))
        expected = self.expected[self._index(ts)]
        return expected, expected - self.half_width, expected + self.half_width

    def peek(self, t: float) -> tuple[float, float, float] | None:
        """(lower, expected, upper) at ``t`` from the grid as it is, or None when ``t`` is outside it.

        Never extends the grid: it is read from the scrape thread while the runner may be using the band.
        """
        expected, start = self.expected, self.start
        i = math.floor((t - start) / self.step + 0.01)
        if not 0 <= i < expected.size:
            return None
        e = float(expected[i])
        return e - self.half_width, e, e + self.half_width

    def extend(self, lo: float, hi: float) -> None:
        """Cover [lo, hi]: forwards the grid reaches ``horizon`` past ``hi`` and drops the far past."""
        if lo > self.end + self.horizon or hi < self.start - self.horizon:
            # Far from the grid (a model file trained months ago): start a new grid in the same phase
            # where it is needed, instead of predicting every step of the gap.
            first = self.start + math.floor((lo - self.start) / self.step) * self.step
            n = math.ceil((hi + self.horizon - first) / self.step) + 1
            self.expected = self.predict(first + self.step * np.arange(n))
            self.start = first
            self.extensions += 1
            return
        if lo < self.start:
            n_before = math.ceil((self.start - lo) / self.step) + 1
            new_start = self.start - n_before * self.step
            head = self.predict(new_start + np.arange(n_before) * self.step)
            self.expected = np.concatenate([head, self.expected])
            self.start = new_start
            self.extensions += 1
        if hi > self.end:
            n_after = math.ceil((hi + self.horizon - self.end) / self.step)
            tail = self.predict(self.end + self.step * np.arange(1, n_after + 1))
            full = np.concatenate([self.expected, tail])
            # Memory stays bounded over weeks: nothing before the oldest sample still asked for is kept.
            drop = min(max(0, int(self._index(np.array([lo]))[0]) - 1), full.size - 1)
            self.expected = full[drop:]
            self.start += drop * self.step
            self.extensions += 1


class UselessBandError(ValueError):
    """A fit whose band is wider than the training data's whole range: it could never flag anything."""


def check_band_can_flag(half_width: float, period: float, values: np.ndarray) -> None:
    """Refuse a band whose half-width exceeds the range of the data it was fitted on.

    Such a band contains every value the data ever took, however the forecast moves: the sign of a
    period that does not fit (``--period 7`` on an 80 s wave gives +/- 1,474 on a 10 to 1,000 wave).
    """
    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(v.min()), float(v.max())
    if half_width > hi - lo:
        raise UselessBandError(
            f"the band at period {period:g} s is +/- {half_width:.4g} on data ranging {lo:.4g} to {hi:.4g}, "
            "so it could never flag anything"
        )


@dataclass
class FittedModel:
    model: object  # prophet.Prophet
    period: float
    sigma: float
    k: float
    step: float
    anchor: float  # a training timestamp: the grid shares the training samples' phase
    fit_seconds: float

    def predictor(self) -> Predictor:
        return lambda ts: predict_expected(self.model, ts)

    def band(self, start_at: float, horizon: float) -> Band:
        """The band on a grid in phase with the training samples, from ``start_at`` to ``horizon`` past it."""
        first = self.anchor + math.floor((start_at - self.anchor) / self.step) * self.step
        n = math.ceil(horizon / self.step) + 1
        grid = first + self.step * np.arange(n)
        return Band(
            start=first,
            step=self.step,
            expected=predict_expected(self.model, grid),
            half_width=self.k * self.sigma,
            predict=self.predictor(),
            horizon=horizon,
        )


def new_prophet(period: float, fourier_order: int) -> object:
    from prophet import Prophet  # imported late: it takes seconds, and --help should not

    model = Prophet(
        growth="flat",
        uncertainty_samples=0,
        daily_seasonality=False,
        weekly_seasonality=False,
        yearly_seasonality=False,
    )
    model.add_seasonality(name=SEASONALITY_NAME, period=period / 86400.0, fourier_order=fourier_order)
    return model


def frame(ts: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"ds": pd.to_datetime(np.asarray(ts, dtype=np.float64), unit="s")})


def predict_expected(model: object, ts: np.ndarray) -> np.ndarray:
    ts = np.asarray(ts, dtype=np.float64)
    if ts.size == 0:
        return np.empty(0)
    return model.predict(frame(ts))["yhat"].to_numpy(dtype=np.float64)  # type: ignore[attr-defined]


def robust_sigma(residuals: np.ndarray) -> float:
    r = np.asarray(residuals, dtype=np.float64)
    return float(MAD_TO_SIGMA * np.median(np.abs(r - np.median(r))))


def fit(
    ts: np.ndarray, vs: np.ndarray, period: float, step: float, k: float = 4.0, fourier_order: int = 12
) -> FittedModel:
    """Fit Prophet on the samples and measure the residual spread that sets the band's width."""
    ts = np.asarray(ts, dtype=np.float64)
    vs = np.asarray(vs, dtype=np.float64)
    began = time.perf_counter()
    model = new_prophet(period, fourier_order)
    df = frame(ts)
    df["y"] = vs
    logging.getLogger("cmdstanpy").disabled = True
    model.fit(df)  # type: ignore[attr-defined]
    sigma = robust_sigma(vs - predict_expected(model, ts))
    # A perfectly fitted series (constant, or noise-free) still needs a non-zero band to score against.
    sigma = max(sigma, 1e-9 * max(1.0, float(np.max(np.abs(vs)))))
    return FittedModel(model, period, sigma, k, step, float(ts[-1]), time.perf_counter() - began)

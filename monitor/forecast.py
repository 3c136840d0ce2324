"""Prophet fit and the residual band it yields (kept as a profile: ``monitor.detectors.prophet``).

The model is ``Prophet(growth="flat")`` with one custom seasonality at the detected period and no
daily, weekly or yearly terms (a training span of an hour cannot support them). The band is
``yhat +/- k * sigma`` with ``sigma = 1.4826 * MAD`` of the in-sample residuals: Prophet's own sampled
interval widens with the horizon until real anomalies fit inside it, while the residual band stays
calibrated (measured: no sample flagged per hour at k=4 on clean simulator data).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# Robust standard deviation from the median absolute deviation (exact for a normal distribution).
MAD_TO_SIGMA = 1.4826
SEASONALITY_NAME = "learned"


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
    anchor: float  # a training timestamp: the profile's grid shares the training samples' phase
    fit_seconds: float


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
    import pandas as pd  # here: a monitor without a Prophet query never loads pandas (~60 MiB)

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

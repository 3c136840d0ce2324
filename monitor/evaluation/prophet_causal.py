"""The monitor's Prophet band, run causally for evaluation: fit on the probationary prefix, score the rest.

Prophet learns in batches, so it cannot ``learn_one``; a real monitor trains on history and then scores
what arrives. Here that history is the file's probationary prefix (NAB does not score it), the period
is detected on it with ``monitor.period`` (falling back to one day when the prefix shows none), the
band is ``monitor.forecast.fit``'s residual band, and every later row is scored against it in order,
without refitting. Probationary rows score 0. ``direction`` and ``min_deviation`` are the options every
detector honours (``monitor.detectors.options``). ``normalise=true`` re-scores the band's residuals against
their own recent history (``monitor.detectors.normalise``): the post-processing that makes the band usable
on NAB, with one parameter set for every file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import Detector
from monitor.detectors.normalise import Normalised
from monitor.detectors.options import DetectorOptions
from monitor.evaluation.metrics import probation_rows

FALLBACK_PERIOD_S = 86400.0
# Prophet builds 2 * fourier_order columns per row: 100 is already far more than any period's shape
# needs, and an order of 100,000 makes it allocate until it dies (std::bad_alloc).
MAX_FOURIER_ORDER = 100


@dataclass(frozen=True)
class ProphetParams(DetectorOptions):
    k: float = 4.0  # band half-width in robust sigmas (monitor default)
    fourier_order: int = 12
    period: float = 0.0  # seconds; 0: detect it on the prefix
    normalise: bool = False  # re-score residuals by their own recent history (monitor.detectors.normalise)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.k > 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if not 1 <= self.fourier_order <= MAX_FOURIER_ORDER:
            raise ValueError(
                f"fourier_order must be between 1 and {MAX_FOURIER_ORDER}, got {self.fourier_order}"
            )
        if self.period < 0:
            raise ValueError(f"period must be >= 0, got {self.period}")


def score_file(ts: np.ndarray, values: np.ndarray, p: ProphetParams) -> np.ndarray:
    """Scores of every row (0 in the prefix). Raises ``PeriodError`` when the prefix cannot be fitted."""
    from monitor.detectors.prophet import ProphetBandDetector
    from monitor.forecast import fit
    from monitor.period import PeriodError, detect_period, sampling_step

    n = len(values)
    m = max(probation_rows(n), 2)
    order = np.argsort(ts[:m], kind="stable")  # the prefix may hold a backward step
    pts, pvs = ts[:m][order], values[:m][order]
    if np.unique(pts).size < 2:  # no sampling step, so no grid: say which rows, not sampling_step's words
        rows = f"{len(pts)} row" + ("s" if len(pts) != 1 else "")
        raise PeriodError(
            f"Prophet is fitted on the probationary prefix (the first {rows}), which needs at least two "
            "distinct timestamps"
        )
    step = sampling_step(pts)
    period = p.period
    if not period:
        try:
            period = detect_period(pts, pvs)
        except PeriodError:
            period = FALLBACK_PERIOD_S
    fitted = fit(pts, pvs, period, step, k=p.k, fourier_order=p.fourier_order)
    band = fitted.band(float(ts[m]) if m < n else float(pts[-1]), float(np.ptp(ts)) + step)
    detector: Detector = ProphetBandDetector(band, period, fitted.fit_seconds, options=p)
    if p.normalise:
        detector = Normalised(detector)
    out = np.zeros(n)
    if m < n:
        out[m:] = detector.update_many(values[m:], ts[m:]).score
    return out

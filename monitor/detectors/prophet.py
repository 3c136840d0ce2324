"""The Prophet forecast band behind the ``Detector`` interface, and the one place it is built.

Prophet learns in batches, not per sample: ``learn_one`` does nothing, and the detector is built by
:meth:`ProphetBandDetector.fit` from training data (``needs_fit``: the registry's ``build`` calls it, and
the monitor refits through the same call every ``--retrain-every`` seconds). The band is
``monitor.forecast.Band``, ``yhat +/- k * sigma`` on a time grid predicted ahead; scores go through
``options.finish`` / ``finish_one`` like every other detector's, so ``direction`` and ``min_deviation``
mean the same here. ``normalise=true`` returns the band wrapped in ``monitor.detectors.normalise``'s
``Normalised``: its residuals re-scored against their own recent history, the post-processing that makes
the band usable on NAB (docs/seasonal-baseline.md); applied here, the one place the band is built.

Complexity: O(1) per point, streaming or vectorised: an index into the precomputed grid. A point past the
grid's end extends it by ``horizon`` at once (one Prophet ``predict`` over ``horizon / step`` grid
points), so that cost is amortised over the points the extension covers. Memory O(horizon / step).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.detectors.base import FittedDetector
from monitor.detectors.normalise import Normalised
from monitor.detectors.options import DetectorOptions, finish, finish_one
from monitor.detectors.scores import Score, Scores
from monitor.forecast import Band

log = logging.getLogger(__name__)

# The band's defaults, written once (MonitorConfig and the evaluation take them from here): measured on
# the simulator's waves, k = 4 robust sigmas flags no clean sample per hour and every quarter-range shift.
DEFAULT_K = 4.0
DEFAULT_FOURIER_ORDER = 12
DEFAULT_HORIZON_S = 6 * 3600.0
# Prophet builds 2 * fourier_order columns per row: 100 is already far more than any period's shape
# needs, and an order of 100,000 makes it allocate until it dies (std::bad_alloc).
MAX_FOURIER_ORDER = 100


@dataclass(frozen=True)
class ProphetParams(DetectorOptions):
    k: float = DEFAULT_K  # band half-width in robust sigmas of the training residuals
    fourier_order: int = DEFAULT_FOURIER_ORDER
    period: float = 0.0  # seconds; 0: detect it on the training data
    # Re-score the residuals by their own recent history (monitor.detectors.normalise).
    normalise: bool = False

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


@dataclass(frozen=True)
class ModelStore:
    """Where fitted models are kept between runs (``monitor.modelstore``), under ``name``'s files.

    ``on_save_error`` is called when a save fails (a full disk): the model is then used from memory.
    """

    model_dir: Path
    name: str
    on_save_error: Callable[[], None] | None = None


class ProphetBandDetector(FittedDetector):
    """Prophet's forecast band as a detector; build it with :meth:`fit`.

    >>> import numpy as np
    >>> from monitor.forecast import Band
    >>> flat = lambda ts: np.full(np.size(ts), 100.0)  # a forecast of 100 everywhere, band +/- 5
    >>> d = ProphetBandDetector(Band(0.0, 1.0, flat(np.arange(60)), 5.0, flat), period=60.0)
    >>> d.score_one(102.5, 10.0).score, d.score_one(110.0, 10.0).anomalous
    (0.5, True)
    """

    Params = ProphetParams
    needs_fit = True  # built from training data by fit(), never from nothing; learn_one does nothing

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

    @classmethod
    def fit(
        cls,
        p: ProphetParams,
        ts: np.ndarray,
        vs: np.ndarray,
        *,
        store: ModelStore | None = None,
        horizon: float = DEFAULT_HORIZON_S,
        start_at: float | None = None,
        fallback_period: float | None = None,
        refuse_useless_band: bool = True,
    ) -> ProphetBandDetector | Normalised:
        """Detect the period (unless ``p.period`` is given), fit (or load from ``store``) and return a
        detector whose band covers ``horizon`` seconds from ``start_at`` (default: the last sample).

        Raises ``monitor.period.PeriodError`` (a ``ValueError``; ``NoSeasonError`` when the data holds no
        season) unless ``fallback_period`` is given, and ``forecast.UselessBandError`` when the band is
        wider than the data's range (``refuse_useless_band``). The detector's ``p`` holds the period used,
        so a refit with ``p`` keeps it. With ``p.normalise`` the detector comes wrapped in ``Normalised``
        (which keeps the band's ``p`` and ``fit_seconds``).
        """
        from monitor import forecast, modelstore
        from monitor.period import PeriodError, check_period, detect_period, sampling_step

        ts = np.asarray(ts, dtype=np.float64)
        vs = np.asarray(vs, dtype=np.float64)
        if p.period:
            check_period(p.period, ts)
            period = p.period
        else:
            try:
                period = detect_period(ts, vs)
            except PeriodError:
                if fallback_period is None:
                    raise
                period = fallback_period
        step = sampling_step(ts)
        path = None
        if store is not None:
            settings = {"period": period, "k": p.k, "fourier_order": p.fourier_order, "step": step}
            path = modelstore.model_path(store.model_dir, store.name, modelstore.model_key(ts, vs, settings))
        fitted = modelstore.load(path) if path is not None else None
        loaded = fitted is not None
        if fitted is None:
            fitted = forecast.fit(ts, vs, period, step, k=p.k, fourier_order=p.fourier_order)
        if refuse_useless_band:
            forecast.check_band_can_flag(
                fitted.k * fitted.sigma, fitted.period, vs
            )  # before it is stored: a refused model is never loaded
        if store is not None and path is not None and not loaded:
            try:
                modelstore.save(path, fitted)
            except OSError as exc:  # a full disk must not stop a monitor that holds its model in memory
                log.error(
                    "cannot save the model to %s (%s): running on the model in memory",
                    path,
                    exc.strerror or exc,
                )
                if store.on_save_error is not None:
                    store.on_save_error()
        log.info(
            "%s model: period %.6g s, band +/- %.4g, %s",
            store.name if store is not None else "prophet",
            period,
            fitted.k * fitted.sigma,
            f"loaded from {path}" if loaded else f"fitted in {fitted.fit_seconds:.2f} s",
        )
        band = fitted.band(float(ts[-1]) if start_at is None else start_at, horizon)
        # A loaded model reports the duration of the fit that made it: the figure an operator asks about.
        detector = cls(
            band, period, fitted.fit_seconds, loaded=loaded, options=dataclasses.replace(p, period=period)
        )
        return Normalised(detector) if p.normalise else detector

    def score_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        expected, lower, upper = self.band.lookup(np.asarray(ts, dtype=np.float64))
        return finish(self.p, xs, expected, lower, upper)

    def score_one(self, x: float, t: float) -> Score:
        expected, lower, upper = self.band.lookup(np.array([t], dtype=np.float64))
        return finish_one(self.p, float(x), float(expected[0]), float(lower[0]), float(upper[0]))

    def band_at(self, t: float) -> tuple[float, float, float] | None:
        """(lower, expected, upper) at time ``t``, the band ``update_many`` scores a sample at ``t`` against;
        None when ``t`` is outside the predicted grid (it never predicts: the exporter calls it per scrape).
        """
        return self.band.peek(t)

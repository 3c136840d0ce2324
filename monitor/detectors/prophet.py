"""The Prophet forecast band as a columnar detector: each row holds one fitted series' profile.

The monitor's Prophet model has flat growth and one seasonality, so its forecast repeats exactly every
period: a fit is kept as a :class:`Profile`, the forecast over one period on a phase grid of
``PROFILE_POINTS`` values and the band's half-width (``k`` robust sigmas of the training residuals,
``monitor.forecast``). A row of :class:`ProfileBand` holds one profile in arrays (``period``,
``anchor``, ``values``, ``half_width``, ``fit_seconds``, ``step``); it scores any time with an index
into its grid and never calls Prophet again (no grid to extend, no horizon). Prophet learns in batches,
not per sample: the detector learns nothing online, and a refit installs a new profile (``put`` from a
detector made with ``of``). Two ways fit one, into the same ``Profile``: ``monitor.prophet_profile.
fit_profile`` in a worker process (the monitor), and :meth:`ProfileBand.fit` in this process (the
evaluation, ``registry.build``; with a model store).

Scores go through ``options.finish`` like every other detector's, so ``direction`` and ``min_deviation``
mean the same here. ``normalise=true`` returns the band wrapped in ``monitor.detectors.normalise``'s
``Normalised``: its residuals re-scored against their own recent history, the post-processing that makes
the band usable on NAB (docs/seasonal-baseline.md).

Complexity: O(1) per point and row; state ``8 * PROFILE_POINTS + 48`` bytes a series (4 KiB).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from monitor.detectors import learning
from monitor.detectors.base import Detector, State
from monitor.detectors.normalise import Normalised
from monitor.detectors.options import DetectorOptions
from monitor.detectors.scores import Scores

if TYPE_CHECKING:
    from monitor.forecast import FittedModel

log = logging.getLogger(__name__)

# The band's defaults, written once (MonitorConfig and the evaluation take them from here): measured on
# the simulator's waves, k = 4 robust sigmas flags no clean sample per hour and every quarter-range shift.
DEFAULT_K = 4.0
DEFAULT_FOURIER_ORDER = 12
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


PROFILE_POINTS = 512
"""Values a profile holds over one period (a flat one holds one)."""


@dataclass(frozen=True)
class Profile:
    """What a fit leaves: ``values`` over one period from ``anchor`` (period 0: flat), and the band.

    A time is looked up at the training grid's sample time at or before it (``step``; within 1% of a
    step), in phase with the training samples: a metric that changes once per scrape holds its value
    until the next one, as Prometheus' lookups do, where interpolating would be up to a step off. That
    time's forecast is interpolated between the grid's values (``step`` 0: the time itself).

    >>> p = Profile(60.0, 0.0, np.array([0.0, 10.0, 20.0, 30.0]), 5.0, step=15.0)
    >>> p.expected(np.array([0.0, 14.0, 15.0, 29.99, 75.0])).tolist()
    [0.0, 0.0, 10.0, 20.0, 10.0]
    """

    period: float  # 0.0: no season, ``values`` holds one level
    anchor: float
    values: np.ndarray
    half_width: float
    fit_seconds: float = 0.0
    no_season: str = ""  # why the series was fitted without a season, when it was
    step: float = 0.0  # the training samples' step (0: no holding, every time interpolated)

    def expected(self, ts: np.ndarray) -> np.ndarray:
        """The forecast at times ``ts`` (``ProfileBand``'s arithmetic, for a profile of any size)."""
        ts = np.asarray(ts, dtype=np.float64)
        if self.step > 0:
            ts = self.anchor + np.floor((ts - self.anchor) / self.step + 0.01) * self.step
        if self.period == 0.0:
            return np.full(ts.shape, float(self.values[0]))
        grid = np.arange(self.values.size) * (self.period / self.values.size)
        return np.interp(np.mod(ts - self.anchor, self.period), grid, self.values, period=self.period)


def unfitted() -> Profile:
    """The profile of a series whose fit has not arrived: no expected value, so every point scores 0."""
    return Profile(0.0, 0.0, np.array([np.nan]), np.nan, 0.0)


def profile_of(fitted: FittedModel, fit_seconds: float | None = None) -> Profile:
    """The profile of a fitted Prophet model: one period predicted on the grid from a training sample
    (``fitted.anchor``), holding at the training step."""
    from monitor.forecast import predict_expected

    grid = fitted.anchor + np.arange(PROFILE_POINTS) * (fitted.period / PROFILE_POINTS)
    return Profile(
        fitted.period,
        fitted.anchor,
        predict_expected(fitted.model, grid),
        fitted.k * fitted.sigma,
        fitted.fit_seconds if fit_seconds is None else fit_seconds,
        step=fitted.step,
    )


class ProfileBand(Detector):
    """Fitted ``Profile`` bands, one per row: ``expected +/- half_width``; learns nothing online.

    A row's model is installed by ``put`` from a detector made with ``of`` (a fit finished in a worker
    process); until then its band is NaN and it scores 0 (``warming``). The expected value at any time
    is the profile's, so ``band_at`` gives the band at scrape time as well. Absurd values
    (``learning.sane``) score +inf, as in every detector.

    >>> flat = Profile(0.0, 0.0, np.array([100.0]), 5.0, 0.1)
    >>> d = ProfileBand.of(flat)
    >>> d.update_many(np.array([102.5, 110.0]), np.array([10.0, 20.0])).score.tolist()
    [0.5, 2.0]
    >>> [float(a[0]) for a in d.band_at(np.array([30.0]))]  # (expected, lower, upper)
    [100.0, 95.0, 105.0]
    """

    Params = ProphetParams
    needs_fit = True  # built from training data (``fit``, or a worker's profile), never from nothing

    def __init__(self, params: DetectorOptions | None = None, rows: int = 1) -> None:
        super().__init__(params, rows)
        self.loaded = False  # True when ``fit`` loaded its model from the model store

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
        if grid.size != PROFILE_POINTS:
            raise ValueError(f"a profile holds 1 or {PROFILE_POINTS} values, got {values.size}")
        st = d.state
        st["period"][:], st["anchor"][:], st["values"][:] = profile.period, profile.anchor, grid
        st["half_width"][:], st["fit_seconds"][:] = profile.half_width, profile.fit_seconds
        st["step"][:] = profile.step
        return d

    def warming(self) -> np.ndarray:
        return np.isnan(self.state["half_width"])

    @property
    def fit_seconds(self) -> float | None:
        """The one row's fit duration; None for many rows."""
        return float(self.state["fit_seconds"][0]) if self.rows == 1 else None

    @property
    def period(self) -> float | None:
        """The one row's period in seconds (0: no season); None for many rows."""
        return float(self.state["period"][0]) if self.rows == 1 else None

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

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        # One column (as a wrapper such as ``Normalised`` steps its inner detector): nothing to learn.
        expected, lower, upper = self.band_at(t)
        return self.finish(x, expected, lower, upper)

    def _update(self, x: np.ndarray, t: np.ndarray) -> Scores:
        # Every column at once: nothing is learnt, so no column depends on the one before it.
        expected, lower, upper = self.band_at(t)
        s = self.finish(x, expected, lower, upper)
        sane = learning.sane(x)
        s.score[np.isnan(x)] = np.nan
        s.score[~np.isnan(x) & ~sane] = np.inf
        self.state["n"] += sane.sum(axis=1)
        return s

    @classmethod
    def fit(
        cls,
        p: ProphetParams,
        ts: np.ndarray,
        vs: np.ndarray,
        *,
        store: ModelStore | None = None,
        fallback_period: float | None = None,
        refuse_useless_band: bool = True,
    ) -> ProfileBand | Normalised:
        """Detect the period (unless ``p.period`` is given), fit (or load from ``store``) and return a
        one-row detector holding the fit's profile.

        Raises ``monitor.period.PeriodError`` (a ``ValueError``; ``NoSeasonError`` when the data holds no
        season) unless ``fallback_period`` is given, and ``forecast.UselessBandError`` when the band is
        wider than the data's range (``refuse_useless_band``). The detector's ``p`` holds the period used,
        so a refit with ``p`` keeps it. With ``p.normalise`` the detector comes wrapped in ``Normalised``
        (which keeps the band's ``p`` and ``fit_seconds``). The monitor fits in worker processes instead
        (``monitor.prophet_profile.fit_profile``), into the same ``Profile``.
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
            # Before it is stored: a refused model is never loaded.
            forecast.check_band_can_flag(fitted.k * fitted.sigma, fitted.period, vs)
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
        # A loaded model reports the duration of the fit that made it: the figure an operator asks about.
        detector = cls.of(profile_of(fitted), dataclasses.replace(p, period=period))
        detector.loaded = loaded
        return Normalised(detector) if p.normalise else detector

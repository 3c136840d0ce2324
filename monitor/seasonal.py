"""A seasonal baseline without Prophet: a robust per-phase profile, fitted in milliseconds.

Fit, for a period ``P`` (given, or found by ``monitor.period``):

1. Level and trend: the median of each complete cycle ``[t0 + cP, t0 + (c+1)P)``, interpolated linearly
   between the cycles' centres (held flat beyond them). Medians, so an anomaly in the history does not
   move the level, and a slow drift in the history does not smear the shape.
2. Profile: the phase axis is cut into ``bins`` (one per sample when a period holds at most ``max_bins``
   samples, else ``max_bins``); each bin's value is the median of the detrended samples that fall in it,
   and a bin holding fewer than ``SMOOTH_BELOW`` samples is averaged with ``smooth`` neighbours on each
   side (a triangular kernel, circular), so a median of two noisy samples does not carry its noise into
   the forecast; well-filled bins keep their own median, so sharp corners stay sharp. Bins without
   samples take their neighbours'.
3. Spread: ``sigma = 1.4826 * MAD`` of the in-sample residuals (the residual band of
   ``monitor.forecast``, which stays calibrated where Prophet's sampled interval widens with the horizon),
   times ``sqrt(1 + pi / 2m)`` for bins of ``m`` samples: the error of the profile's medians, which a new
   sample meets on top of its own noise.
4. Forecast: ``level + profile(phase)``, the profile linearly interpolated between bin centres, with
   ``level`` the median of the deseasonalised samples of the last period or the last ``level_points``
   samples, whichever is longer: flat, never extrapolated, and not pulled along by an anomaly that is
   under way when the fit happens (a drift measured in the last period alone became the new level).

Cost: two sorts of the samples (``O(n log n)``) and a few passes; measured in ``bench.detectors``.
Period detection is the expensive part (``monitor.period`` folds the data 601 times), so it looks at
the most recent ``DETECT_MAX_POINTS`` samples only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.forecast import robust_sigma
from monitor.period import PeriodError, detect_period, sampling_step

# 0.12 s for period detection on 10,000 points, 0.5 s on 43,200 (monitor.period's fold search); 10,000
# samples hold 100 periods of the simulator's waves, and 34 days of 5-minute data.
DETECT_MAX_POINTS = 10_000
# A bin's median of this many samples is trusted as it is; fewer are smoothed with the neighbours'.
SMOOTH_BELOW = 8


@dataclass(frozen=True)
class SeasonalModel:
    """A fitted profile: ``expected(t) = level + profile at t's phase``; ``period`` 0 means no season."""

    period: float
    anchor: float  # phase 0 (a training timestamp)
    profile: np.ndarray  # offsets from the level, one per phase bin
    level: float
    sigma: float

    @property
    def bins(self) -> int:
        return int(self.profile.size)

    def expected(self, ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts, dtype=np.float64)
        if not self.period:
            return np.full(ts.shape, self.level)
        pos = np.mod(ts - self.anchor, self.period) / self.period * self.bins
        lo = np.floor(pos)
        frac = pos - lo
        i = lo.astype(np.int64) % self.bins
        j = (i + 1) % self.bins
        return self.level + (self.profile[i] + frac * (self.profile[j] - self.profile[i]))

    def expected_one(self, t: float) -> float:
        """:meth:`expected` for one timestamp, with the same arithmetic (so the same result)."""
        if not self.period:
            return self.level
        pos = ((t - self.anchor) % self.period) / self.period * self.bins
        lo = math.floor(pos)
        frac = pos - lo
        i = lo % self.bins
        j = (i + 1) % self.bins
        a = float(self.profile[i])
        return self.level + (a + frac * (float(self.profile[j]) - a))


def group_medians(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` in each group ``0 .. n_groups - 1`` (NaN for an empty group), in one sort."""
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    count = np.bincount(g, minlength=n_groups)
    start = np.concatenate(([0], np.cumsum(count)[:-1]))
    out = np.full(n_groups, np.nan)
    has = count > 0
    lo = start[has] + (count[has] - 1) // 2
    hi = start[has] + count[has] // 2
    out[has] = 0.5 * (v[lo] + v[hi])
    return out


def smooth_circular(profile: np.ndarray, width: int) -> np.ndarray:
    """Triangular-kernel average over ``width`` neighbours on each side, wrapping around the period;
    empty (NaN) bins are filled from their neighbours first."""
    p = profile.copy()
    if np.isnan(p).any():
        idx = np.arange(p.size)
        ok = ~np.isnan(p)
        p = np.interp(idx, idx[ok], p[ok], period=p.size)
    if width <= 0 or p.size < 3:
        return p
    width = min(width, (p.size - 1) // 2)
    total = np.zeros_like(p)
    weight = 0.0
    for d in range(-width, width + 1):
        w = width + 1 - abs(d)
        total += w * np.roll(p, d)
        weight += w
    return total / weight


def find_period(ts: np.ndarray, vs: np.ndarray) -> float:
    """``monitor.period.detect_period`` on the most recent ``DETECT_MAX_POINTS`` samples."""
    return detect_period(ts[-DETECT_MAX_POINTS:], vs[-DETECT_MAX_POINTS:])


def fit(
    ts: np.ndarray,
    vs: np.ndarray,
    period: float,
    max_bins: int = 1440,
    smooth: int = 1,
    level_points: int = 0,
) -> SeasonalModel:
    """Fit the profile of samples ``vs`` at ``ts`` (ascending) for ``period`` seconds (0: no season).

    Raises ``PeriodError`` when the samples span less than two periods.
    """
    ts = np.asarray(ts, dtype=np.float64)
    vs = np.asarray(vs, dtype=np.float64)
    floor = 1e-9 * max(1.0, float(np.max(np.abs(vs)))) if vs.size else 1e-9
    if not period:
        level = float(np.median(vs))
        return SeasonalModel(0.0, float(ts[-1]), np.zeros(1), level, max(robust_sigma(vs - level), floor))
    t0, t1 = float(ts[0]), float(ts[-1])
    step = sampling_step(ts)
    if t1 - t0 + step < 2 * period:
        raise PeriodError(f"need two periods of {period:g} s, the samples span {t1 - t0 + step:g} s")
    # 1. Level and trend from the complete cycles' medians.
    cycle = np.floor((ts - t0) / period).astype(np.int64)
    complete = int((t1 - t0 + step / 2) // period)
    inside = cycle < complete
    cyc_med = group_medians(cycle[inside], vs[inside], complete)
    centres = t0 + (np.arange(complete) + 0.5) * period
    ok = ~np.isnan(cyc_med)
    trend = np.interp(ts, centres[ok], cyc_med[ok])
    # 2. Profile: per-bin medians of the detrended samples; bin b is centred on phase b / bins.
    bins = max(1, min(max_bins, round(period / step)))
    anchor = t1
    pos = np.mod(ts - anchor, period) / period * bins
    b = np.floor(pos + 0.5).astype(np.int64) % bins
    medians = group_medians(b, vs - trend, bins)
    smoothed = smooth_circular(medians, smooth)
    few = np.bincount(b, minlength=bins) < SMOOTH_BELOW
    profile = np.where(few, smoothed, medians)
    model = SeasonalModel(period, anchor, profile, 0.0, 0.0)
    shape = model.expected(ts)  # the profile alone (level 0), as it will be scored
    # 3. Spread of the in-sample residuals, widened for the profile's own error: a median of m noisy
    # samples is off by about sigma * sqrt(pi / 2m), and a new sample carries that error on top of its
    # noise (at 12 samples a bin, right after warm-up, that is 6%; at hundreds, nothing).
    per_bin = max(1.0, float(np.median(np.bincount(b, minlength=bins))))
    sigma = max(robust_sigma(vs - trend - shape) * math.sqrt(1 + math.pi / (2 * per_bin)), floor)
    # 4. The level now: the last period (or level_points samples), deseasonalised.
    last = max(int(np.count_nonzero(ts > t1 - period)), level_points)
    level = float(np.median(vs[-last:] - shape[-last:]))
    return SeasonalModel(period, anchor, profile, level, sigma)

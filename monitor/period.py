"""The dominant period of a series: autocorrelation for the rough lag, then a refinement by folding.

A period off by 0.05 s drifts by 40 s of phase over a day, which would make a model trained on
yesterday's file useless today, so the autocorrelation peak (good to one sample) is refined by folding
the raw samples at candidate periods around it and keeping the one with the smallest within-phase
scatter. Scraped metrics usually repeat in a whole number of scrape intervals (the simulator's waves
do, and a daily cycle is a whole number of 15 s or 30 s scrapes), so a whole number of sampling steps
wins whenever it folds as well as the best fractional candidate.
"""

from __future__ import annotations

import numpy as np

# A whole number of steps is kept unless the best fractional period folds clearly better: by more than
# three standard deviations of the scatter's own noise (a chi-square with n - bins degrees of freedom
# has a relative spread of sqrt(2 / dof)), and never by less than this floor.
WHOLE_STEP_TOLERANCE_FLOOR = 0.02


# White noise's autocorrelation at lag k is about N(0, 1/n): over the few hundred lags searched its highest
# peak stays below 4.2 / sqrt(n) (measured: 50 seeds at n = 100 to 10,000). A season must stand clearly
# above that: a sine whose amplitude is half the noise's deviation reaches 5.6 / sqrt(n) over an hour.
SEASON_Z = 5.0


class PeriodError(ValueError):
    """The data does not show a period we can trust (too short, constant, or no repeating shape)."""


class NoSeasonError(PeriodError):
    """The data holds no significant season: constant, a trend, or noise. Not a matter of too little
    data; a caller may fall back to a model without a season instead of inventing a period."""


def sampling_step(timestamps: np.ndarray) -> float:
    """The typical spacing of the samples (the median, so gaps and jitter do not move it)."""
    diffs = np.diff(np.asarray(timestamps, dtype=np.float64))
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        raise PeriodError("need at least two distinct timestamps")
    # Prometheus stores milliseconds and scrape intervals are round numbers: jitter must not leak in.
    return max(0.001, round(float(np.median(diffs)), 3))


def check_period(period: float, timestamps: np.ndarray) -> None:
    """Refuse a given period the data cannot support: shorter than two samples (nothing to shape) or
    longer than half the span (fewer than two seasons to learn from), as ``detect_period`` requires."""
    ts = np.asarray(timestamps, dtype=np.float64)
    step = sampling_step(ts)
    lo, hi = 2 * step, float(ts[-1] - ts[0]) / 2
    if not lo <= period <= hi:
        raise PeriodError(
            f"period {period:g} s is outside what this data allows: from {lo:g} s (two sampling steps) "
            f"to {hi:g} s (half the training span)"
        )


def find_season(timestamps: np.ndarray, values: np.ndarray) -> float | None:
    """``detect_period``, or None when the data holds no significant season (``NoSeasonError``).

    Other ``PeriodError``s (too few samples, fewer than two periods in the span) still raise.
    """
    try:
        return detect_period(timestamps, values)
    except NoSeasonError:
        return None


def detect_period(timestamps: np.ndarray, values: np.ndarray) -> float:
    """The dominant period in seconds of the samples (``timestamps`` ascending, epoch seconds).

    Raises ``NoSeasonError`` when no period stands out of the noise, ``PeriodError`` when the data is
    too short to tell.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    vs = np.asarray(values, dtype=np.float64)
    step = sampling_step(ts)
    rough_lag = autocorrelation_lag(ts, vs, step)
    return refine_period(ts, vs, rough_lag * step, step)


def autocorrelation_lag(ts: np.ndarray, vs: np.ndarray, step: float) -> int:
    """Lag (in steps) of the highest autocorrelation peak after the first zero crossing."""
    grid = np.arange(ts[0], ts[-1] + step / 2, step)
    if grid.size < 8:
        raise PeriodError(f"need at least 8 evenly spaced samples, got {grid.size}")
    y = np.interp(grid, ts, vs)
    # Detrend so a slow drift does not masquerade as a very long period.
    y = y - np.polyval(np.polyfit(np.arange(y.size), y, 1), np.arange(y.size))
    if not np.any(np.abs(y) > 1e-12 * (1 + np.max(np.abs(vs)))):
        raise NoSeasonError("the data is constant after removing its trend: no season to learn")
    n = y.size
    spectrum = np.fft.rfft(y, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    acf = acf / acf[0]  # the biased estimate: longer lags shrink, so the fundamental beats its multiples
    below = np.flatnonzero(acf < 0)
    if below.size == 0:
        raise NoSeasonError("the autocorrelation never turns negative: no repeating shape")
    first = int(below[0])
    max_lag = n // 2  # at least two full periods must fit in the data
    if first >= max_lag:
        raise PeriodError("the training span holds fewer than two periods")
    lag = first + int(np.argmax(acf[first:max_lag]))
    if acf[lag] <= 0:
        raise NoSeasonError("no positive autocorrelation peak: no repeating shape")
    floor = SEASON_Z / np.sqrt(n)
    if acf[lag] < floor:
        raise NoSeasonError(
            f"no significant season: the strongest repeat ({lag * step:g} s) has an autocorrelation of "
            f"{acf[lag]:.3f}, below the {floor:.3f} that noise alone stays under"
        )
    return lag


def fold_scatter(ts: np.ndarray, vs: np.ndarray, period: float, bins: int) -> float:
    """Sum of squared deviations from the mean of each phase bin when folding at ``period``."""
    # Phase from the first sample plus half a bin: samples on a whole-step grid sit mid-bin, never on a
    # rounding edge, whatever their offset from the epoch.
    phase = np.mod(ts - ts[0], period) / period
    idx = np.floor(phase * bins + 0.5).astype(np.int64) % bins
    count = np.bincount(idx, minlength=bins)
    total = np.bincount(idx, weights=vs, minlength=bins)
    total_sq = np.bincount(idx, weights=vs * vs, minlength=bins)
    nonzero = count > 0
    return float(np.sum(total_sq[nonzero] - total[nonzero] ** 2 / count[nonzero]))


def refine_period(ts: np.ndarray, vs: np.ndarray, rough: float, step: float) -> float:
    """Search around ``rough`` (+/- 1.5 steps) for the period that folds the samples most tightly."""
    bins = max(8, round(rough / step))
    candidates = np.linspace(max(step, rough - 1.5 * step), rough + 1.5 * step, 601)
    scatter = np.array([fold_scatter(ts, vs, p, bins) for p in candidates])
    best = float(candidates[int(np.argmin(scatter))])
    best_scatter = float(np.min(scatter))
    whole = round(best / step) * step
    dof = max(1, ts.size - bins)
    tolerance = max(WHOLE_STEP_TOLERANCE_FLOOR, 3 * float(np.sqrt(2 / dof)))
    if whole > 0 and fold_scatter(ts, vs, whole, bins) <= best_scatter * (1 + tolerance):
        return float(whole)
    return best

"""What a detector may learn of a sample: one rule for every detector (issues 20 and 22).

Two parts, applied in one place each:

1. **Absurd values are not samples.** A value of magnitude ``ABSURD`` (1e100) or more is scored ``+inf``
   (as far from any band as a value can be, like ``+/-inf``) and never learnt. No metric comes within
   seventy orders of magnitude of it (byte counters reach 1e20), and below it the squares and products of
   sums that detectors keep (a window's sum of squares, a line fit's ``Stt * Syy``) stay finite: 1e200
   times a window's length is far from float64's 1.8e308. ``Detector.update`` applies it (``sane``).
2. **What is learnt is capped by the band.** Once a row has a band (it scores), it learns
   ``learnable(x)``: the value pulled back to at most ``LEARN_REACH`` half-widths from the expected
   value on its side, so a point scored anomalous enters a statistic as a point at score
   ``LEARN_REACH``, never as itself. A detector calls ``Detector.learnable`` with the band it scored the
   point against (after ``min_deviation``; ``direction`` does not matter: a value far below is not the
   series' normal either). A band of zero width (a flat series) is widened to ``FLAT_FLOOR`` times the
   expected value's magnitude (at least ``FLAT_FLOOR``), so a flat series that moves still learns the
   move. ``LEARN_REACH`` is 1000 and ``FLAT_FLOOR`` 1e-3: the cap only keeps out what no band could
   follow (1e17 on a series at 100 blinded ``ema`` for thousands of points; now it is learnt as 1000
   half-widths and forgotten within about a hundred), while ordinary anomalies are learnt as before; a
   tight cap (3 half-widths) cost far more accuracy (docs/benchmarks.md, "The learning cap").
   A real level shift is still learnt: each capped point widens the band it is capped by, so the
   detector catches up geometrically (EMA's default band grows about 2.4 times a point), and the shift
   is flagged for longer than when it was learnt at once. Before its band exists (warm-up) a row learns
   what it gets, within ``ABSURD``: an outlier among the first points costs what it always did, until
   the detector's window or memory has passed it.

Detectors without a band of their own say which band they learn by (``trend``: the raw window's mean
+/- 4 sd); the Isolation Forest (per-series objects, ranks rather than sums) takes part 1 only.
"""

from __future__ import annotations

import numpy as np

ABSURD = 1e100
"""Values at least this large in magnitude are scored +inf and never learnt."""
LEARN_REACH = 1000.0
"""A learnt value is at most this many band half-widths from the expected value."""
FLAT_FLOOR = 1e-3
"""A zero-width band caps learning as if its half-width were this times max(1, |expected|)."""


def sane(x: np.ndarray) -> np.ndarray:
    """True where ``x`` is a sample a detector may learn: finite and below ``ABSURD`` in magnitude."""
    with np.errstate(invalid="ignore"):
        return np.abs(x) < ABSURD


def learnable(
    x: np.ndarray,
    expected: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    reach: float = LEARN_REACH,
) -> np.ndarray:
    """``x`` capped to ``reach`` half-widths of its band on each side; ``x`` where there is no band.

    >>> band = np.full(4, 5.0), np.full(4, 4.0), np.full(4, 7.0)  # expected 5, lower 4, upper 7
    >>> learnable(np.array([5.0, 100.0, -100.0, 7.0]), *band, reach=3.0)
    array([ 5., 11.,  2.,  7.])
    >>> learnable(np.array([3.0]), np.array([np.nan]), np.array([np.nan]), np.array([np.nan]))
    array([3.])
    """
    floor = FLAT_FLOOR * np.maximum(1.0, np.abs(expected))
    with np.errstate(invalid="ignore"):
        hi = expected + reach * np.maximum(upper - expected, floor)
        lo = expected - reach * np.maximum(expected - lower, floor)
        capped = np.minimum(np.maximum(x, lo), hi)
    # NaN: no band on a side (warm-up, or a detector without one), or no sample: nothing to cap by.
    return np.where(np.isnan(capped), x, capped)

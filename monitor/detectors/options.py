"""Options every detector honours, in one place: which side may alert, and how small a deviation is ignored.

``direction`` keeps only deviations on one side (``above``: values over the expected one; ``below``:
under it; ``both``). ``min_deviation`` is an absolute floor on the band's half-width, in the metric's
unit, so a flat, quiet series whose learnt spread is nearly zero does not alert on tiny wiggles: a point
less than ``min_deviation`` away from the expected value always scores below 1.

Detectors build their bands, then call :func:`finish` which applies both options and computes the
common score with ``base.band_score``; warm-up points (``expected`` NaN) score 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.detectors.scores import Score, Scores, band_score
from streamwatch.scores import DIRECTIONS, Direction, mask_direction, side_allowed


@dataclass(frozen=True)
class DetectorOptions:
    direction: Direction = "both"
    min_deviation: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of above, below, both, got {self.direction!r}")
        if not self.min_deviation >= 0:
            raise ValueError(f"min_deviation must be >= 0, got {self.min_deviation}")


def finish(
    opts: DetectorOptions, x: np.ndarray, expected: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> Scores:
    """Widen each band side to at least ``min_deviation``, score, then mask the side ``direction`` ignores."""
    x, expected, lower, upper = (np.asarray(a, dtype=np.float64) for a in (x, expected, lower, upper))
    if opts.min_deviation > 0:
        upper = np.maximum(upper, expected + opts.min_deviation)
        lower = np.minimum(lower, expected - opts.min_deviation)
    score = band_score(x, expected, lower, upper)
    score = mask_direction(opts.direction, x, expected, score)
    return Scores(score=score, expected=expected, lower=lower, upper=upper)


def finish_one(opts: DetectorOptions, x: float, expected: float, lower: float, upper: float) -> Score:
    """Scalar form of :func:`finish` for the streaming path (same arithmetic, so the same results)."""
    if expected != expected:  # NaN: still warming up
        return Score(0.0)
    if opts.min_deviation > 0:
        upper = max(upper, expected + opts.min_deviation)
        lower = min(lower, expected - opts.min_deviation)
    if x >= expected:
        dev, half = x - expected, upper - expected
    else:
        dev, half = expected - x, expected - lower
    s = dev / half if half > 0 else (float("inf") if dev > 0 else 0.0)
    if not side_allowed(opts.direction, x, expected):
        s = 0.0
    return Score(s, expected, lower, upper)


def empty_scores(n: int) -> Scores:
    nan = np.full(n, np.nan)
    return Scores(score=np.zeros(n), expected=nan, lower=nan.copy(), upper=nan.copy())

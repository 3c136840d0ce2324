"""The one scale every detector scores on, for every package that reads scores.

A score above ``ANOMALY_THRESHOLD`` is an anomaly, whatever the detector: 1 is exactly the band's edge,
0 exactly as expected. ``direction`` keeps deviations on one side only (``above``: values over the
expected one; ``below``: under it; ``both``), and ``mask_direction`` applies it to scores.

>>> import numpy as np
>>> x, expected = np.array([5.0, 15.0, 12.0]), np.array([10.0, 10.0, np.nan])
>>> mask_direction("above", x, expected, np.array([2.0, 2.0, 2.0])).tolist()
[0.0, 2.0, 0.0]
>>> anomalous(np.array([0.5, 1.0, 1.5])).tolist()
[False, False, True]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ANOMALY_THRESHOLD = 1.0
"""A score above it is an anomaly, for every detector. Everything that decides "anomalous" from a score
compares with this name."""

Direction = Literal["above", "below", "both"]
DIRECTIONS: tuple[Direction, ...] = ("above", "below", "both")


def anomalous(score: np.ndarray | float) -> np.ndarray | bool:
    """``score > ANOMALY_THRESHOLD``, elementwise for arrays."""
    return (
        np.asarray(score) > ANOMALY_THRESHOLD if isinstance(score, np.ndarray) else score > ANOMALY_THRESHOLD
    )


def side_allowed(direction: Direction, x: float, expected: float) -> bool:
    """Whether a deviation of ``x`` from ``expected`` is on a side ``direction`` keeps."""
    return not ((direction == "above" and not x > expected) or (direction == "below" and not x < expected))


def mask_direction(
    direction: Direction, x: np.ndarray, expected: np.ndarray, score: np.ndarray
) -> np.ndarray:
    """``score`` with 0 on the side ``direction`` ignores and where there is no expected value (NaN)."""
    score = np.where(np.isnan(expected), 0.0, score)
    if direction == "above":
        score = np.where(x > expected, score, 0.0)
    elif direction == "below":
        score = np.where(x < expected, score, 0.0)
    return score

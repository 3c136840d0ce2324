"""Scores on the one scale every detector shares: ``score > 1`` is anomalous (``ANOMALY_THRESHOLD``).

``score == 1`` is exactly on the band's edge, 0 is exactly as expected. For band detectors that is the
deviation divided by the band's half-width on that side: ``(x - expected) / (upper - expected)`` above,
``(expected - x) / (expected - lower)`` below (``band_score``). Methods without an expected value or band
report NaN for them. ``Scores`` holds arrays of any shape: one series' batch, or a query's ``(rows, T)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from streamwatch.scores import ANOMALY_THRESHOLD, Direction

__all__ = ["ANOMALY_THRESHOLD", "Direction", "Score", "Scores", "band_score"]


@dataclass(frozen=True)
class Score:
    score: float
    expected: float = float("nan")
    lower: float = float("nan")
    upper: float = float("nan")

    @property
    def anomalous(self) -> bool:
        return self.score > ANOMALY_THRESHOLD


@dataclass(frozen=True)
class Scores:
    """Per-point results for a batch; every array has the batch's length."""

    score: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    FIELDS: ClassVar[tuple[str, ...]] = ("score", "expected", "lower", "upper")

    @property
    def anomalous(self) -> np.ndarray:
        return self.score > ANOMALY_THRESHOLD

    def __len__(self) -> int:
        return int(self.score.size)

    @classmethod
    def of(cls, scores: Sequence[Score]) -> Scores:
        """A batch from per-point results (the loops' way to build one)."""
        cols = np.array([(s.score, s.expected, s.lower, s.upper) for s in scores], dtype=np.float64)
        cols = cols.reshape(len(scores), 4)
        return cls(cols[:, 0].copy(), cols[:, 1].copy(), cols[:, 2].copy(), cols[:, 3].copy())

    def at(self, i: int) -> Score:
        return Score(
            float(self.score[i]), float(self.expected[i]), float(self.lower[i]), float(self.upper[i])
        )


def band_score(x: np.ndarray, expected: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Deviation over the band's half-width on the deviating side (> 1: outside the band).

    A zero-width side scores 0 for a value exactly on it and +inf for any value beyond it.
    """
    x, expected, lower, upper = (np.asarray(a, dtype=np.float64) for a in (x, expected, lower, upper))
    above = x >= expected
    dev = np.where(above, x - expected, expected - x)
    half = np.where(above, upper - expected, expected - lower)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a tiny half-width: +inf
        out = np.where(half > 0, dev / np.where(half > 0, half, 1.0), np.where(dev > 0, np.inf, 0.0))
    return np.where(np.isnan(expected), np.nan, out)

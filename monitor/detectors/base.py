"""The one interface every detector implements, in the spirit of river's ``learn_one``/``score_one``.

Scores share one scale for every detector: ``score > 1`` means anomalous, ``score == 1`` is exactly on
the band's edge, 0 is exactly as expected. For band detectors that is the deviation divided by the
band's half-width on that side: ``(x - expected) / (upper - expected)`` above, ``(expected - x) /
(expected - lower)`` below. Methods without an expected value or band report NaN for them.

Streaming order is the contract: ``update_one`` scores a value *before* learning it, and
``update_many`` is the vectorised equivalent of calling ``update_one`` on each value in turn (the same
results to 1e-9), so no detector ever sees a value before scoring it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Direction = Literal["above", "below", "both"]


@dataclass(frozen=True)
class Score:
    score: float
    expected: float = float("nan")
    lower: float = float("nan")
    upper: float = float("nan")

    @property
    def anomalous(self) -> bool:
        return self.score > 1.0


@dataclass(frozen=True)
class Scores:
    """Per-point results for a batch; every array has the batch's length."""

    score: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @property
    def anomalous(self) -> np.ndarray:
        return self.score > 1.0

    def __len__(self) -> int:
        return int(self.score.size)

    def at(self, i: int) -> Score:
        return Score(
            float(self.score[i]), float(self.expected[i]), float(self.lower[i]), float(self.upper[i])
        )


@runtime_checkable
class Detector(Protocol):
    """A streaming anomaly detector over one series. ``t`` is epoch seconds; ``x`` the value."""

    def score_one(self, x: float, t: float) -> Score:
        """Score ``x`` against what has been learnt so far, without learning it."""
        ...

    def learn_one(self, x: float, t: float) -> None:
        """Learn ``x``."""
        ...

    def update_one(self, x: float, t: float) -> Score:
        """Score ``x``, then learn it."""
        ...

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        """Vectorised ``update_one`` over a batch in streaming order."""
        ...


class OnlineDetector:
    """Base for streaming detectors: ``update_one`` is ``score_one`` then ``learn_one``.

    Subclasses implement ``score_one``, ``learn_one`` and a vectorised ``update_many``.
    """

    def score_one(self, x: float, t: float) -> Score:
        raise NotImplementedError

    def learn_one(self, x: float, t: float) -> None:
        raise NotImplementedError

    def update_one(self, x: float, t: float) -> Score:
        s = self.score_one(x, t)
        self.learn_one(x, t)
        return s


def band_score(x: np.ndarray, expected: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Deviation over the band's half-width on the deviating side (> 1: outside the band).

    A zero-width side scores 0 for a value exactly on it and +inf for any value beyond it.
    """
    x, expected, lower, upper = (np.asarray(a, dtype=np.float64) for a in (x, expected, lower, upper))
    above = x >= expected
    dev = np.where(above, x - expected, expected - x)
    half = np.where(above, upper - expected, expected - lower)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(half > 0, dev / np.where(half > 0, half, 1.0), np.where(dev > 0, np.inf, 0.0))
    return np.where(np.isnan(expected), np.nan, out)

"""Stand-ins for a fitted monitor: the real band detector over a flat forecast (no Prophet fit), and a
wrapper that records what it scored, so a test counts samples across the runner's cycles."""

from __future__ import annotations

import time

import numpy as np

from monitor.detectors.prophet import Profile, ProfileBand
from monitor.detectors.scores import Scores

NORMAL = 50.0  # the flat forecast's level
TROUBLE = 500.0  # far outside its band


def constant_detector(level: float = NORMAL, half_width: float = 10.0) -> ProfileBand:
    """The band detector over a flat forecast: the real lookup and scoring, without a Prophet fit."""
    return ProfileBand.of(Profile(0.0, time.time(), np.array([level]), half_width))


class Recording:
    """Wraps a detector and keeps every timestamp it scored, to count samples across cycles."""

    def __init__(self, inner: ProfileBand):
        self.inner = inner
        self.ts: list[float] = []
        self.values: list[float] = []

    def score_one(self, x: float, t: float):
        return self.inner.score_one(x, t)

    def learn_one(self, x: float, t: float) -> None:
        self.inner.learn_one(x, t)

    def update_one(self, x: float, t: float):
        self.ts.append(t)
        return self.inner.update_one(x, t)

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        self.ts.extend(float(t) for t in ts)
        self.values.extend(float(x) for x in xs)
        return self.inner.update_many(xs, ts)

"""Isolation Forest (Liu, Ting & Zhou, 2008; scikit-learn's ``IsolationForest``) over short windows of steps.

Each point is described by the last ``window`` differences ``x[i] - x[i-1]`` up to and including its own
(shape, not level, so a series that wanders does not look new). The forest is fitted on the last
``history`` such windows, first once ``history`` points have been seen and then again every ``refit``
points (with a fixed ``seed``: the same data gives the same forest). Until the first fit it scores 0.

Score: scikit-learn's anomaly score ``s = -score_samples`` (about 0.5 for ordinary points, towards 1 for
points isolated in few splits) over ``threshold``, so a score above 1 means ``s > threshold``. There is no
band (expected, lower and upper are NaN); ``direction`` keeps points whose step goes that way, and a step
smaller than ``min_deviation`` never scores above 1.

Complexity: a refit costs O(trees * history * log history) every ``refit`` points (amortised O(1) per
point), scoring O(trees * log history) per point; memory O(history * window). The streaming path asks
the forest about one point at a time (scikit-learn's per-call overhead: about 3,000 points/s);
``update_many`` asks once per refit period. It is one Python object per series (the registry wraps it in
``base.PerSeries``: one call per series per cycle, no array snapshot): for comparison, not for many
series. Absurd values never reach it (``monitor.detectors.learning``); it caps nothing else (its trees
rank steps, no sum can overflow).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from monitor.detectors.base import OnlineDetector
from monitor.detectors.options import DetectorOptions
from monitor.detectors.scores import Score, Scores

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _float32(features: np.ndarray) -> np.ndarray:
    """Steps as scikit-learn's trees hold them (float32): a huge step is the largest one, not an overflow."""
    return np.clip(features, -FLOAT32_MAX, FLOAT32_MAX)


@dataclass(frozen=True)
class IForestParams(DetectorOptions):
    window: int = 8
    history: int = 512
    refit: int = 256
    trees: int = 50
    threshold: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.history < 16:
            raise ValueError(f"history must be >= 16, got {self.history}")
        if self.refit < 1:
            raise ValueError(f"refit must be >= 1, got {self.refit}")
        if self.trees < 1:
            raise ValueError(f"trees must be >= 1, got {self.trees}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


class IsolationForestDetector(OnlineDetector):
    """Isolation Forest over the last ``window`` steps, refitted every ``refit`` points."""

    Params = IForestParams

    def __init__(self, params: IForestParams | None = None) -> None:
        self.p = params or IForestParams()
        self.prev = math.nan
        self.steps: deque[float] = deque(maxlen=self.p.window)
        self.feats: deque[tuple[float, ...]] = deque(maxlen=self.p.history)
        self.model: IsolationForest | None = None  # scikit-learn is imported at the first fit
        self.since_fit = 0

    @property
    def warmup(self) -> int:
        """Points before the first fit (the first ``window`` steps make the first feature)."""
        return self.p.history + self.p.window

    def _feature(self, x: float) -> tuple[float, ...] | None:
        if self.prev != self.prev or len(self.steps) < self.p.window - 1:
            return None
        return (*list(self.steps)[len(self.steps) - self.p.window + 1 :], x - self.prev)

    def _score(self, x: float, raw: float) -> float:
        s = raw / self.p.threshold
        step = x - self.prev
        if (self.p.direction == "above" and not step > 0) or (self.p.direction == "below" and not step < 0):
            return 0.0
        if abs(step) < self.p.min_deviation:
            return min(s, 1.0)
        return s

    def score_one(self, x: float, t: float) -> Score:
        x = float(x)
        f = self._feature(x)
        if f is None or self.model is None:
            return Score(0.0)
        raw = float(-self.model.score_samples(_float32(np.array([f])))[0])
        return Score(self._score(x, raw))

    def learn_one(self, x: float, t: float) -> None:
        x = float(x)
        f = self._feature(x)
        if self.prev == self.prev:
            self.steps.append(x - self.prev)
        self.prev = x
        if f is not None:
            self.feats.append(f)
            self.since_fit += 1
            due = self.model is None and len(self.feats) >= self.p.history
            if due or (self.model is not None and self.since_fit >= self.p.refit):
                self._fit()

    def _fit(self) -> None:
        from sklearn.ensemble import IsolationForest  # ~100 MiB: only in processes that use this detector

        self.model = IsolationForest(
            n_estimators=self.p.trees, max_samples=min(256, len(self.feats)), random_state=self.p.seed
        ).fit(_float32(np.array(self.feats)))
        self.since_fit = 0

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        xs = np.asarray(xs, dtype=np.float64)
        n = len(xs)
        score = np.zeros(n)
        nan = np.full(n, np.nan)
        if n == 0:
            return Scores(score, nan, nan.copy(), nan.copy())
        w = self.p.window
        # Steps known before the batch, then the batch's own: feature i is the w steps ending at xs[i].
        seq = np.concatenate((np.array(self.steps), np.diff(np.concatenate(([self.prev], xs)))))
        lead = len(self.steps)
        valid = ~np.isnan(seq)
        first_ok = int(np.argmax(valid)) if valid.any() else len(seq)
        feats = sliding_window_view(seq, w) if len(seq) >= w else np.empty((0, w))
        # feats[j] ends at seq[j + w - 1], i.e. at batch point j + w - 1 - lead.
        feat_of = np.full(n, -1)
        j = np.arange(len(feats))
        pt = j + w - 1 - lead
        ok = (pt >= 0) & (j >= first_ok)
        feat_of[pt[ok]] = j[ok]
        pos = 0
        while pos < n:
            if self.model is None:
                # Learn point by point until the first fit (cheap: no scoring before it).
                i = pos
                while i < n and self.model is None:
                    self._learn_feature(feats, int(feat_of[i]), float(xs[i]))
                    i += 1
                pos = i
                continue
            # Score up to the next refit with the current forest, then learn those points.
            left = self.p.refit - self.since_fit
            idx = np.arange(pos, n)
            has = feat_of[idx] >= 0
            cum = np.cumsum(has)
            stop = n if cum[-1] < left else pos + int(np.searchsorted(cum, left)) + 1
            seg = np.arange(pos, stop)
            rows = feat_of[seg]
            m = rows >= 0
            if m.any():
                raw = -self.model.score_samples(_float32(feats[rows[m]]))
                prev = np.concatenate(([self.prev], xs[seg[:-1]]))
                score[seg[m]] = self._scores(xs[seg[m]], prev[m], raw)
            for i in seg.tolist():
                self._learn_feature(feats, int(feat_of[i]), float(xs[i]))
            pos = stop
        return Scores(score, nan, nan.copy(), nan.copy())

    def _scores(self, x: np.ndarray, prev: np.ndarray, raw: np.ndarray) -> np.ndarray:
        s = raw / self.p.threshold
        step = x - prev
        if self.p.direction == "above":
            s = np.where(step > 0, s, 0.0)
        elif self.p.direction == "below":
            s = np.where(step < 0, s, 0.0)
        return np.where(np.abs(step) < self.p.min_deviation, np.minimum(s, 1.0), s)

    def _learn_feature(self, feats: np.ndarray, row: int, x: float) -> None:
        """``learn_one`` with the feature already computed (the same state changes, in the same order)."""
        if self.prev == self.prev:
            self.steps.append(x - self.prev)
        self.prev = x
        if row >= 0:
            self.feats.append(tuple(feats[row].tolist()))
            self.since_fit += 1
            due = self.model is None and len(self.feats) >= self.p.history
            if due or (self.model is not None and self.since_fit >= self.p.refit):
                self._fit()

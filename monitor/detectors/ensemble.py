"""Ensemble: flags a point only when at least ``k`` member detectors agree, and reports a confidence.

Each member scores the point on the common scale. ``confidence`` is the weighted mean of the members'
scores clipped to [0, 1] (a member past its threshold counts fully, one at 80% of the way to its band's
edge counts 0.8), so it is the weighted share of members flagging, softened for near misses. The ensemble
flags when at least ``k`` members score above 1 *and* confidence > ``min_confidence``; its score
``min(k-th highest member score, confidence / min_confidence)`` is > 1 exactly then, so it stays on the
common scale. ``expected`` is the weighted mean of the members' expected values where they have one;
lower/upper are NaN (the members' bands differ). Warm-up: members in warm-up score 0.

Complexity: the sum of the members' costs plus O(m log m) per point for m members. The members are
columnar detectors stepped together one time column at a time; the ensemble's state is theirs (each
member's arrays under its name: ``sma/w.xring``). Members default to ``sma,ema,iqr`` (their own
defaults); ``direction``/``min_deviation`` pass to them, and each learns by its own band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from monitor.detectors.base import Detector
from monitor.detectors.options import DetectorOptions
from monitor.detectors.scores import ANOMALY_THRESHOLD, Score, Scores


@dataclass(frozen=True)
class EnsembleParams(DetectorOptions):
    members: str = "sma,ema,iqr"
    weights: str = ""  # comma-separated, one per member; empty: equal weights
    k: int = 2
    min_confidence: float = 0.7

    def __post_init__(self) -> None:
        super().__post_init__()
        names = self.member_names
        if not names:
            raise ValueError("members must name at least one detector")
        if "ensemble" in names:
            raise ValueError("an ensemble cannot contain an ensemble")
        if len(set(names)) != len(names):  # member.param=value could not tell two of them apart
            raise ValueError(f"members must be distinct, got {self.members!r}")
        if not 1 <= self.k <= len(names):
            raise ValueError(f"k must be between 1 and the number of members ({len(names)}), got {self.k}")
        if not 0 < self.min_confidence <= 1:
            raise ValueError(f"min_confidence must be in (0, 1], got {self.min_confidence}")
        w = self.weight_values
        if len(w) != len(names) or any(not x > 0 for x in w):
            raise ValueError(f"weights must be {len(names)} positive numbers, got {self.weights!r}")

    @property
    def member_names(self) -> list[str]:
        return [m.strip() for m in self.members.split(",") if m.strip()]

    def member_params(self, own: Mapping[str, Any]) -> dict[str, Any]:
        """A member's parameters: the options every detector honours, passed down, then its own."""
        return {"direction": self.direction, "min_deviation": self.min_deviation, **own}

    @property
    def weight_values(self) -> list[float]:
        if not self.weights.strip():
            return [1.0] * len(self.member_names)
        try:
            return [float(v) for v in self.weights.split(",")]
        except ValueError:
            return []


@dataclass(frozen=True)
class EnsembleScore(Score):
    confidence: float = 0.0
    agreeing: int = 0


@dataclass(frozen=True)
class EnsembleScores(Scores):
    confidence: np.ndarray = None  # type: ignore[assignment]
    agreeing: np.ndarray = None  # type: ignore[assignment]

    def at(self, i: int) -> EnsembleScore:
        return EnsembleScore(
            float(self.score[i]),
            float(self.expected[i]),
            float(self.lower[i]),
            float(self.upper[i]),
            float(self.confidence[i]),
            int(self.agreeing[i]),
        )


def combine(p: EnsembleParams, member_scores: np.ndarray, member_expected: np.ndarray) -> EnsembleScores:
    """Combine an (m, n) array of member scores into the ensemble's scores (both paths use this)."""
    weights = np.asarray(p.weight_values)[:, None]
    s = np.nan_to_num(member_scores, nan=0.0)
    confidence = (np.clip(s, 0.0, 1.0) * weights).sum(axis=0) / weights.sum()
    agreeing = (s > ANOMALY_THRESHOLD).sum(axis=0)
    kth = -np.sort(-s, axis=0)[p.k - 1]
    score = np.minimum(kth, confidence / p.min_confidence)
    have = ~np.isnan(member_expected)
    wsum = (weights * have).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(
            wsum > 0, (np.where(have, member_expected, 0.0) * weights).sum(axis=0) / wsum, np.nan
        )
    nan = np.full(score.shape, np.nan)
    return EnsembleScores(score, expected, nan, nan.copy(), confidence, agreeing)


class Ensemble(Detector):
    """Agreement ensemble over member detectors built by the registry (``create("ensemble")``: members
    sma, ema, iqr; k=2; min confidence 0.7 by default).

    >>> from monitor.detectors.registry import create
    >>> ens = create("ensemble", {"members": "sma,iqr", "k": 2, "sma.window": 5, "iqr.window": 5})
    >>> for i in range(20):
    ...     _ = ens.update_one(10.0 + (i % 3), float(i))
    >>> ens.score_one(11.0, 20.0).anomalous, ens.score_one(40.0, 20.0).anomalous
    (False, True)
    >>> ens.score_one(40.0, 20.0).agreeing  # both members flag it
    2
    """

    Params = EnsembleParams

    def __init__(self, params: EnsembleParams, members: Sequence[Detector], rows: int | None = None) -> None:
        """``members`` are the detectors ``params.member_names`` names, in that order, built with
        ``params.member_params`` (the registry does both; the ensemble knows no detector by name)."""
        if len(members) != len(params.member_names):
            raise ValueError(f"{len(members)} members given for {params.members!r}")
        self._members = list(members)
        rows = members[0].rows if rows is None else rows
        super().__init__(params, rows)

    def _children(self, rows: int) -> dict[str, Detector]:
        for m in self._members:
            if m.rows != rows:
                m.resize(rows)
        return dict(zip(self.p.member_names, self._members, strict=True))

    @property
    def members(self) -> list[Detector]:
        return list(self.children.values())

    @property
    def warmup(self) -> int:
        return max(m.warmup for m in self.children.values())

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> EnsembleScores:
        results = [m._advance(x, t, ok) for m in self.children.values()]
        return combine(self.p, np.array([r.score for r in results]), np.array([r.expected for r in results]))

    def copy_empty(self) -> Self:
        return type(self)(self.p, [m.copy_empty() for m in self.children.values()], rows=0)

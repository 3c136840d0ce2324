"""What one cycle's scored samples add up to: flags, MAE and MAPE.

MAPE divides by the actual value, so samples whose actual value is 0 are left out of it (a division by
zero is not an error of infinite percent); when every actual is 0 the cycle's MAPE is NaN (undefined),
and the exporter keeps the previous value. MAE uses every sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.scores import ANOMALY_THRESHOLD


@dataclass(frozen=True)
class CycleStats:
    samples: int
    anomalies: int
    mae: float  # NaN for an empty cycle
    mape: float  # a ratio (0.05 = 5%); NaN when no sample has a non-zero actual
    max_score: float  # 0.0 for an empty cycle


def mae(actual: np.ndarray, expected: np.ndarray) -> float:
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.mean(np.abs(a - e))) if a.size else math.nan


def mape(actual: np.ndarray, expected: np.ndarray) -> float:
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    nonzero = a != 0
    if not np.any(nonzero):
        return math.nan
    return float(np.mean(np.abs((a[nonzero] - e[nonzero]) / a[nonzero])))


def cycle_stats(actual: np.ndarray, expected: np.ndarray, scores: np.ndarray) -> CycleStats:
    """Flags and errors of one cycle; an infinite actual value is a flag but has no error to average."""
    s = np.asarray(scores, dtype=np.float64)
    finite = s[~np.isnan(s)]
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    ok = np.isfinite(a)
    return CycleStats(
        samples=int(s.size),
        anomalies=int(np.count_nonzero(s > ANOMALY_THRESHOLD)),
        mae=mae(a[ok], e[ok]),
        mape=mape(a[ok], e[ok]),
        max_score=float(finite.max()) if finite.size else 0.0,
    )

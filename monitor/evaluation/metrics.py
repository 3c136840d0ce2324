"""Window-level precision, recall, F1 and detection delay, from per-row flags and labelled windows.

Rules (the same for every detector and data set):
- The first ``probation_rows(n)`` rows (NAB's probationary period) are not scored: flags there count for
  nothing, as in NAB.
- A window is caught (a true positive) when at least one flag falls inside it; a window with no flag is a
  false negative.
- Flags outside every window are false positives counted per *episode*: a run of consecutive flagged
  rows outside windows is one false alarm, the way an SRE experiences one alert that stays firing. (NAB
  itself charges every flagged row; its score is reported beside these numbers.)
- precision = TP / (TP + FP episodes), recall = TP / windows, F1 their harmonic mean; overall figures
  sum TP, FP and FN over files (micro-average). With nothing flagged precision is reported as 0.
- delay = time from a caught window's start to its first flag (seconds); the mean is over caught windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750


def probation_rows(n: int) -> int:
    """NAB's probationary period: ``min(floor(0.15 * n), 750)`` rows."""
    return min(math.floor(PROBATION_FRACTION * n), PROBATION_MAX_ROWS)


@dataclass(frozen=True)
class Counts:
    tp: int
    fp: int
    fn: int
    delays_s: tuple[float, ...] = ()

    @property
    def windows(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.windows if self.windows else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if r != r:
            return float("nan")
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def mean_delay_s(self) -> float:
        return float(np.mean(self.delays_s)) if self.delays_s else float("nan")

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.delays_s + other.delays_s
        )


def count(flags: np.ndarray, windows: list[tuple[int, int]], ts: np.ndarray) -> Counts:
    """True positives, false-positive episodes, false negatives and delays for one file."""
    flags = np.asarray(flags, dtype=bool).copy()
    flags[: probation_rows(len(flags))] = False
    inside = np.zeros(len(flags), dtype=bool)
    tp = fn = 0
    delays: list[float] = []
    for s, e in windows:
        inside[s : e + 1] = True
        hit = np.flatnonzero(flags[s : e + 1])
        if hit.size:
            tp += 1
            delays.append(float(ts[s + hit[0]] - ts[s]))
        else:
            fn += 1
    outside = flags & ~inside
    # An episode starts at an outside flag whose previous row is not an outside flag.
    starts = outside & ~np.concatenate(([False], outside[:-1]))
    return Counts(tp, int(starts.sum()), fn, tuple(delays))


def flagged_fraction(flags: np.ndarray, ranges: list[tuple[int, int]]) -> tuple[int, int]:
    """(flagged rows, rows) inside the inclusive row ``ranges``: how much of a prolonged anomaly is seen."""
    flags = np.asarray(flags, dtype=bool)
    inside = np.zeros(len(flags), dtype=bool)
    for s, e in ranges:
        inside[s : e + 1] = True
    return int((flags & inside).sum()), int(inside.sum())

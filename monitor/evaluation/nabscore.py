"""NAB's scoring (Lavin & Ahmad 2015; numenta/NAB ``nab/sweeper.py``), re-implemented over numpy arrays.

Per row, outside the probationary period: inside a window, a detection is worth
``tp_weight * sigmoid(position) / sigmoid(-1)`` with ``position = -(right - i + 1) / width`` (the window's
first row earns the full ``tp_weight``, its last nearly 0); only the earliest detection in a window counts.
Outside windows, a detection costs ``fp_weight * sigmoid(distance past the previous window / (its width
- 1))``, or ``-fp_weight`` when no window precedes it; ``sigmoid(x) = 2 / (1 + exp(5x)) - 1``, and -1 for
x >= 3. A window without a detection costs ``fn_weight``. A row is a detection when its score in [0, 1] is
``>= threshold``. The normalised score over a set of files is
``100 * (raw - raw_null) / (perfect - raw_null)`` with ``raw_null = -fn_weight * windows`` and
``perfect = tp_weight * windows``: 0 for a detector that never fires, 100 for a perfect one.
NAB picks the threshold that maximises the summed raw score over all files (:func:`best_threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.evaluation.metrics import probation_rows


@dataclass(frozen=True)
class Profile:
    tp_weight: float
    fp_weight: float
    fn_weight: float


STANDARD = Profile(1.0, 0.11, 1.0)
PROFILES = {
    "standard": STANDARD,
    "reward_low_FP_rate": Profile(1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile(1.0, 0.11, 2.0),
}


def scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(x, 3.0))) - 1.0)


@dataclass(frozen=True)
class RowWeights:
    """What a detection at each row would be worth, and which window (or -1) it belongs to."""

    weight: np.ndarray
    window: np.ndarray  # index of the window holding the row, -1 outside
    scored: np.ndarray  # False in the probationary period
    ranges: tuple[tuple[int, int], ...]  # the windows' inclusive row ranges, in order

    @property
    def n_windows(self) -> int:
        return len(self.ranges)


def row_weights(n: int, windows: list[tuple[int, int]], profile: Profile = STANDARD) -> RowWeights:
    weight = np.empty(n)
    window = np.full(n, -1, dtype=np.int64)
    max_tp = float(scaled_sigmoid(np.array(-1.0)))
    idx = np.arange(n)
    prev_right, prev_width = None, None
    cursor = 0
    for j, (s, e) in enumerate(sorted(windows)):
        _fill_outside(weight, idx, cursor, s, prev_right, prev_width, profile)
        width = float(e - s + 1)
        pos = -(e - idx[s : e + 1] + 1) / width
        weight[s : e + 1] = scaled_sigmoid(pos) * profile.tp_weight / max_tp
        window[s : e + 1] = j
        prev_right, prev_width, cursor = e, width, e + 1
    _fill_outside(weight, idx, cursor, n, prev_right, prev_width, profile)
    scored = idx >= probation_rows(n)
    return RowWeights(weight, window, scored, tuple(sorted(windows)))


def _fill_outside(
    weight: np.ndarray,
    idx: np.ndarray,
    lo: int,
    hi: int,
    prev_right: int | None,
    prev_width: float | None,
    profile: Profile,
) -> None:
    if hi <= lo:
        return
    if prev_right is None:
        weight[lo:hi] = -1.0 * profile.fp_weight
    else:
        # NAB divides by (width - 1); a one-row window would divide by zero there, so it is floored at 1.
        past = np.abs(prev_right - idx[lo:hi]) / max(prev_width - 1.0, 1.0)
        weight[lo:hi] = scaled_sigmoid(past) * profile.fp_weight


def raw_score(detections: np.ndarray, rw: RowWeights, profile: Profile = STANDARD) -> float:
    """Summed NAB score of one file's detections (boolean per row)."""
    det = np.asarray(detections, dtype=bool) & rw.scored
    fp = float(rw.weight[det & (rw.window < 0)].sum())
    tp = 0.0
    caught = 0
    for s, e in rw.ranges:
        hit = np.flatnonzero(det[s : e + 1])
        if hit.size:
            tp += float(rw.weight[s + hit[0]])
            caught += 1
    return tp + fp - profile.fn_weight * (rw.n_windows - caught)


def normalised(raw: float, n_windows: int, profile: Profile = STANDARD) -> float:
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else float("nan")


def best_threshold(
    per_file: list[tuple[np.ndarray, RowWeights]], profile: Profile = STANDARD
) -> tuple[float, float]:
    """(threshold, summed raw score) maximising NAB's raw score over all files together (detection: ``>=``).

    Exact, as NAB's optimiser: every distinct score is a candidate. Rows are swept from the highest score
    down; a row outside windows adds its (negative) weight, a row inside a window raises that window's
    best detection from ``-fn_weight`` to the largest weight seen so far there.
    """
    base = -profile.fn_weight * sum(rw.n_windows for _, rw in per_file)
    ev_score: list[np.ndarray] = []
    ev_delta: list[np.ndarray] = []
    for scores, rw in per_file:
        scores = np.asarray(scores, dtype=np.float64)
        out = rw.scored & (rw.window < 0)
        ev_score.append(scores[out])
        ev_delta.append(rw.weight[out])
        for s, e in rw.ranges:
            rows = np.arange(s, e + 1)
            rows = rows[rw.scored[rows]]
            if not rows.size:
                continue
            order = rows[np.argsort(-scores[rows], kind="stable")]
            best = np.maximum.accumulate(np.maximum(rw.weight[order], -profile.fn_weight))
            ev_score.append(scores[order])
            ev_delta.append(np.diff(np.concatenate(([-profile.fn_weight], best))))
    if not ev_score:
        return 1.1, base
    sc = np.concatenate(ev_score)
    de = np.concatenate(ev_delta)
    if not sc.size:
        return 1.1, base
    order = np.argsort(-sc, kind="stable")
    sc, total = sc[order], base + np.cumsum(de[order])
    last = np.flatnonzero(np.concatenate((sc[1:] != sc[:-1], [True])))  # end of each equal-score run
    i = int(np.argmax(total[last]))
    if total[last][i] > base:
        return float(sc[last][i]), float(total[last][i])
    return 1.1, base  # above every score: the detector that never fires

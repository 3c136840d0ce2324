"""Leave-one-category-out cross-validation of NAB's score: what a threshold chosen elsewhere is worth.

NAB's own figure picks the one threshold that maximises the score over every file, so it tells how well a
detector fits the files it is scored on. Here each category (the NAB layout's folder: artificial, ad
exchange, known causes...) is held out in turn: the threshold is chosen by NAB's sweep
(:func:`nabscore.best_threshold`) on the other categories together and the held-out category is scored
at it. The mean of the held-out scores says what the detector is worth on metrics like none it was tuned
on, which is what a monitor meets.

A category without windows (NAB's ``artificialNoAnomaly``) has no normalised score of its own: no
detection can gain anything there, so NAB's ``(raw - null) / (perfect - null)`` divides 0 by 0. It is
scored *pooled with a fixed reference*: the other categories detected perfectly. Its held-out score is
``100 * (D + fp) / D``, where ``fp`` is its (negative) false-positive cost at the held-out threshold and
``D = perfect - null`` the other categories' denominator: 100 when it raises no false alarm, and each
false-positive row costs what it would cost on the scale of the files it was tuned on.

Beside the mean, the *pooled* figure sums the held-out raw scores of every file and normalises the sum
over all of them, as NAB's 24-file figure does: directly comparable with it (the same denominator), and
lower by what choosing the threshold on other categories costs.

>>> from monitor.evaluation.nabscore import row_weights
>>> a = ("a", np.array([0.0, 0.9, 0.0, 0.0]), row_weights(4, [(1, 1)]))
>>> b = ("b", np.array([0.0, 0.0, 0.8, 0.0]), row_weights(4, [(2, 2)]))
>>> cv = leave_one_category_out([a, b])
>>> [(f.category, f.threshold, f.score) for f in cv.folds]
[('a', 0.8, 100.0), ('b', 0.9, 0.0)]
>>> cv.mean, cv.pooled
(50.0, 50.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.evaluation import nabscore
from monitor.evaluation.nabscore import STANDARD, Profile, RowWeights


@dataclass(frozen=True)
class HeldOut:
    category: str
    threshold: float  # chosen on the other categories (NAB's [0, 1] scale; 1.1: never fire)
    raw: float  # the held-out category's summed raw score at that threshold
    score: float  # its normalised score (see the module docstring for a category without windows)


@dataclass(frozen=True)
class CrossValidation:
    folds: tuple[HeldOut, ...]
    mean: float  # mean of the held-out scores
    pooled: float  # the held-out raw scores of every file, normalised over all of them


def leave_one_category_out(
    files: list[tuple[str, np.ndarray, RowWeights]], profile: Profile = STANDARD
) -> CrossValidation | None:
    """Held-out scores of each category of ``files`` ``(category, unit scores, row weights)``; None when
    there are fewer than two categories (nothing to tune on) or no window anywhere."""
    categories = sorted({c for c, _, _ in files})
    windows = sum(rw.n_windows for _, _, rw in files)
    if len(categories) < 2 or not windows:
        return None
    folds = []
    for held in categories:
        tune = [(u, rw) for c, u, rw in files if c != held]
        test = [(u, rw) for c, u, rw in files if c == held]
        tune_windows = sum(rw.n_windows for _, rw in tune)
        if not tune_windows:  # only windowless categories to tune on: the held-out category is skipped
            continue
        th, _ = nabscore.best_threshold(tune, profile)
        raw = sum(nabscore.raw_score(u >= th, rw, profile) for u, rw in test)
        n = sum(rw.n_windows for _, rw in test)
        if n:
            score = nabscore.normalised(raw, n, profile)
        else:
            d = (profile.tp_weight + profile.fn_weight) * tune_windows
            score = 100.0 * (d + raw) / d
        folds.append(HeldOut(held, th, raw, score))
    pooled = nabscore.normalised(sum(f.raw for f in folds), windows, profile)
    return CrossValidation(tuple(folds), float(np.mean([f.score for f in folds])), pooled)

"""Alarm onsets: what NAB scores of a detector whose score stays above 1 for as long as a series is out.

A detector that keeps its score above 1 through a prolonged anomaly is right for the monitor (the score,
the alert and the incident stay on while the series is out), but NAB charges every flagged row outside a
window as a false positive and counts only a window's first detection. NAB's best detectors stay quiet
after an alarm for a while; here that quiet period is part of the evaluation, never of the detector or of
the score the monitor exports.

The rule, with a quiet period of ``quiet`` rows: a row is an *onset* when its score is higher than the
score of every onset in the ``quiet`` rows before it. So an alarm silences the rows after it for ``quiet``
rows unless one of them is more surprising than it (a larger anomaly right after a small false alarm is
not hidden), and a row with no onset in the ``quiet`` rows before it is an onset whatever its score.

The transform keeps an onset's score and sets every other row to 0. It does not depend on a threshold:
for every threshold ``th``, the rows of the result at or above ``th`` are exactly the rows the same rule
applied at ``th`` would alarm on (an onset below ``th`` can only silence rows below its own score, which
are below ``th`` too), so NAB's threshold sweep over the result is exact.

>>> onsets(np.array([0.0, 2.0, 1.5, 3.0, 0.0, 1.2]), quiet=3).tolist()
[0.0, 2.0, 0.0, 3.0, 0.0, 0.0]
"""

from __future__ import annotations

import numpy as np


def onsets(scores: np.ndarray, quiet: int) -> np.ndarray:
    """The onset scores of one file's rows (see the module docstring); ``quiet`` 0 returns a copy."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    if quiet <= 0:
        return s.copy()
    out = np.zeros(len(s))
    # Every onset is higher than the onsets in reach before it, so the last one is the one to beat.
    last, last_score = -quiet - 1, 0.0
    for i in np.flatnonzero(s > 0).tolist():  # a row of 0 alarms at no threshold NAB sweeps to
        v = float(s[i])
        if i - last > quiet or v > last_score:
            out[i] = v
            last, last_score = i, v
    return out

"""The monitor's Prophet band, run causally for evaluation: fit on the probationary prefix, score the rest.

Prophet learns in batches, so it cannot ``learn_one``; a real monitor trains on history and then scores
what arrives. Here that history is the file's probationary prefix (NAB does not score it), the period
is detected on it with ``monitor.period`` (falling back to one day when the prefix shows none), the
band is ``monitor.forecast.fit``'s residual band, and every later row is scored against it in order,
without refitting. Probationary rows score 0. ``direction`` and ``min_deviation`` are the options every
detector honours (``monitor.detectors.options``).
"""

from __future__ import annotations

import numpy as np

from monitor.detectors.prophet import ProfileBand, ProphetParams
from monitor.evaluation.metrics import probation_rows

FALLBACK_PERIOD_S = 86400.0


def score_file(ts: np.ndarray, values: np.ndarray, p: ProphetParams) -> np.ndarray:
    """Scores of every row (0 in the prefix). Raises ``PeriodError`` when the prefix cannot be fitted."""
    from monitor.period import PeriodError

    n = len(values)
    m = max(probation_rows(n), 2)
    order = np.argsort(ts[:m], kind="stable")  # the prefix may hold a backward step
    pts, pvs = ts[:m][order], values[:m][order]
    if np.unique(pts).size < 2:  # no sampling step, so no grid: say which rows, not sampling_step's words
        rows = f"{len(pts)} row" + ("s" if len(pts) != 1 else "")
        raise PeriodError(
            f"Prophet is fitted on the probationary prefix (the first {rows}), which needs at least two "
            "distinct timestamps"
        )
    # The evaluation scores whatever the band does: a band too wide to flag is a result, not an error.
    detector = ProfileBand.fit(
        p,
        pts,
        pvs,
        fallback_period=FALLBACK_PERIOD_S,
        refuse_useless_band=False,
    )
    out = np.zeros(n)
    if m < n:
        out[m:] = detector.update_many(values[m:], ts[m:]).score
    return out

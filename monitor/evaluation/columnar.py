"""Every file of a data set streamed through one columnar detector, a row each: the evaluation's fast path.

A columnar ``Detector`` (``monitor.detectors.base``) scores all its rows one time column at a time, so a
data set of ``k`` files costs about as many column steps as its longest file, where streaming the files
one by one costs their total length. Files are padded with NaN (no sample) to the longest one; a row
learns and scores only its own samples, in their order, exactly as a fresh one-row detector would (the
property ``tests/test_detectors_adaptive.py`` checks).

>>> from monitor.detectors.adaptive import Adaptive
>>> out = stream_rows(Adaptive(rows=0), [np.arange(60.0), np.arange(3.0)], [np.arange(60.0), np.arange(3.0)])
>>> [len(s) for s in out]
[60, 3]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monitor.detectors.base import Detector


def stream_rows(
    detector: Detector, values: Sequence[np.ndarray], times: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """The scores of each series, streamed through ``detector`` resized to one fresh row per series."""
    detector.resize(0)
    detector.resize(len(values))
    width = max((len(v) for v in values), default=0)
    x = np.full((len(values), width), np.nan)
    t = np.full((len(values), width), np.nan)
    for i, (v, ts) in enumerate(zip(values, times, strict=True)):
        x[i, : len(v)] = v
        t[i, : len(ts)] = ts
    score = detector.update(x, t).score
    return [np.asarray(score[i, : len(v)], dtype=np.float64) for i, v in enumerate(values)]

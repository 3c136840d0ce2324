"""Which series is in which row: the bookkeeping behind a query's columnar state.

A query's series live in the rows of arrays: its detector's state (``monitor.detectors.base.Detector``)
and the per-series figures the monitor exports and reasons with (``SeriesTable.col``). A series that
appears takes a free row (the arrays double when full), one that goes stale gives its row back, so a
row number is only meaningful while its key holds it. Nothing here knows about detectors or time: the
caller keeps the detector's rows in step with ``capacity``.

>>> t = SeriesTable()
>>> a = t.add((("job", "a"),), {"job": "a"}, 'job="a"')
>>> b = t.add((("job", "b"),), {"job": "b"}, 'job="b"')
>>> t.remove([a])
>>> t.add((("job", "c"),), {"job": "c"}, 'job="c"') == a, len(t), t.capacity  # the freed row is reused
(True, 2, 16)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from streamwatch.series import SeriesKey

# Per-row figures and their values in a free row.
FLOAT_COLUMNS: dict[str, float] = {
    "trained_until": -math.inf,  # points at or before this are history: never scored
    "last_seen": -math.inf,  # the cycle time the series last brought a new point
    "score": 0.0,  # highest score of its last cycle with points
    "actual": math.nan,  # its newest finite value scored, and the band there
    "expected": math.nan,
    "lower": math.nan,
    "upper": math.nan,
}
INT_COLUMNS = ("samples", "anomalies", "cycle_anomalies")
BOOL_COLUMNS = ("ready", "seen")  # has a model; brought points since this process started


class SeriesTable:
    def __init__(self) -> None:
        self.keys: list[SeriesKey | None] = []
        self.labels: list[Mapping[str, str] | None] = []
        self.texts: list[str] = []  # exported label text, formatted once per series
        self.index: dict[SeriesKey, int] = {}
        self.free: list[int] = []
        self.col: dict[str, np.ndarray] = {}
        self._allocate(0)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def capacity(self) -> int:
        return len(self.keys)

    @property
    def used(self) -> np.ndarray:
        """Per row: True when a series holds it."""
        return np.array([k is not None for k in self.keys], dtype=bool)

    def rows(self) -> np.ndarray:
        """The rows in use, ascending."""
        return np.array(sorted(self.index.values()), dtype=np.intp)

    def _allocate(self, n: int) -> None:
        cols: dict[str, np.ndarray] = {k: np.full(n, v) for k, v in FLOAT_COLUMNS.items()}
        cols.update({k: np.zeros(n, dtype=np.int64) for k in INT_COLUMNS})
        cols.update({k: np.zeros(n, dtype=bool) for k in BOOL_COLUMNS})
        have = self.capacity
        if self.col:
            for k, v in cols.items():
                v[:have] = self.col[k]
        self.col = cols
        self.keys.extend([None] * (n - have))
        self.labels.extend([None] * (n - have))
        self.texts.extend([""] * (n - have))
        self.free.extend(range(n - 1, have - 1, -1))  # popped from the end: lowest row first

    def add(self, key: SeriesKey, labels: Mapping[str, str], text: str) -> int:
        """A row for a new series, with the free-row figures."""
        if not self.free:
            self._allocate(max(2 * self.capacity, 16))
        row = self.free.pop()
        self.keys[row], self.labels[row], self.texts[row] = key, labels, text
        self.index[key] = row
        return row

    def remove(self, rows: Sequence[int] | np.ndarray) -> None:
        """Give ``rows`` back: their figures return to the free-row values."""
        rows = [int(r) for r in rows]
        for r in rows:
            key = self.keys[r]
            if key is not None:
                del self.index[key]
            self.keys[r], self.labels[r], self.texts[r] = None, None, ""
        idx = np.array(rows, dtype=np.intp)
        for k, v in FLOAT_COLUMNS.items():
            self.col[k][idx] = v
        for k in (*INT_COLUMNS, *BOOL_COLUMNS):
            self.col[k][idx] = 0
        self.free.extend(sorted(set(rows), reverse=True))

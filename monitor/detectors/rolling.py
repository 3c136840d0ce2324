"""Rolling windows over many rows at once: moments, sorted windows and maxima, O(1) or O(w) per point.

Every window lives in its detector's state (``Detector.state``: arrays with one row per series), under
names that start with the window's ``prefix``; these classes hold only the window's shape and do the
arithmetic for every row at once, learning a point only in the rows where ``ok``. A row fills slots
``0, 1, ...`` of its ring until it has ``w`` points, then overwrites the oldest (``head``).

- :class:`Moments`: count, mean and centred sum of squares of the last ``w`` values (and, with
  ``with_t``, of their timestamps and the cross product, for a line fit) from running sums, O(1) a point.
  The sums are of values *shifted by a per-row anchor* close to the window's values, so variance-style
  differences (``S2 - S1**2 / n``) do not cancel catastrophically, and a row's sums are recomputed
  exactly from its ring (two passes about the window's mean) every ``w`` points, so rounding cannot pile
  up over millions of points: amortised O(1). Running sums still lose precision when a value far from
  the rest leaves the window (a spike of 1e6 followed by values 0.01 apart: the sum of squares drops by
  ~1e12 and keeps ~1e-4 of rounding error, more than the window's true spread), so each row also adds up
  every square that went in or out since its last exact computation and is recomputed at once when
  those exceed the centred sum by ``ILL_CONDITIONED``: so the moments stay within ~1e-12 relative of the
  exact ones, and a window that became constant has a spread of exactly 0.
- :class:`Sorted`: the last ``w`` values in order (quantiles), kept sorted by one vectorised removal and
  insertion per point: O(w) comparisons and moves per row, in C.
- :class:`Maximum`: the largest of the last ``w`` values, from per-block maxima: O(sqrt w) a point.
"""

from __future__ import annotations

import math

import numpy as np

from monitor.detectors.base import State

ILL_CONDITIONED = 1e4
"""Recompute exactly once the squares behind a centred sum exceed it by this factor (rounding error in the
sum is about 1e-16 times those squares, so the centred sum keeps at least ~12 good digits)."""


def _ring_fresh(n: int, w: int, prefix: str, fill: float = 0.0) -> State:
    return {
        f"{prefix}ring": np.full((n, w), fill),
        f"{prefix}len": np.zeros(n, dtype=np.int64),
        f"{prefix}head": np.zeros(n, dtype=np.int64),
    }


class Moments:
    """Running moments of the last ``w`` values of each row (and of their times, ``with_t``).

    >>> m, st = Moments(3, "w."), {}
    >>> st.update(m.fresh(1))
    >>> for v in (1.0, 2.0, 3.0, 5.0):
    ...     m.push(st, np.array([v]), np.array([True]))
    >>> count, mean, sxx = m.moments(st)  # the window is 2, 3, 5
    >>> int(count[0]), float(mean[0]), round(float(sxx[0]), 12)
    (3, 3.3333333333333335, 4.666666666667)
    """

    def __init__(self, w: int, prefix: str, with_t: bool = False) -> None:
        self.w = w
        self.p = prefix
        self.with_t = with_t
        self.cols = ("x", "t") if with_t else ("x",)

    def fresh(self, n: int) -> State:
        p = self.p
        state = _ring_fresh(n, self.w, p + "x")
        state[f"{p}since"] = np.zeros(n, dtype=np.int64)
        for c in self.cols:
            for s in ("c", "s", "ss", "mag"):
                state[f"{p}{s}{c}"] = np.zeros(n)
        if self.with_t:
            state[f"{p}tring"] = np.zeros((n, self.w))
            state[f"{p}stx"] = np.zeros(n)
        return state

    def count(self, st: State) -> np.ndarray:
        return st[f"{self.p}xlen"]

    def full(self, st: State) -> np.ndarray:
        return st[f"{self.p}xlen"] >= self.w

    def oldest(self, st: State, col: str = "x") -> np.ndarray:
        """The oldest value in each row's window (slot 0 until the ring is full)."""
        ring = st[f"{self.p}{col}ring"]
        head = np.where(self.full(st), st[f"{self.p}xhead"], 0)
        return np.take_along_axis(ring, head[:, None], axis=1)[:, 0]

    def sums(self, st: State, col: str = "x") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(anchor, sum of v - anchor, sum of squares of v - anchor) of column ``col``."""
        p = self.p
        return st[f"{p}c{col}"], st[f"{p}s{col}"], st[f"{p}ss{col}"]

    def moments(self, st: State, col: str = "x") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, mean, centred sum of squares) per row; mean 0 and sum 0 for an empty window."""
        n = self.count(st)
        c, s, ss = self.sums(st, col)
        k = np.maximum(n, 1)
        return n, c + s / k, np.maximum(ss - s * s / k, 0.0)

    def push(self, st: State, x: np.ndarray, ok: np.ndarray, t: np.ndarray | None = None) -> None:
        """Learn ``x`` (and ``t``) in the rows where ``ok``."""
        p, w = self.p, self.w
        ring, length, head = st[f"{p}xring"], st[f"{p}xlen"], st[f"{p}xhead"]
        rows = np.arange(ring.shape[0])
        evict = ok & (length >= w)
        new = {"x": x}
        if self.with_t:
            assert t is not None
            new["t"] = t
        d_old: dict[str, np.ndarray] = {}
        for c in self.cols:
            r = ring if c == "x" else st[f"{p}tring"]
            old = r[rows, head]
            anchor, s, ss, mag = (st[f"{p}{k}{c}"] for k in ("c", "s", "ss", "mag"))
            d = np.where(evict, old - anchor, 0.0)
            d_old[c] = d
            s -= d
            ss -= d * d
            mag += d * d
            r[rows, head] = np.where(ok, new[c], old)
        if self.with_t:
            st[f"{p}stx"] -= d_old["t"] * d_old["x"]
        np.copyto(head, (head + 1) % w, where=ok)
        np.copyto(length, np.minimum(length + 1, w), where=ok)
        since = st[f"{p}since"]
        since += ok
        d_new: dict[str, np.ndarray] = {}
        for c in self.cols:
            anchor, s, ss, mag = (st[f"{p}{k}{c}"] for k in ("c", "s", "ss", "mag"))
            d = np.where(ok, new[c] - anchor, 0.0)
            d_new[c] = d
            s += d
            ss += d * d
            mag += d * d
        if self.with_t:
            st[f"{p}stx"] += d_new["t"] * d_new["x"]
        due = ok & ((length == 1) | (since >= w) | self._ill_conditioned(st))
        if due.any():
            self._refresh(st, np.flatnonzero(due))

    def _ill_conditioned(self, st: State) -> np.ndarray:
        n = np.maximum(self.count(st), 1)
        bad = np.zeros(n.shape, dtype=bool)
        for c in self.cols:
            _, s, ss = self.sums(st, c)
            bad |= st[f"{self.p}mag{c}"] > ILL_CONDITIONED * (ss - s * s / n)
        return bad

    def _refresh(self, st: State, idx: np.ndarray) -> None:
        """Exact sums about each window's mean (two passes, shifted by slot 0's value first), for ``idx``."""
        p = self.p
        n = st[f"{p}xlen"][idx]
        valid = np.arange(self.w)[None, :] < n[:, None]
        centred: dict[str, np.ndarray] = {}
        for c in self.cols:
            win = st[f"{p}{c}ring"][idx]
            v0 = win[:, :1]
            d = np.where(valid, win - v0, 0.0)
            anchor = v0[:, 0] + d.sum(axis=1) / n
            e = np.where(valid, win - anchor[:, None], 0.0)
            centred[c] = e
            st[f"{p}c{c}"][idx] = anchor
            st[f"{p}s{c}"][idx] = e.sum(axis=1)
            sq = (e * e).sum(axis=1)
            st[f"{p}ss{c}"][idx] = sq
            st[f"{p}mag{c}"][idx] = sq
        if self.with_t:
            st[f"{p}stx"][idx] = (centred["t"] * centred["x"]).sum(axis=1)
        st[f"{p}since"][idx] = 0


class Sorted:
    """The last ``w`` values of each row, in arrival order (``ring``) and sorted (``sorted``, unfilled
    slots +inf at the end), for quantiles.

    >>> q, st = Sorted(4, "q."), {}
    >>> st.update(q.fresh(1))
    >>> for v in (4.0, 1.0, 3.0, 2.0, 8.0):  # 4 leaves when 8 arrives
    ...     q.push(st, np.array([v]), np.array([True]))
    >>> st["q.sorted"].tolist()
    [[1.0, 2.0, 3.0, 8.0]]
    >>> [float(v[0]) for v in q.quantiles(st, (0.25, 0.5))]  # linear interpolation at rank q * (w - 1)
    [1.75, 2.5]
    """

    def __init__(self, w: int, prefix: str) -> None:
        self.w = w
        self.p = prefix

    def fresh(self, n: int) -> State:
        state = _ring_fresh(n, self.w, self.p)
        state[f"{self.p}sorted"] = np.full((n, self.w), np.inf)
        return state

    def full(self, st: State) -> np.ndarray:
        return st[f"{self.p}len"] >= self.w

    def push(self, st: State, x: np.ndarray, ok: np.ndarray) -> None:
        p, w = self.p, self.w
        ring, length, head, s = st[f"{p}ring"], st[f"{p}len"], st[f"{p}head"], st[f"{p}sorted"]
        rows = np.arange(ring.shape[0])
        # The value leaving: the oldest once full, else one of the +inf fillers.
        old = np.where(length >= w, ring[rows, head], np.inf)
        new = np.where(ok, x, old)  # rows without a sample take out and put back the same value
        ring[rows, head] = np.where(ok, x, ring[rows, head])
        np.copyto(head, (head + 1) % w, where=ok)
        np.copyto(length, np.minimum(length + 1, w), where=ok)
        d = (s < old[:, None]).sum(axis=1)  # where ``old`` sits (the first of equal values)
        q = (s < new[:, None]).sum(axis=1) - (old < new)  # where ``new`` goes once ``old`` is out
        j = np.arange(w)[None, :]
        # Slot j of the result: ``new`` at q; before q the j-th, after it the (j-1)-th value of the
        # sorted window without ``old`` (whose i-th value is s[i], or s[i + 1] from d on).
        src = np.where(j < q[:, None], j, j - 1)
        src = np.clip(src + (src >= d[:, None]), 0, w - 1)
        s[...] = np.where(j == q[:, None], new[:, None], np.take_along_axis(s, src, axis=1))

    def quantiles(self, st: State, qs: tuple[float, ...]) -> list[np.ndarray]:
        """Each quantile of every row's full window (linear interpolation, numpy's default)."""
        s = st[f"{self.p}sorted"]
        out = []
        with np.errstate(invalid="ignore"):  # rows still filling hold +inf: their quantiles are not read
            for q in qs:
                pos = q * (self.w - 1)
                lo = math.floor(pos)
                hi = min(lo + 1, self.w - 1)
                out.append(s[:, lo] + (pos - lo) * (s[:, hi] - s[:, lo]))
        return out


class Maximum:
    """The largest of the last ``w`` values of each row: the ring is cut into blocks of about sqrt(w)
    slots whose maxima are kept, so a point rewrites one block's maximum and reads the blocks'.
    An empty window's maximum is -inf.

    >>> m, st = Maximum(3, "m."), {}
    >>> st.update(m.fresh(1))
    >>> out = []
    >>> for v in (5.0, 1.0, 2.0, 0.5):  # 5 leaves when 0.5 arrives
    ...     m.push(st, np.array([v]), np.array([True]))
    ...     out.append(float(m.value(st)[0]))
    >>> out
    [5.0, 5.0, 5.0, 2.0]
    """

    def __init__(self, w: int, prefix: str) -> None:
        self.w = w
        self.p = prefix
        self.block = max(1, math.isqrt(w))
        self.blocks = -(-w // self.block)

    def fresh(self, n: int) -> State:
        p = self.p
        return {
            # Padded to whole blocks; the padding is never written, so it stays -inf.
            f"{p}ring": np.full((n, self.blocks * self.block), -np.inf),
            f"{p}head": np.zeros(n, dtype=np.int64),
            f"{p}block": np.full((n, self.blocks), -np.inf),
        }

    def push(self, st: State, x: np.ndarray, ok: np.ndarray) -> None:
        p = self.p
        ring, head, block = st[f"{p}ring"], st[f"{p}head"], st[f"{p}block"]
        rows = np.arange(ring.shape[0])
        ring[rows, head] = np.where(ok, x, ring[rows, head])
        b = head // self.block
        blocks = ring.reshape(ring.shape[0], self.blocks, self.block)
        block[rows, b] = blocks[rows, b].max(axis=1)
        np.copyto(head, (head + 1) % self.w, where=ok)

    def value(self, st: State) -> np.ndarray:
        return st[f"{self.p}block"].max(axis=1)

"""Rolling window moments in O(1) per point, streaming and vectorised, without floating-point drift.

Both paths keep sums of values *shifted by a reference* close to the window's values, so variance-style
differences (``S2 - S1**2 / n``) do not cancel catastrophically, and both re-anchor regularly so rounding
errors cannot pile up over millions of points:

- :class:`RollingMoments` (streaming) updates running sums on every push/pop (O(1)) and, once every
  ``w`` pushes, recomputes them exactly from the window about its mean (O(w) every w points:
  amortised O(1)). Memory O(w).
- :func:`window_sums` (vectorised) computes window sums with ``np.cumsum`` over overlapping blocks of
  ``max(4w, 64)`` windows, each block shifted by its own first value: O(1) per point (plus 25% overlap).

Running sums still lose precision when a value far from the rest leaves the window (a spike of 1e6
followed by values 0.01 apart): the sum of squares drops by ~1e12 and keeps ~1e-4 of rounding error,
more than the window's true spread. Both paths measure that risk (the squares summed since the last
exact computation, against the centred sum that is left) and recompute the affected windows exactly
(two passes about a window value) once it passes ``ILL_CONDITIONED``: so both stay within ~1e-12
relative of the exact moments, and a window that became constant has a spread of exactly 0.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ILL_CONDITIONED = 1e4
"""Recompute exactly once the squares behind a centred sum exceed it by this factor (rounding error in the
sum is about 1e-16 times those squares, so the centred sum keeps at least ~12 good digits)."""


class RollingMoments:
    """Sums over the last ``w`` points of x (and optionally t): n, mean, centred Sxx, St, Stt, Stx.

    The sums are of ``x - cx`` (and ``t - ct``); ``mag_x`` and ``mag_t`` add up every square that went in
    or out since the last exact computation, the scale of their rounding error.
    """

    def __init__(self, w: int, with_t: bool = False) -> None:
        self.w = w
        self.with_t = with_t
        self.xs: deque[float] = deque()
        self.ts: deque[float] = deque()
        self._refresh()

    def _refresh(self) -> None:
        """Exact sums about the window's mean (two passes, shifted by the oldest value first)."""
        self.cx, self.sx, self.sxx = _centred(self.xs)
        self.mag_x = self.sxx
        self.ct = self.st = self.stt = self.stx = self.mag_t = 0.0
        if self.with_t:
            self.ct, self.st, self.stt = _centred(self.ts)
            self.mag_t = self.stt
            self.stx = math.fsum((t - self.ct) * (x - self.cx) for t, x in zip(self.ts, self.xs, strict=True))
        self._since_refresh = 0

    def __len__(self) -> int:
        return len(self.xs)

    def load(self, xs: np.ndarray, ts: np.ndarray | None = None) -> None:
        """Replace the window by the last ``w`` of ``xs`` (and ``ts``): how a vectorised batch hands over."""
        self.xs = deque(np.asarray(xs, dtype=np.float64)[-self.w :].tolist())
        if self.with_t and ts is not None:
            self.ts = deque(np.asarray(ts, dtype=np.float64)[-self.w :].tolist())
        self._refresh()

    @property
    def full(self) -> bool:
        return len(self.xs) >= self.w

    def push(self, x: float, t: float = 0.0) -> None:
        if len(self.xs) >= self.w:
            ox = self.xs.popleft()
            dx = ox - self.cx
            self.sx -= dx
            self.sxx -= dx * dx
            self.mag_x += dx * dx
            if self.with_t:
                ot = self.ts.popleft()
                dt = ot - self.ct
                self.st -= dt
                self.stt -= dt * dt
                self.stx -= dt * dx
                self.mag_t += dt * dt
        self.xs.append(x)
        if self.with_t:
            self.ts.append(t)
        self._since_refresh += 1
        if len(self.xs) == 1 or self._since_refresh >= self.w:
            self._refresh()
            return
        dx = x - self.cx
        self.sx += dx
        self.sxx += dx * dx
        self.mag_x += dx * dx
        if self.with_t:
            dt = t - self.ct
            self.st += dt
            self.stt += dt * dt
            self.stx += dt * dx
            self.mag_t += dt * dt
        if self._ill_conditioned():
            self._refresh()

    def _ill_conditioned(self) -> bool:
        n = len(self.xs)
        if self.mag_x > ILL_CONDITIONED * (self.sxx - self.sx * self.sx / n):
            return True
        return self.with_t and self.mag_t > ILL_CONDITIONED * (self.stt - self.st * self.st / n)

    def mean_var(self) -> tuple[float, float]:
        """Mean and centred sum of squares (Sxx) of the window."""
        n = len(self.xs)
        return self.cx + self.sx / n, max(self.sxx - self.sx * self.sx / n, 0.0)


def _centred(values: deque[float]) -> tuple[float, float, float]:
    """(centre, sum of v - centre, sum of squares of v - centre) with the centre at the mean.

    Shifting by the first value before averaging keeps a constant window exact (centre = that value,
    sums 0), however the values round.
    """
    if not values:
        return 0.0, 0.0, 0.0
    v0 = values[0]
    centre = v0 + math.fsum(v - v0 for v in values) / len(values)
    return centre, math.fsum(v - centre for v in values), math.fsum((v - centre) ** 2 for v in values)


def window_sums(
    cols: dict[str, np.ndarray], w: int, products: tuple[tuple[str, str], ...]
) -> dict[str, np.ndarray]:
    """Centred window statistics of every full window of ``w`` consecutive points, vectorised.

    ``cols`` maps names (``x``, ``t``) to equal-length arrays. Returns, for windows ending at index
    ``w-1 .. n-1`` (``n - w + 1`` windows): ``mean_<name>`` and ``dlast_<name>`` (last value minus mean)
    for each column and ``S<a><b>`` (the centred sum of products, e.g. ``Sxx``, ``Stx``) for each pair in
    ``products``.

    The windows are grouped in blocks of ``B = max(4w, 64)``; each block's values are shifted by the
    block's first value and summed with one ``np.cumsum`` along the block (a 2-D strided view, no Python
    loop), so rounding errors stay local to ``B + w`` points however long the series is.
    """
    n = len(next(iter(cols.values())))
    n_out = n - w + 1
    if n_out <= 0:
        empty = {f"mean_{k}": np.empty(0) for k in cols} | {f"dlast_{k}": np.empty(0) for k in cols}
        return empty | {f"S{a}{b}": np.empty(0) for a, b in products}
    b = max(4 * w, 64)
    n_blocks = -(-n_out // b)
    span = b + w - 1
    pad = n_blocks * b + w - 1 - n
    seg: dict[str, np.ndarray] = {}
    sums: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    for k, v in cols.items():
        v = np.concatenate((v, np.full(pad, v[-1])))
        blocks = sliding_window_view(v, span)[::b]  # (n_blocks, b + w - 1) view
        ref = blocks[:, :1]
        seg[k] = blocks - ref
        sums[k] = _wsum(seg[k], w)
        out[f"mean_{k}"] = (ref + sums[k] / w).reshape(-1)[:n_out]
        # The window's last value minus its mean, computed in the shifted frame: exact even where the
        # values themselves are huge (epoch timestamps).
        out[f"dlast_{k}"] = (seg[k][:, w - 1 :] - sums[k] / w).reshape(-1)[:n_out]
    for a, c in products:
        out[f"S{a}{c}"] = (_wsum(seg[a] * seg[c], w) - sums[a] * sums[c] / w).reshape(-1)[:n_out]
    # Every column is checked, wanted products or not: a mean is as wrong as a spread once a spike
    # has left its window (a moving average of zeros must be 0, not 1e-10).
    risky = np.zeros(n_out, dtype=bool)
    for k in cols:
        sq = seg[k] * seg[k]
        skk = out[f"S{k}{k}"] if (k, k) in products else (_wsum(sq, w) - sums[k] ** 2 / w).reshape(-1)[:n_out]
        # The squares summed from the block's start to the window's end bound the rounding error.
        mag = np.cumsum(sq, axis=1)[:, w - 1 :].reshape(-1)[:n_out]
        risky |= mag > ILL_CONDITIONED * skk
        if (k, k) in products:
            np.maximum(skk, 0.0, out=skk)
    if risky.any():
        _exact(cols, w, products, np.flatnonzero(risky), out)
    return out


def _exact(
    cols: dict[str, np.ndarray],
    w: int,
    products: tuple[tuple[str, str], ...],
    idx: np.ndarray,
    out: dict[str, np.ndarray],
) -> None:
    """Overwrite the statistics of windows ``idx`` with two-pass values, as ``_centred`` computes them."""
    centred = {}
    for k, v in cols.items():
        win = sliding_window_view(v, w)[idx]
        d = win - win[:, :1]
        mean_d = d.mean(axis=1, keepdims=True)
        centred[k] = d - mean_d
        out[f"mean_{k}"][idx] = win[:, 0] + mean_d[:, 0]
        out[f"dlast_{k}"][idx] = centred[k][:, -1]
    for a, c in products:
        out[f"S{a}{c}"][idx] = np.einsum("ij,ij->i", centred[a], centred[c])


def _wsum(v: np.ndarray, w: int) -> np.ndarray:
    """Sums of ``w`` consecutive values along the last axis (one row per block)."""
    c = np.concatenate((np.zeros((v.shape[0], 1)), np.cumsum(v, axis=1)), axis=1)
    return c[:, w:] - c[:, :-w]

"""Rolling window moments in O(1) per point, streaming and vectorised, without floating-point drift.

Both paths keep sums of values *shifted by a reference* close to the window's values, so variance-style
differences (``S2 - S1**2 / n``) do not cancel catastrophically, and both re-anchor regularly so rounding
errors cannot pile up over millions of points:

- :class:`RollingMoments` (streaming) updates running sums on every push/pop (O(1)) and, once every
  ``w`` pushes, recomputes them exactly from the window about its oldest value (O(w) every w points:
  amortised O(1)). Memory O(w).
- :func:`window_sums` (vectorised) computes window sums with ``np.cumsum`` over overlapping blocks of
  ``max(4w, 64)`` windows, each block shifted by its own first value: O(1) per point (plus 25% overlap).

The two paths round differently but both stay within ~1e-12 relative of the exact sums.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class RollingMoments:
    """Sums over the last ``w`` points of x (and optionally t): n, mean, centred Sxx, St, Stt, Stx."""

    def __init__(self, w: int, with_t: bool = False) -> None:
        self.w = w
        self.with_t = with_t
        self.xs: deque[float] = deque()
        self.ts: deque[float] = deque()
        self._since_refresh = 0
        self._refresh(0.0, 0.0)

    def _refresh(self, cx: float, ct: float) -> None:
        self.cx, self.ct = cx, ct
        self.sx = self.sxx = self.st = self.stt = self.stx = 0.0
        for x in self.xs:
            dx = x - cx
            self.sx += dx
            self.sxx += dx * dx
        if self.with_t:
            for t, x in zip(self.ts, self.xs, strict=True):
                dt, dx = t - ct, x - cx
                self.st += dt
                self.stt += dt * dt
                self.stx += dt * dx
        self._since_refresh = 0

    def __len__(self) -> int:
        return len(self.xs)

    def load(self, xs: np.ndarray, ts: np.ndarray | None = None) -> None:
        """Replace the window by the last ``w`` of ``xs`` (and ``ts``): how a vectorised batch hands over."""
        self.xs = deque(np.asarray(xs, dtype=np.float64)[-self.w :].tolist())
        if self.with_t and ts is not None:
            self.ts = deque(np.asarray(ts, dtype=np.float64)[-self.w :].tolist())
        self._refresh(self.xs[0] if self.xs else 0.0, self.ts[0] if self.with_t and self.ts else 0.0)

    @property
    def full(self) -> bool:
        return len(self.xs) >= self.w

    def push(self, x: float, t: float = 0.0) -> None:
        if not self.xs:  # anchor the sums on the first value, not on 0
            self._refresh(x, t)
        if len(self.xs) >= self.w:
            ox = self.xs.popleft()
            dx = ox - self.cx
            self.sx -= dx
            self.sxx -= dx * dx
            if self.with_t:
                ot = self.ts.popleft()
                dt = ot - self.ct
                self.st -= dt
                self.stt -= dt * dt
                self.stx -= dt * dx
        self.xs.append(x)
        dx = x - self.cx
        self.sx += dx
        self.sxx += dx * dx
        if self.with_t:
            self.ts.append(t)
            dt = t - self.ct
            self.st += dt
            self.stt += dt * dt
            self.stx += dt * dx
        self._since_refresh += 1
        if self._since_refresh >= self.w:
            self._refresh(self.xs[0], self.ts[0] if self.with_t else 0.0)

    def mean_var(self) -> tuple[float, float]:
        """Mean and centred sum of squares (Sxx) of the window."""
        n = len(self.xs)
        return self.cx + self.sx / n, max(self.sxx - self.sx * self.sx / n, 0.0)


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
        sac = _wsum(seg[a] * seg[c], w) - sums[a] * sums[c] / w
        out[f"S{a}{c}"] = sac.reshape(-1)[:n_out]
        if a == c:
            np.maximum(out[f"S{a}{c}"], 0.0, out=out[f"S{a}{c}"])
    return out


def _wsum(v: np.ndarray, w: int) -> np.ndarray:
    """Sums of ``w`` consecutive values along the last axis (one row per block)."""
    c = np.concatenate((np.zeros((v.shape[0], 1)), np.cumsum(v, axis=1)), axis=1)
    return c[:, w:] - c[:, :-w]

"""Adaptive detector: a point is anomalous when no simple model of the series explains it as well as it
explained the worst of its recent history.

Two predictions of each value, each with its own typical error (an exponentially weighted mean absolute
error, the *scale*):

- **step**: the previous value (``x[i-1]``); its error is the step ``|x[i] - x[i-1]|``;
- **seasonal**: a per-phase profile of the period (default one day in ``bins`` = 48 half-hour bins), each
  bin an exponentially weighted mean of the values seen in that phase; used once a whole period has been
  seen since the first value.

Each model's surprise is ``z = error / scale``; the point's surprise is the *smaller* of the two (a square
wave's daily jump is expected by the profile; a random walk's step is expected by the step model). The
score is that surprise over ``margin`` times the largest surprise of the recent past, a running maximum
that decays by ``1 - 1 / memory`` per point: ``score = z / (margin * Q)``. It is scale-free (the same
threshold on a latency in ms and on a byte counter) and adapts to heavy tails (a series that often bursts
has a large ``Q``). The band is the chosen model's prediction +/- ``margin * Q * scale``, so the score
is the common one: deviation over the band's half-width.

Never alarms: the first ``warmup`` points (scores 0, no band), and the ``suppress`` points after an alarm
(scores 0, band kept), because one incident is one alarm. Scales are floored at ``1e-6`` of the series'
typical magnitude, so a flat line that moves at all is a surprise, but rounding is not.

Complexity: O(1) time per point and O(bins) memory (a few hundred bytes of state at 48 bins). Vectorised
path: every recurrence is a first-order linear filter (``scipy.signal.lfilter``) or a running maximum
(``np.maximum.accumulate`` in log space); only the suppression walks the alarms, which are few.

>>> import numpy as np
>>> x = 10 + np.sin(np.arange(600) / 5.0)
>>> x[450] += 5
>>> s = Adaptive().update_many(x, 60.0 * np.arange(600)).score
>>> [int(i) for i in np.flatnonzero(s > 1)]
[450]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from monitor.detectors.base import OnlineDetector, Score, Scores
from monitor.detectors.options import DetectorOptions, finish, finish_one

SCALE_ALPHA = 0.01
"""Weight of a new error in a scale (after the first ``1 / SCALE_ALPHA`` errors, which are averaged)."""
LEVEL_ALPHA = 0.01
"""Weight of a new ``|x|`` in the series' typical magnitude, which floors the scales."""
SCALE_FLOOR = 1e-6
"""A scale is at least this fraction of the typical magnitude (and at least ``TINY``)."""
TINY = 1e-9
SURPRISE_WARMUP = 100
"""The running maximum of surprises starts after this many points: the first scales are guesses."""


@dataclass(frozen=True)
class AdaptiveParams(DetectorOptions):
    margin: float = 1.2  # alarm when the surprise exceeds the recent maximum by this factor
    memory: int = 1000  # points over which the recent maximum decays by a factor e
    period_s: float = 86400.0  # the seasonal profile's period (seconds)
    bins: int = 48  # phases per period
    profile_alpha: float = 0.2  # weight of a new value in its phase's mean
    warmup: int = 300  # points that never alarm
    suppress: int = 200  # points after an alarm that never alarm

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.margin > 0:
            raise ValueError(f"margin must be positive, got {self.margin}")
        if self.memory < 1:
            raise ValueError(f"memory must be >= 1, got {self.memory}")
        if not self.period_s > 0:
            raise ValueError(f"period_s must be positive, got {self.period_s}")
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")
        if not 0 < self.profile_alpha <= 1:
            raise ValueError(f"profile_alpha must be in (0, 1], got {self.profile_alpha}")
        if self.warmup < 0 or self.suppress < 0:
            raise ValueError("warmup and suppress must be >= 0")

    @property
    def decay(self) -> float:
        return 1.0 - 1.0 / self.memory if self.memory > 1 else 0.0


def phase_bin(t: float, period: float, bins: int) -> int:
    return min(int((t % period) / period * bins), bins - 1)


def scale_weight(k: int) -> float:
    """Weight of the k-th error (k >= 1) in a scale: a plain mean first, then an exponential average."""
    return max(SCALE_ALPHA, 1.0 / k)


class Adaptive(OnlineDetector):
    """Step and seasonal models, the smaller surprise, over a decaying maximum of past surprises."""

    Params = AdaptiveParams

    def __init__(self, params: AdaptiveParams | None = None) -> None:
        self.p = params or AdaptiveParams()
        self.n = 0  # values learnt
        self.t0 = math.nan  # first timestamp
        self.prev = math.nan  # last value
        self.level = 0.0  # typical |x|
        self.step_n = 0  # steps learnt
        self.step_scale = 0.0
        # Lists, not arrays: the streaming path reads one element at a time, much faster from a list.
        self.profile = [0.0] * self.p.bins
        self.seen = [False] * self.p.bins
        self.season_n = 0  # seasonal errors learnt
        self.season_scale = 0.0
        self.peak = 0.0  # Q: decaying maximum of surprises
        self.quiet = 0  # points left in which an alarm is suppressed

    # -- streaming ----------------------------------------------------------------------------------
    def _evaluate(self, x: float, t: float) -> tuple[Score, float, int, float]:
        """(score, the point's surprise z, its phase bin, its seasonal error or NaN), without learning."""
        p = self.p
        b = phase_bin(t, p.period_s, p.bins)
        if self.n == 0:
            return finish_one(p, x, math.nan, math.nan, math.nan), 0.0, b, math.nan
        floor = max(SCALE_FLOOR * self.level, TINY)
        scale = max(self.step_scale, floor)
        expected = self.prev
        z = abs(x - self.prev) / scale
        serr = math.nan
        if self.seen[b]:
            pred = self.profile[b]
            serr = abs(x - pred)
            if t - self.t0 > p.period_s:
                sscale = max(self.season_scale, floor)
                zs = serr / sscale
                if zs < z:
                    z, scale, expected = zs, sscale, pred
        if self.n < p.warmup or self.peak <= 0:
            return finish_one(p, x, math.nan, math.nan, math.nan), z, b, serr
        half = p.margin * self.peak * scale
        s = finish_one(p, x, expected, expected - half, expected + half)
        if self.quiet > 0:
            s = Score(0.0, s.expected, s.lower, s.upper)
        return s, z, b, serr

    def _learn(self, x: float, t: float, s: Score, z: float, b: int, serr: float) -> None:
        p = self.p
        if self.n == 0:
            self.t0, self.level = t, abs(x)
        else:
            self.level += LEVEL_ALPHA * (abs(x) - self.level)
            self.step_n += 1
            self.step_scale += scale_weight(self.step_n) * (abs(x - self.prev) - self.step_scale)
        self.quiet = p.suppress if s.score > 1.0 else max(self.quiet - 1, 0)
        if self.n >= SURPRISE_WARMUP:
            self.peak = max(z, self.peak * p.decay)
        if self.seen[b]:
            self.season_n += 1
            self.season_scale += scale_weight(self.season_n) * (serr - self.season_scale)
            self.profile[b] += p.profile_alpha * (x - self.profile[b])
        else:
            self.profile[b], self.seen[b] = x, True
        self.prev = x
        self.n += 1

    def score_one(self, x: float, t: float) -> Score:
        return self._evaluate(float(x), float(t))[0]

    def learn_one(self, x: float, t: float) -> None:
        x, t = float(x), float(t)
        self._learn(x, t, *self._evaluate(x, t))

    def update_one(self, x: float, t: float) -> Score:
        x, t = float(x), float(t)
        out = self._evaluate(x, t)
        self._learn(x, t, *out)
        return out[0]

    # -- vectorised ---------------------------------------------------------------------------------
    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        p = self.p
        xs = np.asarray(xs, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        n = len(xs)
        if n == 0:
            return finish(p, xs, xs, xs, xs)
        counts = self.n + np.arange(n)  # values learnt before each point
        first = self.n == 0
        if first:
            self.t0, self.level = float(ts[0]), abs(float(xs[0]))
        # Typical magnitude before each point (the first point seeds it and is not averaged in).
        lv_in = np.abs(xs[1:]) if first else np.abs(xs)
        lv_after = _ema(lv_in, LEVEL_ALPHA, self.level)
        level = (
            np.concatenate(([self.level], lv_after[:-1]))
            if not first
            else np.concatenate(([self.level], [self.level], lv_after[:-1]))[:n]
        )
        floor = np.maximum(SCALE_FLOOR * level, TINY)
        # Step model.
        prev = np.concatenate(([self.prev], xs[:-1]))
        step = np.abs(xs - prev)  # NaN at a very first point
        st_in = step[1:] if first else step
        st_after = _scale_series(st_in, self.step_n, self.step_scale)
        step_scale = np.concatenate(([self.step_scale] * (2 if first else 1), st_after[:-1]))[:n]
        scale = np.maximum(step_scale, floor)
        expected = prev.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            z = step / scale
        # Seasonal model: per-bin exponential means, each point against its bin's mean before it.
        bins = np.minimum(((ts % p.period_s) / p.period_s * p.bins).astype(np.int64), p.bins - 1)
        pred = np.full(n, np.nan)
        order = np.argsort(bins, kind="stable")
        sb = bins[order]
        starts = np.flatnonzero(np.concatenate(([True], sb[1:] != sb[:-1])))
        ends = np.concatenate((starts[1:], [n]))
        for s0, e0 in zip(starts.tolist(), ends.tolist(), strict=True):
            b = int(sb[s0])
            idx = order[s0:e0]
            vals = xs[idx]
            if self.seen[b]:
                after = _ema(vals, p.profile_alpha, float(self.profile[b]))
                pred[idx[0]] = self.profile[b]
                pred[idx[1:]] = after[:-1]
            else:
                after = np.concatenate(([vals[0]], _ema(vals[1:], p.profile_alpha, float(vals[0]))))
                pred[idx[1:]] = after[:-1]
            self.profile[b], self.seen[b] = float(after[-1]), True
        serr = np.abs(xs - pred)
        has = ~np.isnan(serr)
        ss_after = _scale_series(serr[has], self.season_n, self.season_scale)
        ss_prior = np.concatenate(([self.season_scale], ss_after[:-1]))
        season_scale = np.full(n, np.nan)
        season_scale[has] = ss_prior
        sscale = np.maximum(season_scale, floor)
        active = has & (ts - self.t0 > p.period_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            zs = serr / sscale
        use = active & (zs < z)
        z = np.where(use, zs, z)
        scale = np.where(use, sscale, scale)
        expected = np.where(use, pred, expected)
        if first:
            z[0] = 0.0
        # Decaying maximum of surprises: peak_after[i] = max(z[i], decay * peak_after[i-1]) once eligible.
        peak_prior = _decaying_max(z, counts >= SURPRISE_WARMUP, self.peak, p.decay)
        warm = (counts < p.warmup) | (peak_prior <= 0)
        expected = np.where(warm, np.nan, expected)
        half = p.margin * peak_prior * scale
        out = finish(p, xs, expected, expected - half, expected + half)
        score = out.score.copy()
        self.quiet = _suppress(score, self.quiet, p.suppress)
        # Carry the state to the next batch.
        self.n += n
        self.prev = float(xs[-1])
        if len(lv_after):
            self.level = float(lv_after[-1])
        self.step_n += len(st_in)
        if len(st_after):
            self.step_scale = float(st_after[-1])
        self.season_n += int(has.sum())
        if len(ss_after):
            self.season_scale = float(ss_after[-1])
        self.peak = float(_decaying_max_after(z, counts >= SURPRISE_WARMUP, self.peak, p.decay))
        return Scores(score=score, expected=out.expected, lower=out.lower, upper=out.upper)


def _ema(v: np.ndarray, alpha: float, start: float) -> np.ndarray:
    """Values of ``m += alpha * (v - m)`` after each of ``v``, from ``m = start`` (filtered about start)."""
    if len(v) == 0:
        return v
    return lfilter([alpha], [1.0, -(1.0 - alpha)], v - start, zi=[(1.0 - alpha) * 0.0])[0] + start


def _scale_series(err: np.ndarray, k0: int, m0: float) -> np.ndarray:
    """A scale after each error: ``m += scale_weight(k) * (err - m)`` with k counting on from ``k0``."""
    m = len(err)
    if m == 0:
        return err
    k = k0 + 1 + np.arange(m)
    mean_part = k <= 1.0 / SCALE_ALPHA  # weight 1/k: a running mean
    out = np.empty(m)
    j = int(mean_part.sum())
    if j:
        out[:j] = (k0 * m0 + np.cumsum(err[:j])) / k[:j]
    if j < m:
        start = out[j - 1] if j else m0
        out[j:] = _ema(err[j:], SCALE_ALPHA, start)
    return out


def _decaying_max(z: np.ndarray, eligible: np.ndarray, peak0: float, decay: float) -> np.ndarray:
    """The running peak *before* each point (see :func:`_decaying_max_all`)."""
    after = _decaying_max_all(z, eligible, peak0, decay)
    return np.concatenate(([peak0], after[:-1]))


def _decaying_max_after(z: np.ndarray, eligible: np.ndarray, peak0: float, decay: float) -> float:
    return float(_decaying_max_all(z, eligible, peak0, decay)[-1])


def _decaying_max_all(z: np.ndarray, eligible: np.ndarray, peak0: float, decay: float) -> np.ndarray:
    """``peak = max(z[i], decay * peak)`` at eligible points, unchanged before the first one.

    Closed form: ``peak_i = max(peak0 * decay**(i - e + 1), max over k in e..i of z_k * decay**(i - k))``
    with ``e`` the first eligible index, computed in log space with a running maximum.
    """
    n = len(z)
    out = np.full(n, peak0)
    elig = np.flatnonzero(eligible)
    if not elig.size:
        return out
    e = int(elig[0])
    m = n - e
    if decay <= 0:  # memory 1: the peak is the last surprise
        out[e:] = z[e:]
        return out
    ld = math.log(decay)
    k = np.arange(m, dtype=np.float64)
    with np.errstate(divide="ignore"):
        lz = np.log(np.maximum(z[e:], 0.0)) - k * ld
        l0 = math.log(peak0) + ld if peak0 > 0 else -math.inf
    out[e:] = np.exp(np.maximum(np.maximum.accumulate(lz), l0) + k * ld)
    return out


def _suppress(score: np.ndarray, quiet: int, length: int) -> int:
    """Zero ``score`` (in place) where an earlier alarm's quiet period covers it; return the quiet left."""
    pos = 0  # first index not yet covered by a decision
    n = len(score)
    if quiet > 0:
        score[: min(quiet, n)] = 0.0
        pos = min(quiet, n)
        quiet -= pos
    while True:
        hits = np.flatnonzero(score[pos:] > 1.0)
        if not hits.size:
            return quiet if pos >= n else 0
        i = pos + int(hits[0])
        end = min(i + 1 + length, n)
        score[i + 1 : end] = 0.0
        quiet = length - (end - i - 1)
        pos = end
        if pos >= n:
            return quiet

"""Adaptive detector (issue 20): a point is anomalous when no simple model of its series explains it as well
as the models explained the series' recent worst, when it leaves the range the series has kept, or while
the series stays away from its usual course.

Columnar: a query's series are rows of state arrays, stepped one time column at a time (``base.Detector``).

Each value is predicted by two models, each with its typical error (an exponentially weighted mean absolute
error, the *scale*): the **step** model (the previous value) and the **day** model (a profile of the day in
``bins`` bins, each an exponential mean of the values seen at that time of day; the ``jitter`` bins on
either side count too, so a daily event whose time of day wanders by an hour is still expected). The
point's *surprise* ``z`` is the smaller of the two errors over their scales. It is compared with a
*reference*, the largest surprise of the recent past (a running maximum fading by e over ``memory``
points), never below the largest surprise seen near this time of day (fading over the shape's length, a
week): ``score = z / max(margin * reference, min_surprise)``, so the score is scale-free and a bursty series
simply has a larger reference. A short period in samples (the simulator's 80 s triangle), looked for once
in the first ``PERIOD_SEARCH`` values and kept only if exact (two periods back predicts as well as the
previous value), adds a per-phase profile whose surprise lowers what enters the reference: the reference
learns that the series repeats, the deviation stays measured by the step and day models.

Three more signals on the same scale, the score being the largest:

- **new range** (Numenta's "spatial anomaly"): how far the value lies beyond the range seen so far, and
  beyond the range seen near this time of day, in units of ``range_margin + range_spacing / n`` of the
  range: the range of few points understates the series' (the next extreme of ``n`` points lies about
  ``width / n`` beyond them), so the margin starts wide;
- **the week's shape**: a profile of ``shape_days`` periods; its surprise over ``season_margin`` times its
  own fading peak, once the whole shape has been seen (a holiday, a daily jump that did not happen);
- **the state**: how far the series stays from its usual course. The *course* is the profile (the short
  period's, the day's or the week's) that explains the value best, its deviation measured in that profile's
  scale; the state is the deviation the last ``STATE_POINTS`` values all kept on one side (0 when they
  straddle the course), over ``min_surprise``. A shift, a drop or a drift keeps the score above 1 for as
  long as it lasts, where the step model, which takes each value as the next prediction, stops seeing it
  after its first point; three points on one side filter a single spike and the noise.

**Short warm-up.** A row scores from its ``warmup``-th point (50). With few points the running maximum
understates the series' worst (the maximum of ``n`` draws of a light tail grows as ``log n``), so the
reference is raised by ``log(memory) / log(n)`` until ``n`` reaches ``memory``.

**Nothing is learnt uncapped from an anomalous point** (score above 1): its errors enter the scales up to
``CAP`` band half-widths, the day and week profiles learn the value clipped into the band, the references
learn its surprise capped at the threshold it crossed (so a burst that recurs is learnt in a few repeats,
an isolated one barely), the typical magnitude skips it, the range widens by at most ``range_margin`` of
itself per point and the range near this time of day half-way (at most by the range's width): a series
that has moved for good is learnt within tens of points, a daily spike in a few days, and an absurd
value, even 1e308, leaves every statistic finite. The courses a departure is measured from are stricter
while the state is not 0: the short period's profile (and the day's, while the point itself is not
anomalous) moves by at most one scale, or a tenth of the distance, per visit, and its scale grows as
little, so a ten-minute shift of a 2 s series or a failure building over hours stays visible, and a
lasting change is learnt over tens of periods (or sooner by the week's profile, which learns as before).
The detector never goes quiet after an alarm; grouping alarms into incidents is the caller's (the incident
detector; NAB's onset scoring in ``monitor.evaluation.onsets``).

The band is the chosen point model's prediction +/- the threshold times its scale. A spike and the step
back from it are flagged, nothing else:

>>> x = 10 + np.sin(np.arange(600) / 5.0)
>>> x[450] += 5
>>> s = Adaptive().update_many(x, 60.0 * np.arange(600)).score
>>> [int(i) for i in np.flatnonzero(s > 1)]
[450, 451]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import Detector, State
from monitor.detectors.options import DetectorOptions
from monitor.detectors.scores import Scores
from streamwatch.scores import anomalous, mask_direction

SCALE_ALPHA = 0.01
"""Weight of a new error in a scale, after the first ``1 / SCALE_ALPHA`` errors (which are averaged)."""
LEVEL_ALPHA = 0.01
"""Weight of a new ``|x|`` in the series' typical magnitude, which floors the scales."""
SCALE_FLOOR = 1e-6
"""A scale is at least this fraction of the typical magnitude (and at least ``TINY``)."""
TINY = 1e-9
PEAK_START = 10
"""The references learn from this many points on: the very first scales are guesses."""
PERIOD_SEARCH = 300
"""Values kept to look for a short period (at most a third of them: three repeats seen)."""
MIN_PERIOD = 4
PERIOD_ACF = 0.5
"""Autocorrelation a period's peak must reach, and how far below it it must have fallen before."""
PERIOD_DIP = 0.3
CAP = 10.0
"""An anomalous point's error is learnt up to this many band half-widths (finite, and bounded per point)."""
STATE_POINTS = 3
"""The state is the deviation this many consecutive values kept on one side of the course (the state
arrays hold the previous two)."""


@dataclass(frozen=True)
class AdaptiveParams(DetectorOptions):
    margin: float = 2.0  # alarm when the surprise exceeds the recent worst by this factor
    memory: int = 1000  # points over which the recent worst fades by a factor e
    min_surprise: float = 4.0  # ... and never for less than this many typical errors (also the state's)
    period_s: float = 86400.0  # the day model's period (seconds)
    bins: int = 48  # bins per period
    jitter: int = 1  # neighbouring bins on each side that also explain a value (time-of-day tolerance)
    profile_alpha: float = 0.2  # weight of a new value in its bin's mean
    range_margin: float = 0.02  # a value beyond the range seen by this fraction of it alarms (0: off)
    range_spacing: float = 5.0  # ... plus this many times width / n while few points were seen
    shape_days: int = 7  # the shape's profile covers this many periods (a week)
    season_margin: float = 2.0  # the shape's alarm: its surprise over this times its recent worst
    warmup: int = 50  # points a row learns before it scores

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = (
            ("margin", self.margin > 0, "positive"),
            ("memory", self.memory >= 2, ">= 2"),
            ("min_surprise", self.min_surprise >= 0, ">= 0"),
            ("period_s", self.period_s > 0, "positive"),
            ("bins", 1 <= self.bins <= 10_000, "in [1, 10000]"),
            ("jitter", 0 <= self.jitter < self.bins, "in [0, bins)"),
            ("profile_alpha", 0 < self.profile_alpha <= 1, "in (0, 1]"),
            ("range_margin", self.range_margin >= 0, ">= 0"),
            ("range_spacing", self.range_spacing >= 0, ">= 0"),
            ("shape_days", 1 <= self.shape_days <= 366, "in [1, 366]"),
            ("season_margin", self.season_margin > 0, "positive"),
            ("warmup", 2 <= self.warmup <= 100_000, "in [2, 100000]"),
        )
        for name, good, what in checks:
            if not good:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)}")

    @property
    def decay(self) -> float:
        return 1.0 - 1.0 / self.memory


def find_period(values: np.ndarray, shortest: int = MIN_PERIOD) -> int:
    """The period in samples of a short history, or 0 when it does not repeat.

    The autocorrelation (each lag's sum over its own number of pairs) must climb back above ``PERIOD_ACF``
    after falling by at least ``PERIOD_DIP`` below that level: a smooth or trending series, whose
    autocorrelation only falls, has none. The period is the first such peak, at most a third of the
    history.

    >>> find_period(np.tile([0.0, 1.0, 2.0, 3.0, 2.0, 1.0], 20))
    6
    """
    d = np.asarray(values, dtype=np.float64)
    d = d - d.mean()
    m = len(d)
    hi = m // 3
    v = float(d @ d)
    if hi < shortest or not v > 0:
        return 0
    full = np.correlate(d, d, mode="full")[m : m + hi]  # lags 1..hi
    ac = full / v * m / (m - np.arange(1, hi + 1))
    trough = np.minimum.accumulate(ac)
    ok = (ac > PERIOD_ACF) & (ac - trough > PERIOD_DIP)
    ok[: shortest - 1] = False
    if not ok.any():
        return 0
    k = int(np.flatnonzero(ok)[0])
    while k + 1 < hi and ac[k + 1] >= ac[k]:
        k += 1  # up to the top of that peak
    return k + 1


def _weight(k: np.ndarray) -> np.ndarray:
    """Weight of the k-th error in a scale: a plain mean first, then an exponential average."""
    return np.maximum(SCALE_ALPHA, 1.0 / np.maximum(k, 1))


def _closest(candidates: list[np.ndarray]) -> np.ndarray:
    """Elementwise, the candidate nearest 0 (NaN: no candidate; +inf where none has a value)."""
    best = np.full(candidates[0].shape, math.inf)
    for c in candidates:
        best = np.where(np.abs(c) < np.abs(best), c, best)  # NaN compares False: never taken
    return best


class Adaptive(Detector):
    """Step and day models over a fading reference of their own worst, a new range, the week's shape and
    the state; columnar, with capped learning from anomalous points (see the module docstring)."""

    Params = AdaptiveParams

    @property
    def warmup(self) -> int:
        return int(self.p.warmup)

    def fresh(self, n: int) -> State:
        p = self.p
        b, w = p.bins, p.bins * p.shape_days
        nan = math.nan
        return {
            "t0": np.full(n, nan),  # first timestamp
            "prev": np.zeros(n),
            "mag": np.zeros(n),  # typical |x|
            "lo": np.full(n, math.inf),  # the range seen
            "hi": np.full(n, -math.inf),
            "step_scale": np.zeros(n),
            "day": np.full((n, b), nan),  # NaN: a bin not seen yet
            "day_n": np.zeros(n, dtype=np.int64),
            "day_scale": np.zeros(n),
            "peak": np.zeros(n),  # fading maximum of the point surprise
            "bin_peak": np.zeros((n, b)),  # largest surprise near each time of day, and when it was seen
            "bin_time": np.full((n, b), -math.inf),
            "day_hi": np.full((n, b), -math.inf),  # the range seen at each time of day
            "day_lo": np.full((n, b), math.inf),
            "week": np.full((n, w), nan),
            "week_n": np.zeros(n, dtype=np.int64),
            "week_scale": np.zeros(n),
            "week_peak": np.zeros(n),
            "buf": np.full((n, PERIOD_SEARCH), nan),  # the first values, for the period search
            "period": np.zeros(n, dtype=np.int64),  # in samples; 0: none
            "pprof": np.full((n, PERIOD_SEARCH // 3), nan),
            "p_n": np.zeros(n, dtype=np.int64),
            "p_scale": np.zeros(n),
            # The deviations from the course of the previous two values (STATE_POINTS - 1), newest first.
            "dev1": np.zeros(n),
            "dev2": np.zeros(n),
        }

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return self._column(np.where(ok, x, 0.0), np.where(ok, t, 0.0), ok)

    def _column(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        p, st = self.p, self.state
        n = st["n"]
        rows = np.arange(len(x))
        has = n > 0
        inf = math.inf
        floor = np.maximum(SCALE_FLOOR * st["mag"], TINY)
        # Step model.
        step_sc = np.maximum(st["step_scale"], floor)
        step_err = np.abs(x - st["prev"])
        z = np.where(has, step_err / step_sc, inf)
        scale, expected = step_sc, st["prev"].copy()
        # Day model: the best of this bin and its neighbours, once a whole period has been seen.
        b = np.floor((t % p.period_s) / p.period_s * p.bins).astype(np.int64) % p.bins
        day_sc = np.maximum(st["day_scale"], floor)
        best, pred = np.full(len(x), inf), np.full(len(x), np.nan)
        for k in range(-p.jitter, p.jitter + 1):
            pk = st["day"][rows, (b + k) % p.bins]
            e = np.abs(x - pk)
            better = e < best  # NaN (a bin not seen) is never better
            best, pred = np.where(better, e, best), np.where(better, pk, pred)
        own = st["day"][rows, b]
        day_on = t - st["t0"] > p.period_s
        z_day = np.where(day_on, best / day_sc, inf)
        use = z_day < z
        z = np.where(use, z_day, z)
        scale = np.where(use, day_sc, scale)
        expected = np.where(use, pred, expected)
        # Period model (reference and course only).
        per = st["period"]
        phase = n % np.maximum(per, 1)
        ppred = st["pprof"][rows, phase]
        p_sc = np.maximum(st["p_scale"], floor)
        p_dev = np.where(per > 0, x - ppred, np.nan)
        z_ref = np.minimum(z, np.where(p_dev == p_dev, np.abs(p_dev) / p_sc, inf))
        # The reference: the recent worst, never below the worst near this time of day.
        ref = st["peak"].copy()
        shape_s = p.period_s * p.shape_days
        for k in range(-p.jitter, p.jitter + 1):
            bk = (b + k) % p.bins
            ref = np.maximum(
                ref, st["bin_peak"][rows, bk] * np.exp(-(t - st["bin_time"][rows, bk]) / shape_s)
            )
        few = np.maximum(1.0, math.log(p.memory) / np.log(np.maximum(n, 2)))
        thr = np.maximum(p.margin * ref * few, p.min_surprise)
        warm = n < p.warmup
        expected = np.where(warm | ~has, np.nan, expected)
        half = thr * scale
        out = self.finish(x, expected, expected - half, expected + half)
        score = out.score
        # New range.
        width = st["hi"] - st["lo"]
        unit = (p.range_margin + p.range_spacing / np.maximum(n, 1)) * width
        # Beyond the range seen, and beyond the range seen near this time of day (which learns an anomalous
        # value half-way: a daily spike is new once or twice, not every day).
        near_hi, near_lo = np.full(len(x), -inf), np.full(len(x), inf)
        for k in range(-p.jitter, p.jitter + 1):
            bk = (b + k) % p.bins
            near_hi = np.maximum(near_hi, st["day_hi"][rows, bk])
            near_lo = np.minimum(near_lo, st["day_lo"][rows, bk])
        up = np.where(p.direction != "below", x - np.maximum(st["hi"], near_hi), 0.0)
        down = np.where(p.direction != "above", np.minimum(st["lo"], near_lo) - x, 0.0)
        beyond = np.maximum(np.maximum(up, down), 0.0)
        s_range = np.where((width > 0) & (p.range_margin > 0) & ~warm, beyond / unit, 0.0)
        score = np.maximum(score, np.nan_to_num(s_range, nan=0.0))
        # The week's shape.
        wb = np.floor((t % shape_s) / shape_s * p.bins * p.shape_days).astype(np.int64) % (
            p.bins * p.shape_days
        )
        wpred = st["week"][rows, wb]
        w_sc = np.maximum(st["week_scale"], floor)
        w_dev = np.where(t - st["t0"] > shape_s, x - wpred, np.nan)
        z_week = np.where(w_dev == w_dev, np.abs(w_dev) / w_sc, 0.0)
        week_thr = np.maximum(p.season_margin * st["week_peak"], p.min_surprise)
        s_week = mask_direction(p.direction, w_dev, 0.0, z_week / week_thr)  # the side of the deviation
        score = np.maximum(score, np.where(warm | (st["week_peak"] <= 0), 0.0, s_week))
        # The state: the deviation from the course that the last STATE_POINTS values kept on one side.
        d = _closest([np.where(day_on, (x - pred) / day_sc, np.nan), p_dev / p_sc, w_dev / w_sc])
        d = np.where(np.isfinite(d), d, 0.0)
        low = np.minimum(np.minimum(d, st["dev1"]), st["dev2"])
        high = np.maximum(np.maximum(d, st["dev1"]), st["dev2"])
        state = np.where(low > 0, low, np.where(high < 0, high, 0.0))
        s_state = mask_direction(p.direction, state, 0.0, np.abs(state) / max(p.min_surprise, TINY))
        s_state = s_state if p.min_surprise > 0 else 0.0 * x
        score = np.maximum(score, np.where(warm, 0.0, s_state))
        anom = anomalous(score)
        away = anom | (state != 0)
        self._learn(
            x, t, ok, anom, away, thr, week_thr, b, own, wb, wpred, phase, ppred, d, step_err, z_ref, z_week
        )
        return Scores(np.where(ok, score, np.nan), out.expected, out.lower, out.upper)

    def _learn(
        self,
        x: np.ndarray,
        t: np.ndarray,
        ok: np.ndarray,
        anom: np.ndarray,
        away: np.ndarray,
        thr: np.ndarray,
        week_thr: np.ndarray,
        b: np.ndarray,
        own: np.ndarray,
        wb: np.ndarray,
        wpred: np.ndarray,
        phase: np.ndarray,
        ppred: np.ndarray,
        d: np.ndarray,
        step_err: np.ndarray,
        z_ref: np.ndarray,
        z_week: np.ndarray,
    ) -> None:
        """Learn column ``x`` where ``ok``; an anomalous point only capped (see the module docstring).
        ``away``: anomalous, or the state is not 0 (the short period's profile learns only capped)."""
        p, st = self.p, self.state
        n = st["n"]
        rows = np.arange(len(x))
        has = n > 0
        normal = ok & ~anom
        first = ok & ~has
        np.copyto(st["t0"], t, where=first)
        floor = np.maximum(SCALE_FLOOR * st["mag"], TINY)
        mag = np.where(first, np.abs(x), st["mag"] + LEVEL_ALPHA * (np.abs(x) - st["mag"]))
        np.copyto(st["mag"], mag, where=normal)
        # Step scale: the k-th step has weight 1/k, then SCALE_ALPHA; capped at CAP bands when anomalous.
        sc = np.maximum(st["step_scale"], floor)
        e = np.where(anom, np.minimum(step_err, CAP * thr * sc), step_err)
        np.copyto(st["step_scale"], st["step_scale"] + _weight(n) * (e - st["step_scale"]), where=ok & has)
        # The profiles. The day's and the week's learn an anomalous value clipped into the band, its error
        # capped at CAP bands. The courses the state is measured from learn slowly while it is not 0 (one
        # scale, or a tenth of the distance, per visit; the scale grows as little), so a departure stays
        # visible while it builds: the short period's always, the day's while the point is not anomalous
        # (it is also the day model, which must follow an anomalous point into its band). The week's sees a
        # bin once a week: learning that slowly it would take months to follow a change.
        strict = away & ~anom
        day_cap = np.where(strict, 1.0, CAP * thr)
        day_clip = np.where(strict, 1.0, thr)
        day_least = np.where(strict, 1 / CAP, 0.0)
        for name, count, scl, where, col, pred, off, cap, clip, least in (
            ("day", "day_n", "day_scale", ok, b, own, away, day_cap, day_clip, day_least),
            ("week", "week_n", "week_scale", ok, wb, wpred, anom, CAP * thr, thr, 0.0),
            ("pprof", "p_n", "p_scale", ok & (st["period"] > 0), phase, ppred, away, 1.0, 1.0, 1 / CAP),
        ):
            self._profile(name, count, scl, where, off, x, rows, col, pred, floor, cap, clip, least)
        # References: an anomalous surprise is learnt capped at the threshold it crossed.
        decay = p.decay
        learn_ref = ok & (n >= PEAK_START) & np.isfinite(z_ref)
        zr = np.where(anom, np.minimum(z_ref, thr), z_ref)
        np.copyto(st["peak"], np.maximum(st["peak"] * decay, zr), where=learn_ref)
        shape_s = p.period_s * p.shape_days
        cur = st["bin_peak"][rows, b] * np.exp(-(t - st["bin_time"][rows, b]) / shape_s)
        sel = learn_ref & (zr > cur)
        st["bin_peak"][rows[sel], b[sel]] = zr[sel]
        st["bin_time"][rows[sel], b[sel]] = t[sel]
        zw = np.where(anom, np.minimum(z_week, week_thr), z_week)
        np.copyto(st["week_peak"], np.maximum(st["week_peak"] * decay, zw), where=ok & (n >= PEAK_START))
        # The range: an anomalous value widens it by at most range_margin of its width.
        width = st["hi"] - st["lo"]
        grow = p.range_margin * np.where(np.isfinite(width), width, 0.0)
        hi = np.where(anom & has, np.minimum(x, st["hi"] + grow), x)
        lo = np.where(anom & has, np.maximum(x, st["lo"] - grow), x)
        np.copyto(st["hi"], np.maximum(st["hi"], hi), where=ok)
        np.copyto(st["lo"], np.minimum(st["lo"], lo), where=ok)
        # ... and the range at this time of day: half-way to an anomalous value (the first value whatever).
        dh, dl = st["day_hi"][rows, b], st["day_lo"][rows, b]
        span = np.where(np.isfinite(width), width, 0.0)
        dh = np.where(
            anom & np.isfinite(dh) & (x > dh), dh + np.minimum((x - dh) / 2, span), np.maximum(dh, x)
        )
        dl = np.where(
            anom & np.isfinite(dl) & (x < dl), dl - np.minimum((dl - x) / 2, span), np.minimum(dl, x)
        )
        st["day_hi"][rows[ok], b[ok]] = dh[ok]
        st["day_lo"][rows[ok], b[ok]] = dl[ok]
        np.copyto(st["prev"], x, where=ok)
        np.copyto(st["dev2"], st["dev1"], where=ok)
        np.copyto(st["dev1"], d, where=ok)
        # The period search, once, on the first PERIOD_SEARCH values.
        keep = ok & (n < PERIOD_SEARCH)
        st["buf"][rows[keep], n[keep]] = x[keep]
        for i in np.flatnonzero(ok & (n + 1 == PERIOD_SEARCH)).tolist():
            self._start_period(i)

    def _profile(
        self,
        name: str,
        count: str,
        scale: str,
        ok: np.ndarray,
        capped: np.ndarray,
        x: np.ndarray,
        rows: np.ndarray,
        col: np.ndarray,
        pred: np.ndarray,
        floor: np.ndarray,
        cap: np.ndarray | float,
        clip: np.ndarray | float,
        least: np.ndarray | float = 0.0,
    ) -> None:
        """One per-bin profile's mean and scale. Where ``capped``, the error enters the scale up to ``cap``
        scales and the value moves the bin clipped to ``clip`` scales, both keeping at least ``least`` of
        their distance; a bin not seen yet takes the value."""
        st = self.state
        seen = pred == pred
        sc = np.maximum(st[scale], floor)
        err = np.abs(x - pred)
        learn = ok & seen
        st[count] += learn
        e = np.where(capped, np.minimum(err, np.maximum(cap * sc, least * err)), err)
        np.copyto(st[scale], st[scale] + _weight(st[count]) * (e - st[scale]), where=learn)
        reach = np.maximum(clip * sc, least * err)
        xc = np.where(capped, np.clip(x, pred - reach, pred + reach), x)
        new = np.where(seen, pred + self.p.profile_alpha * (xc - pred), x)
        st[name][rows[ok], col[ok]] = new[ok]

    def _start_period(self, i: int) -> None:
        """Row ``i`` has its first PERIOD_SEARCH values: look for a period and learn its profile from them."""
        st = self.state
        buf = st["buf"][i]
        per = find_period(buf)
        # Kept only if it is exact: the value two periods back predicts as well as the previous value. A
        # period that is not a whole number of samples slips a little each repeat, and a profile chasing
        # it leaves errors that stay on one side for a while, which the state would take for a shift.
        if per and not np.mean(np.abs(buf[2 * per :] - buf[: -2 * per])) < np.mean(np.abs(np.diff(buf))):
            per = 0
        st["period"][i] = per
        if not per:
            return
        prof, alpha = st["pprof"][i], self.p.profile_alpha
        prof[:per] = buf[:per]
        k, m = 0, 0.0
        for j in range(per, len(buf)):
            ph = j % per
            k += 1
            m += max(SCALE_ALPHA, 1.0 / k) * (abs(buf[j] - prof[ph]) - m)
            prof[ph] += alpha * (buf[j] - prof[ph])
        st["p_n"][i], st["p_scale"][i] = k, m

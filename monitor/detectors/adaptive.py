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
that decays by ``1 - 1 / memory`` per point, and never over less than ``min_surprise``:
``score = z / max(margin * Q, min_surprise)``. ``Q`` is also never below the largest surprise seen at this
time of day (the daily profile's bin), which fades by a factor e over the shape's length (a week): a
surprise that recurs at the same time every day, such as a daily jump the half-hour profile only half
explains, is that time's normal worst, though it has faded from the running maximum by the next day.
The score is scale-free (the same threshold on a latency in ms and on a byte counter) and adapts to
heavy tails (a series that often bursts has a large ``Q``); the floor keeps pure noise quiet once ``Q``
has faded (a running maximum of noise is otherwise exceeded now and then). The band is the chosen model's
prediction +/- that threshold times ``scale``, so the score is the
common one: deviation over the band's half-width.

A **short period** in samples is looked for once, in the warm-up's values (:func:`find_period`). If one
is found, a per-phase profile of it predicts each value too, and its surprise lowers ``z`` as it enters
``Q`` only: the reference of an ordinary worst learns that the series repeats, while the deviation is
still measured by the step and daily models. (As a full model its error scale absorbs frequent
incidents and loses them; see docs/adaptive-detector.md.)

Other signals on the same scale, the score being the largest:

- **drift**: the fast exponential mean of the values (weight ``drift_fast``, with this value) minus the
  slow one (``drift_slow``), over its own scale and its own decaying peak;
- **new range** (Numenta's "spatial anomaly"): how far the value lies beyond the range of all values
  seen, in units of ``range_margin`` times that range (:func:`range_score`);
- **the shape**: a second per-phase profile over ``shape_days`` periods (a week of 336 half-hour bins by
  default; real metrics have weekly seasons too: weekends, holidays), its own surprise over
  ``season_margin`` times its own decaying peak (:func:`season_score`), used once the whole profile has
  been seen: a day that departs from its usual shape for that weekday where each step looks ordinary
  (a daily jump that did not happen, a holiday's traffic on a working day).

An alarm's surprises are not learnt as normal (the peaks are capped at their value before it), so one
incident does not raise the bar for the next.

Never alarms: the first ``warmup`` points (scores 0, no band), and the ``suppress`` points after an alarm
(scores 0, band kept), because one incident is one alarm. Scales are floored at ``1e-6`` of the series'
typical magnitude, so a flat line that moves at all is a surprise, but rounding is not.

Complexity: O(1) time per point and O(bins * shape_days + period) memory (5 to 7 KiB of state; the
warm-up's values are kept until its end, then dropped). Vectorised path: every recurrence is a
first-order linear filter (``scipy.signal.lfilter``), a per-phase one, or a running maximum
(``np.maximum.accumulate`` in log space); only the suppression walks the alarms, which are few. A batch
that crosses the warm-up's end is split there, so the period is found at the same point on every path.

>>> import numpy as np
>>> x = 10 + np.sin(np.arange(600) / 5.0)
>>> x[450] += 5
>>> s = Adaptive().update_many(x, 60.0 * np.arange(600)).score
>>> [int(i) for i in np.flatnonzero(s > 1)]
[450]
"""

from __future__ import annotations

import math
from array import array
from collections.abc import MutableSequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from monitor.detectors.base import OnlineDetector
from monitor.detectors.options import DetectorOptions, finish, finish_one
from monitor.detectors.scores import Score, Scores

SCALE_ALPHA = 0.01
"""Weight of a new error in a scale (after the first ``1 / SCALE_ALPHA`` errors, which are averaged)."""
LEVEL_ALPHA = 0.01
"""Weight of a new ``|x|`` in the series' typical magnitude, which floors the scales."""
SCALE_FLOOR = 1e-6
"""A scale is at least this fraction of the typical magnitude (and at least ``TINY``)."""
TINY = 1e-9
SURPRISE_WARMUP = 100
"""The running maximum of surprises starts after this many points: the first scales are guesses."""
DRIFT_WARMUP = 200
"""The same for the drift, whose slow mean needs longer to settle."""
MIN_PERIOD = 4
"""The shortest period in samples the warm-up looks for."""
PERIOD_ACF = 0.5
"""Autocorrelation a period's peak must reach, and how far below it must have fallen before it."""
PERIOD_DIP = 0.3
CHUNK = 1024
"""Most points the vectorised path computes in one go between alarms."""


@dataclass(frozen=True)
class AdaptiveParams(DetectorOptions):
    margin: float = 1.3  # alarm when the surprise exceeds the recent maximum by this factor
    memory: int = 1000  # points over which the recent maximum decays by a factor e
    period_s: float = 86400.0  # the seasonal profile's period (seconds)
    bins: int = 48  # phases per period
    profile_alpha: float = 0.2  # weight of a new value in its phase's mean
    warmup: int = 300  # points that never alarm
    suppress: int = 200  # points after an alarm that never alarm
    drift_fast: float = 0.02  # weights of a new value in the drift's fast and slow means
    drift_slow: float = 0.002
    season_margin: float = 1.5  # the shape's alarm: its profile's surprise over this times its recent peak
    shape_days: int = 7  # the shape's profile covers this many periods (7: the week's shape, 1: the day's)
    min_surprise: float = 4.0  # the alarm threshold on a surprise is never below this many typical errors
    range_margin: float = 0.02  # a value beyond the range seen so far by this fraction of it alarms (0: off)

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
        if not 0 < self.drift_slow < self.drift_fast <= 1:
            raise ValueError("need 0 < drift_slow < drift_fast <= 1")
        if self.warmup < 0 or self.suppress < 0:
            raise ValueError("warmup and suppress must be >= 0")
        if not self.season_margin > 0:
            raise ValueError(f"season_margin must be positive, got {self.season_margin}")
        if self.shape_days < 1:
            raise ValueError(f"shape_days must be >= 1, got {self.shape_days}")
        if not self.min_surprise >= 0:
            raise ValueError(f"min_surprise must be >= 0, got {self.min_surprise}")
        if not self.range_margin >= 0:
            raise ValueError(f"range_margin must be >= 0, got {self.range_margin}")

    @property
    def decay(self) -> float:
        return 1.0 - 1.0 / self.memory if self.memory > 1 else 0.0


def phase_bin(t: float, period: float, bins: int) -> int:
    return min(int((t % period) / period * bins), bins - 1)


def find_period(values: np.ndarray | list[float], shortest: int = MIN_PERIOD) -> int:
    """The period in samples of a short history, or 0 when it does not repeat.

    The autocorrelation of the values (each lag's sum over its own number of pairs) must climb back above
    ``PERIOD_ACF`` after falling by at least ``PERIOD_DIP`` below that level: a smooth or trending series,
    whose autocorrelation only falls, has no period. The period is the first such peak, at most a third
    of the history (three repeats seen)."""
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


def period_profile(
    values: np.ndarray | list[float], period: int, alpha: float
) -> tuple[list[float], np.ndarray]:
    """A per-phase exponential mean of ``values`` (phase = index mod period) and the errors of the values
    whose phase had been seen (each against its phase's mean before it)."""
    profile: list[float] = []
    errs = []
    for i, x in enumerate(np.asarray(values, dtype=np.float64).tolist()):
        ph = i % period
        if i < period:
            profile.append(x)
        else:
            errs.append(abs(x - profile[ph]))
            profile[ph] += alpha * (x - profile[ph])
    return profile, np.asarray(errs, dtype=np.float64)


def scale_weight(k: int) -> float:
    """Weight of the k-th error (k >= 1) in a scale: a plain mean first, then an exponential average."""
    return max(SCALE_ALPHA, 1.0 / k)


class Adaptive(OnlineDetector):
    """Step and seasonal models (the smaller surprise) and a drift statistic, each over a decaying
    maximum of its own past surprises."""

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
        # NaN: a phase not seen yet.
        self.profile = [math.nan] * self.p.bins
        self.season_n = 0  # seasonal errors learnt
        self.season_scale = 0.0
        self.peak = 0.0  # decaying maximum of point surprises
        self.fast = 0.0  # fast and slow exponential means of the values (drift)
        self.slow = 0.0
        self.drift_scale = 0.0
        self.drift_peak = 0.0
        # The shape's profile: shape_days periods of bins each (an array: 8 bytes a bin for a week's 336).
        self.shape = array("d", [math.nan]) * (self.p.bins * self.p.shape_days)
        self.shape_n = 0  # its errors learnt
        self.shape_scale = 0.0
        # The largest surprise seen at each time of day (log, plus its age in shape lengths, so it decays
        # by a factor e over a week without being touched): a surprise that recurs at the same time every
        # day (a daily jump that falls inside a bin) is that time's normal worst.
        self.bin_peak = [-math.inf] * self.p.bins
        self.season_peak = 0.0  # decaying maximum of the shape profile's surprises
        self.quiet = 0  # points left in which an alarm is suppressed
        self.vmin, self.vmax = math.inf, -math.inf  # the range of the values seen
        # The warm-up's values, kept until its end to look for a period in samples (then dropped).
        self.buf: list[float] | None = [] if self.p.warmup >= 3 * MIN_PERIOD else None
        self.period = 0  # in samples; 0: none found
        self.pprofile: list[float] = []  # per-phase means
        self.p_n = 0  # period errors learnt
        self.p_scale = 0.0

    def _start_period(self) -> None:
        """End of the warm-up: look for a period in its values and learn its profile from them."""
        buf, self.buf = self.buf or [], None
        self.period = find_period(buf)
        if self.period:
            self.pprofile, errs = period_profile(buf, self.period, self.p.profile_alpha)
            self.p_n = len(errs)
            self.p_scale = float(_scale_series(errs, 0, 0.0)[-1]) if len(errs) else 0.0

    # -- streaming ----------------------------------------------------------------------------------
    def _evaluate(
        self, x: float, t: float
    ) -> tuple[Score, float, int, float, float, float, float, int, float, float]:
        """(score, point surprise, phase bin, seasonal error or NaN, drift, drift surprise, period error
        or NaN, the shape's bin, its error or NaN, its surprise or 0), no learning."""
        p = self.p
        b = phase_bin(t, p.period_s, p.bins)
        hb = phase_bin(t, p.period_s * p.shape_days, p.bins * p.shape_days)
        if self.n == 0:
            none = finish_one(p, x, math.nan, math.nan, math.nan)
            return none, 0.0, b, math.nan, 0.0, 0.0, math.nan, hb, math.nan, 0.0
        floor = max(SCALE_FLOOR * self.level, TINY)
        scale = max(self.step_scale, floor)
        expected = self.prev
        z = abs(x - self.prev) / scale
        pred = self.profile[b]
        serr = abs(x - pred)  # NaN: a phase not seen yet
        if serr == serr and t - self.t0 > p.period_s:
            sscale = max(self.season_scale, floor)
            zs = serr / sscale
            if zs < z:
                z, scale, expected = zs, sscale, pred
        perr = math.nan
        if self.period:
            pred = self.pprofile[self.n % self.period]
            perr = abs(x - pred)
            pscale = max(self.p_scale, floor)
            # Only the reference (the recent worst surprise) learns the period model's surprise: the
            # deviation itself stays measured by the step and daily models (see the module docstring).
            z = min(z, perr / pscale)
        # The shape: this value against its phase of the shape's profile, once the whole profile was seen.
        herr = abs(x - self.shape[hb])
        zh = hdev = 0.0
        if herr == herr and t - self.t0 > p.period_s * p.shape_days:
            zh, hdev = herr / max(self.shape_scale, floor), x - self.shape[hb]
        drift = self.fast + p.drift_fast * (x - self.fast) - self.slow
        zd = abs(drift) / max(self.drift_scale, floor)
        if self.n < p.warmup:
            none = finish_one(p, x, math.nan, math.nan, math.nan)
            return none, z, b, serr, drift, zd, perr, hb, herr, zh
        ref = self.peak
        if self.bin_peak[b] > -math.inf:
            ref = max(ref, math.exp(self.bin_peak[b] - (t - self.t0) / (p.period_s * p.shape_days)))
        if self.peak > 0:
            half = max(p.margin * ref, p.min_surprise) * scale
            s = finish_one(p, x, expected, expected - half, expected + half)
        else:
            s = finish_one(p, x, math.nan, math.nan, math.nan)
        sd = max(
            drift_score(p, zd, drift, self.drift_peak),
            range_score(p, x, self.vmin, self.vmax),
            season_score(p, zh, hdev, self.season_peak),
        )
        if self.quiet > 0:
            s = Score(0.0, s.expected, s.lower, s.upper)
        elif sd > s.score:
            s = Score(sd, s.expected, s.lower, s.upper)
        return s, z, b, serr, drift, zd, perr, hb, herr, zh

    def _learn(
        self,
        x: float,
        t: float,
        s: Score,
        z: float,
        b: int,
        serr: float,
        drift: float,
        zd: float,
        perr: float,
        hb: int,
        herr: float,
        zh: float,
    ) -> None:
        p = self.p
        alarm = s.score > 1.0
        if self.n == 0:
            self.t0, self.level, self.fast, self.slow = t, abs(x), x, x
        else:
            self.level += LEVEL_ALPHA * (abs(x) - self.level)
            self.step_n += 1
            self.step_scale += scale_weight(self.step_n) * (abs(x - self.prev) - self.step_scale)
            self.fast += p.drift_fast * (x - self.fast)
            self.slow += p.drift_slow * (x - self.slow)
        self.drift_scale += scale_weight(self.n + 1) * (abs(drift) - self.drift_scale)
        self.quiet = p.suppress if alarm else max(self.quiet - 1, 0)
        # An alarm's surprise is not learnt as normal (capped at the current peak), so one incident does
        # not blind the detector to the next.
        if self.n >= SURPRISE_WARMUP and z > 0 and not alarm:
            lz = math.log(z) + (t - self.t0) / (p.period_s * p.shape_days)
            self.bin_peak[b] = max(self.bin_peak[b], lz)
        if self.n >= SURPRISE_WARMUP:
            self.peak = max(min(z, self.peak) if alarm and self.peak > 0 else z, self.peak * p.decay)
            capped = min(zh, self.season_peak) if alarm and self.season_peak > 0 else zh
            self.season_peak = max(capped, self.season_peak * p.decay)
        if self.n >= DRIFT_WARMUP:
            capped = min(zd, self.drift_peak) if alarm and self.drift_peak > 0 else zd
            self.drift_peak = max(capped, self.drift_peak * p.decay)
        if serr == serr:
            self.season_n += 1
            self.season_scale += scale_weight(self.season_n) * (serr - self.season_scale)
            self.profile[b] += p.profile_alpha * (x - self.profile[b])
        else:
            self.profile[b] = x
        if herr == herr:
            self.shape_n += 1
            self.shape_scale += scale_weight(self.shape_n) * (herr - self.shape_scale)
            self.shape[hb] += p.profile_alpha * (x - self.shape[hb])
        else:
            self.shape[hb] = x
        if self.period:
            ph = self.n % self.period
            self.p_n += 1
            self.p_scale += scale_weight(self.p_n) * (perr - self.p_scale)
            self.pprofile[ph] += p.profile_alpha * (x - self.pprofile[ph])
        elif self.buf is not None:
            self.buf.append(x)
        self.vmin, self.vmax = min(self.vmin, x), max(self.vmax, x)
        self.prev = x
        self.n += 1
        if self.n == p.warmup and self.buf is not None:
            self._start_period()

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
        k = p.warmup - self.n
        if 0 < k < n:  # the period is looked for at the warm-up's end: the two sides are two batches
            a, b = self.update_many(xs[:k], ts[:k]), self.update_many(xs[k:], ts[k:])
            return Scores(
                *(
                    np.concatenate((getattr(a, f), getattr(b, f)))
                    for f in ("score", "expected", "lower", "upper")
                )
            )
        counts = self.n + np.arange(n)  # values learnt before each point
        first = self.n == 0
        if first:
            self.t0, self.level = float(ts[0]), abs(float(xs[0]))
            self.fast = self.slow = float(xs[0])
        lead = 2 if first else 1  # how many points see the state as it was before this batch
        rest = xs[1:] if first else xs  # what the recurrences learn (the very first value only seeds them)
        # Typical magnitude before each point.
        lv_after = _ema(np.abs(rest), LEVEL_ALPHA, self.level)
        level = np.concatenate(([self.level] * lead, lv_after[:-1]))[:n]
        floor = np.maximum(SCALE_FLOOR * level, TINY)
        # Step model.
        prev = np.concatenate(([self.prev], xs[:-1]))
        step = np.abs(xs - prev)  # NaN at a very first point
        st_in = step[1:] if first else step
        st_after = _scale_series(st_in, self.step_n, self.step_scale)
        step_scale = np.concatenate(([self.step_scale] * lead, st_after[:-1]))[:n]
        scale = np.maximum(step_scale, floor)
        expected = prev.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            z = step / scale
        # Seasonal model: per-bin exponential means, each point against its bin's mean before it.
        bins = _bins(ts, p.period_s, p.bins)
        pred = _bin_means(xs, bins, self.profile, p.profile_alpha)
        serr = np.abs(xs - pred)
        has = ~np.isnan(serr)
        ss_after = _scale_series(serr[has], self.season_n, self.season_scale)
        season_scale = np.full(n, np.nan)
        season_scale[has] = np.concatenate(([self.season_scale], ss_after[:-1]))
        sscale = np.maximum(season_scale, floor)
        active = has & (ts - self.t0 > p.period_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            zs = serr / sscale
        use = active & (zs < z)
        z = np.where(use, zs, z)
        scale = np.where(use, sscale, scale)
        expected = np.where(use, pred, expected)
        # The shape's profile and its surprise (0 until the whole profile was seen).
        hperiod = p.period_s * p.shape_days
        hpred = _bin_means(xs, _bins(ts, hperiod, p.bins * p.shape_days), self.shape, p.profile_alpha)
        herr = np.abs(xs - hpred)
        hhas = ~np.isnan(herr)
        hs_after = _scale_series(herr[hhas], self.shape_n, self.shape_scale)
        hscale = np.full(n, np.nan)
        hscale[hhas] = np.concatenate(([self.shape_scale], hs_after[:-1]))
        with np.errstate(invalid="ignore", divide="ignore"):
            zsc = np.where(hhas & (ts - self.t0 > hperiod), herr / np.maximum(hscale, floor), 0.0)
        sdev = xs - hpred
        self.shape_n += int(hhas.sum())
        if len(hs_after):
            self.shape_scale = float(hs_after[-1])
        # Period model (after the warm-up, when one was found), phases counted in samples.
        if self.period:
            ppred = _phase_means(xs, counts % self.period, self.pprofile, p.profile_alpha)
            perr = np.abs(xs - ppred)
            pa = _scale_series(perr, self.p_n, self.p_scale)
            pscale = np.maximum(np.concatenate(([self.p_scale], pa[:-1])), floor)
            z = np.minimum(z, perr / pscale)  # the reference only, as in the streaming path
            self.p_n += n
            self.p_scale = float(pa[-1])
        elif self.buf is not None:
            self.buf.extend(xs.tolist())
        # The range seen before each point.
        vmax = np.maximum.accumulate(np.concatenate(([self.vmax], xs)))
        vmin = np.minimum.accumulate(np.concatenate(([self.vmin], xs)))
        rs = np.where(counts < p.warmup, 0.0, range_scores(p, xs, vmin[:-1], vmax[:-1]))
        self.vmin, self.vmax = float(vmin[-1]), float(vmax[-1])
        if first:
            z[0] = 0.0
        # Drift: the fast mean (with this value) minus the slow one (without it), over its own scale.
        fast_after = _ema(rest, p.drift_fast, self.fast)
        fast = np.concatenate(([self.fast] * lead, fast_after))[1 : n + 1]
        slow_after = _ema(rest, p.drift_slow, self.slow)
        slow = np.concatenate(([self.slow] * lead, slow_after[:-1]))[:n]
        drift = fast - slow
        if first:
            drift[0] = 0.0
        dr_after = _scale_series(np.abs(drift), self.n, self.drift_scale)
        drift_scale = np.concatenate(([self.drift_scale], dr_after[:-1]))
        zd = np.abs(drift) / np.maximum(drift_scale, floor)
        warm = counts < p.warmup
        age = (ts - self.t0) / (p.period_s * p.shape_days)  # for the bins' peaks
        score, expected, lower, upper = self._alarms(
            xs, z, scale, expected, zd, drift, rs, zsc, sdev, counts, warm, bins, age
        )
        # Carry the state to the next batch.
        self.n += n
        self.prev = float(xs[-1])
        if len(rest):
            self.level = float(lv_after[-1])
            self.step_scale = float(st_after[-1])
            self.fast, self.slow = float(fast_after[-1]), float(slow_after[-1])
        self.step_n += len(st_in)
        self.season_n += int(has.sum())
        if len(ss_after):
            self.season_scale = float(ss_after[-1])
        self.drift_scale = float(dr_after[-1])
        if self.n == p.warmup and self.buf is not None:
            self._start_period()
        return Scores(score=score, expected=expected, lower=lower, upper=upper)

    def _alarms(
        self,
        xs: np.ndarray,
        z: np.ndarray,
        scale: np.ndarray,
        expected: np.ndarray,
        zd: np.ndarray,
        drift: np.ndarray,
        rs: np.ndarray,
        zsc: np.ndarray,
        sdev: np.ndarray,
        counts: np.ndarray,
        warm: np.ndarray,
        bins: np.ndarray,
        age: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scores from the decaying peaks, with suppression; updates the peaks and the quiet count.

        The peaks have a closed form between alarms; an alarm changes the peaks' update (capped), so each
        segment is computed up to its first alarm and the next one starts after it. Segments are at most
        ``CHUNK`` points, so a batch with many alarms costs O(CHUNK) per alarm at worst.
        """
        p = self.p
        n = len(xs)
        score = np.zeros(n)
        exp_out = np.full(n, np.nan)
        lo_out = np.full(n, np.nan)
        hi_out = np.full(n, np.nan)
        pos = 0
        while pos < n:
            end = min(n, pos + CHUNK)
            sl = slice(pos, end)
            e_ok = counts[sl] >= SURPRISE_WARMUP
            d_ok = counts[sl] >= DRIFT_WARMUP
            peak_all = _decaying_max_all(z[sl], e_ok, self.peak, p.decay)
            dpeak_all = _decaying_max_all(zd[sl], d_ok, self.drift_peak, p.decay)
            peak = np.concatenate(([self.peak], peak_all[:-1]))
            speak_all = _decaying_max_all(zsc[sl], e_ok, self.season_peak, p.decay)
            speak = np.concatenate(([self.season_peak], speak_all[:-1]))
            dpeak = np.concatenate(([self.drift_peak], dpeak_all[:-1]))
            ex = np.where(warm[sl] | (peak <= 0), np.nan, expected[sl])
            ok = e_ok & (z[sl] > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                blz = np.where(ok, np.log(np.where(ok, z[sl], 1.0)) + age[sl], -np.inf)
            prior, bin_after = _bin_prior(blz, bins[sl], self.bin_peak)
            ref = np.maximum(peak, np.exp(prior - age[sl]))
            half = np.maximum(p.margin * ref, p.min_surprise) * scale[sl]
            out = finish(p, xs[sl], ex, ex - half, ex + half)
            s = np.maximum(np.maximum(out.score, drift_scores(p, zd[sl], drift[sl], dpeak, warm[sl])), rs[sl])
            s = np.maximum(s, season_scores(p, zsc[sl], sdev[sl], speak, warm[sl]))
            q = min(self.quiet, end - pos)
            s[:q] = 0.0
            hits = np.flatnonzero(s[q:] > 1.0)
            stop = end if not hits.size else pos + q + int(hits[0]) + 1  # commit up to the alarm
            k = stop - pos
            score[pos:stop] = s[:k]
            exp_out[pos:stop], lo_out[pos:stop], hi_out[pos:stop] = (
                out.expected[:k],
                out.lower[:k],
                out.upper[:k],
            )
            if hits.size:
                i = k - 1  # the alarm, within the segment: its surprises are capped at the peaks
                self.bin_peak = _bin_prior(blz[:i], bins[sl][:i], self.bin_peak)[1]  # the alarm: not learnt
                self.peak = float(peak_all[i - 1]) if i else self.peak
                self.season_peak = float(speak_all[i - 1]) if i else self.season_peak
                self.drift_peak = float(dpeak_all[i - 1]) if i else self.drift_peak
                if e_ok[i] and self.peak > 0:
                    self.peak = max(min(float(z[pos + i]), self.peak), self.peak * p.decay)
                elif e_ok[i]:
                    self.peak = float(z[pos + i])
                if e_ok[i] and self.season_peak > 0:
                    self.season_peak = max(
                        min(float(zsc[pos + i]), self.season_peak), self.season_peak * p.decay
                    )
                elif e_ok[i]:
                    self.season_peak = float(zsc[pos + i])
                if d_ok[i] and self.drift_peak > 0:
                    self.drift_peak = max(min(float(zd[pos + i]), self.drift_peak), self.drift_peak * p.decay)
                elif d_ok[i]:
                    self.drift_peak = float(zd[pos + i])
                self.quiet = p.suppress
            else:
                self.peak, self.drift_peak = float(peak_all[-1]), float(dpeak_all[-1])
                self.season_peak = float(speak_all[-1])
                self.bin_peak = bin_after
                self.quiet -= q
            pos = stop
        return score, exp_out, lo_out, hi_out


def drift_score(p: AdaptiveParams, zd: float, drift: float, peak: float) -> float:
    """The drift surprise over ``margin`` times its recent peak, on the sides ``direction`` allows."""
    if peak <= 0 or (p.direction == "above" and not drift > 0) or (p.direction == "below" and not drift < 0):
        return 0.0
    return zd / (p.margin * peak)


def drift_scores(
    p: AdaptiveParams, zd: np.ndarray, drift: np.ndarray, peak: np.ndarray, warm: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`drift_score`, 0 in warm-up."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(peak > 0, zd / (p.margin * np.where(peak > 0, peak, 1.0)), 0.0)
    if p.direction == "above":
        s = np.where(drift > 0, s, 0.0)
    elif p.direction == "below":
        s = np.where(drift < 0, s, 0.0)
    return np.where(warm, 0.0, s)


def season_score(p: AdaptiveParams, zs: float, dev: float, peak: float) -> float:
    """The daily profile's surprise over ``season_margin`` times its recent peak (never under
    ``min_surprise``): a day that departs from its usual shape even where each step looks ordinary, such
    as a daily jump that did not happen."""
    if peak <= 0 or (p.direction == "above" and not dev > 0) or (p.direction == "below" and not dev < 0):
        return 0.0
    return zs / max(p.season_margin * peak, p.min_surprise)


def season_scores(
    p: AdaptiveParams, zs: np.ndarray, dev: np.ndarray, peak: np.ndarray, warm: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`season_score`, 0 in warm-up."""
    with np.errstate(divide="ignore", invalid="ignore"):  # no peak yet (and min_surprise 0): 0 below
        s = np.where(peak > 0, zs / np.maximum(p.season_margin * peak, p.min_surprise), 0.0)
    if p.direction == "above":
        s = np.where(dev > 0, s, 0.0)
    elif p.direction == "below":
        s = np.where(dev < 0, s, 0.0)
    return np.where(warm, 0.0, s)


def range_score(p: AdaptiveParams, x: float, lo: float, hi: float) -> float:
    """How far ``x`` lies beyond the range ``[lo, hi]`` seen so far, in units of ``range_margin`` times
    its width (above 1: past the margin); 0 inside it, with no range yet, or on the side ``direction``
    ignores."""
    width = hi - lo
    if not p.range_margin > 0 or not width > 0:
        return 0.0
    unit = p.range_margin * width
    if x > hi and p.direction != "below":
        return (x - hi) / unit
    if x < lo and p.direction != "above":
        return (lo - x) / unit
    return 0.0


def range_scores(p: AdaptiveParams, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Vectorised :func:`range_score`."""
    width = hi - lo
    if not p.range_margin > 0:
        return np.zeros(len(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = p.range_margin * width
        up = np.where(x > hi, (x - hi) / unit, 0.0) if p.direction != "below" else 0.0
        down = np.where(x < lo, (lo - x) / unit, 0.0) if p.direction != "above" else 0.0
        s = np.maximum(up, down)
    return np.where(width > 0, s, 0.0)


def _bins(ts: np.ndarray, period: float, bins: int) -> np.ndarray:
    """Vectorised :func:`phase_bin`."""
    return np.minimum(((ts % period) / period * bins).astype(np.int64), bins - 1)


def _bin_means(xs: np.ndarray, bins: np.ndarray, profile: MutableSequence[float], alpha: float) -> np.ndarray:
    """Each value's bin mean before it (NaN for a bin not seen yet: its first value seeds it), updating
    ``profile`` (NaN: not seen)."""
    pred = np.full(len(xs), np.nan)
    order = np.argsort(bins, kind="stable")
    sb = bins[order]
    starts = np.flatnonzero(np.concatenate(([True], sb[1:] != sb[:-1])))
    ends = np.concatenate((starts[1:], [len(xs)]))
    for s0, e0 in zip(starts.tolist(), ends.tolist(), strict=True):
        b = int(sb[s0])
        idx = order[s0:e0]
        vals = xs[idx]
        if profile[b] == profile[b]:
            after = _ema(vals, alpha, profile[b])
            pred[idx[0]] = profile[b]
            pred[idx[1:]] = after[:-1]
        else:
            after = np.concatenate(([vals[0]], _ema(vals[1:], alpha, float(vals[0]))))
            pred[idx[1:]] = after[:-1]
        profile[b] = float(after[-1])
    return pred


def _bin_prior(v: np.ndarray, bins: np.ndarray, state: list[float]) -> tuple[np.ndarray, list[float]]:
    """Each point's running maximum of ``v`` over the earlier points of its bin, from ``state[bin]``, and
    the state after all of them (``state`` itself is not changed)."""
    prior = np.empty(len(v))
    after = list(state)
    if not len(v):
        return prior, after
    order = np.argsort(bins, kind="stable")
    sb = bins[order]
    starts = np.flatnonzero(np.concatenate(([True], sb[1:] != sb[:-1])))
    ends = np.concatenate((starts[1:], [len(v)]))
    for s0, e0 in zip(starts.tolist(), ends.tolist(), strict=True):
        b = int(sb[s0])
        idx = order[s0:e0]
        cm = np.maximum.accumulate(np.concatenate(([state[b]], v[idx])))
        prior[idx] = cm[:-1]
        after[b] = float(cm[-1])
    return prior, after


def _phase_means(xs: np.ndarray, phases: np.ndarray, profile: list[float], alpha: float) -> np.ndarray:
    """Each value's phase mean before it (``profile[phase]``, every phase seen), updating ``profile``."""
    pred = np.empty(len(xs))
    order = np.argsort(phases, kind="stable")
    sp = phases[order]
    starts = np.flatnonzero(np.concatenate(([True], sp[1:] != sp[:-1])))
    ends = np.concatenate((starts[1:], [len(xs)]))
    for s0, e0 in zip(starts.tolist(), ends.tolist(), strict=True):
        ph = int(sp[s0])
        idx = order[s0:e0]
        after = _ema(xs[idx], alpha, profile[ph])
        pred[idx[0]] = profile[ph]
        pred[idx[1:]] = after[:-1]
        profile[ph] = float(after[-1])
    return pred


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

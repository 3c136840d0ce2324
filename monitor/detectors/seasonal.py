"""Seasonal baseline: Prophet-like daily shapes, cheaply, as streaming per-phase profiles in rows of arrays.

Each row (series) keeps a level, a profile of ``bins`` offsets over one period, and a residual spread;
``expected = level + profile(phase)``, the profile linearly interpolated between bin centres, and the
band is ``expected +/- k * sigma``, scored by ``options.finish`` like every other detector. It is
additive Holt-Winters without a trend, made robust where the refitted medians it replaces were:

1. **Warm-up.** A row keeps its first ``warmup`` samples (the only per-sample memory it ever has). Then
   the period is found in them (``monitor.period``, unless ``period`` is given), the sampling step is
   measured, ``bins = min(max_bins, period / step)`` (one bin per sample of a period when that fits), and
   the kept samples are replayed into the learner below, so nothing of the warm-up is wasted. With no
   season the row is flat (the median and a MAD band of its warm-up) and looks for a period again every
   ``warmup`` samples, in the samples it keeps meanwhile.
2. **Learning the shape.** During its first period a bin's value is the running mean of the samples that
   fell in it (split between the two nearest bins by their distance); then the level is their mean and
   the profile their offsets from it. From then on each residual ``e = x - expected``, clipped to
   ``HUBER`` (2) sigmas, moves the level by ``e / memory`` and the two nearest bins by their share of
   ``e`` over the samples they have seen, but never less than ``1 / profile_memory`` of the samples a
   period brings them: Huber means, so an anomaly moves the shape and the level little more than a
   normal point does (the refitted medians' robustness, without the history).
3. **The band.** ``sigma = 1.4826 * median |e|``, as the old fit's MAD band: over the second period the
   median is estimated from the residuals' plain mean (times 0.845, the ratio for normal noise), then
   tracked: each residual inside the band moves it by a factor ``exp(+/- step)`` towards itself (step
   ``2 / n`` for the ``n``-th residual, then ``1 / memory``), so it settles where half of them are
   larger; a residual outside the band says nothing of the normal spread and is not learnt (a wider
   noise still widens the band, through the residuals inside it). A row scores once it has seen
   ``warmup`` samples, two periods and ``MIN_RESIDUALS`` residuals.

What is learnt is also capped by the band, as in every detector (``monitor.detectors.learning``).

This replaces a detector that kept 14,400 samples per series and refitted medians on them every 1,800
samples (2 GiB and a refit per series every hour at 10,000 series): here a series costs its profile and
counts (``16 * max_bins`` bytes, 4.5 KiB at 288 bins) plus the warm-up's samples (``16 * warmup``, 9.4 KiB),
and a point costs O(1). Finding the period costs about 15 ms per series, once, at the end of its warm-up
(``period=`` skips it). What it does not catch: a change lasting longer than about ``memory`` samples
becomes the level; a shape that changes from day to day needs ``period=604800`` (a week).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.detectors.base import Detector, State
from monitor.detectors.options import DetectorOptions
from monitor.detectors.scores import Scores
from monitor.period import PeriodError, detect_period, sampling_step

# Period detection folds the samples 601 times: it looks at the most recent samples only.
DETECT_MAX_POINTS = 10_000
MAD_TO_SIGMA = 1.4826  # sigma / median |e| for normal noise
MEAN_TO_MEDIAN = 0.6745 / math.sqrt(2 / math.pi)  # median |e| / mean |e| for normal noise
SIGMA_FLOOR = 1e-9  # times max(1, |level|): a flat series still has a band to score against
HUBER = 2.0  # a residual enters the level and the profile at most this many sigmas (Huber means)
MIN_RESIDUALS = 30  # residuals the spread is a plain mean of before it scores (and before it decays)


@dataclass(frozen=True)
class SeasonalParams(DetectorOptions):
    k: float = 4.0  # band half-width in sigmas of the residuals (as Prophet's band)
    period: float = 0.0  # seconds; 0: found in the warm-up's samples
    max_bins: int = 288  # phase bins per period at most (a day in 5-minute bins)
    warmup: int = 600  # samples kept before the period is looked for and the profile set up
    memory: int = 1800  # samples over which the level and the spread adapt (by a factor e)
    profile_memory: int = 20  # periods over which a phase's value adapts (by a factor e)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.k > 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if not self.period >= 0:
            raise ValueError(f"period must be >= 0, got {self.period}")
        if not 1 <= self.max_bins <= 100_000:
            raise ValueError(f"max_bins must be between 1 and 100000, got {self.max_bins}")
        if not 8 <= self.warmup <= 100_000:
            raise ValueError(f"warmup must be between 8 and 100000, got {self.warmup}")
        if self.memory < 1 or self.profile_memory < 1:
            raise ValueError(
                f"memory and profile_memory must be >= 1, got {self.memory}, {self.profile_memory}"
            )


class SeasonalDetector(Detector):
    """Per-phase streaming profile with a residual band (k = 4 by default; see the module).

    >>> import numpy as np
    >>> ts = 2.0 * np.arange(700)
    >>> xs = np.where(np.arange(700) % 10 < 5, 100.0, 200.0)  # a square wave, period 20 s
    >>> xs[655] = 100.0  # a low sample where the wave is high
    >>> d = SeasonalDetector(SeasonalParams(period=20.0, warmup=600))
    >>> s = d.update_many(xs, ts)
    >>> float(s.expected[655]), bool(s.anomalous[655]), int(s.anomalous.sum())
    (200.0, True, 1)
    """

    Params = SeasonalParams

    @property
    def warmup(self) -> int:
        return self.p.warmup

    def fresh(self, n: int) -> State:
        w, b = self.p.warmup, self.p.max_bins
        return {
            "period": np.full(n, np.nan),  # NaN until the warm-up ends; 0: flat (no season)
            "anchor": np.zeros(n),  # phase 0
            "start": np.zeros(n),  # when the profile began to learn
            "bins": np.ones(n, dtype=np.int64),
            "level": np.zeros(n),
            "spread": np.zeros(n),  # median |residual| (tracked; first from a plain mean)
            "nres": np.zeros(n, dtype=np.int64),  # residuals learnt by the spread
            "profile": np.zeros((n, b)),
            "count": np.zeros((n, b)),  # samples each bin has learnt (fractions: split between two bins)
            "bt": np.zeros((n, w)),  # the warm-up's samples (a ring while a flat row looks for a season)
            "bx": np.zeros((n, w)),
            "blen": np.zeros(n, dtype=np.int64),
            "since": np.zeros(n, dtype=np.int64),  # samples kept since the last look for a period
            "last": np.full(n, np.nan),  # time of the last sample learnt
        }

    # --- the model ------------------------------------------------------------------------------------

    def _cycles(self, st: State, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Periods seen by rows ``idx`` at ``t`` since their profile began (inf for flat rows)."""
        period = st["period"][idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(period > 0, (t - st["start"][idx]) / np.where(period > 0, period, 1.0), np.inf)

    def _phase(self, st: State, idx: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bin, next bin, fraction of the way to it) of time ``t`` in rows ``idx``."""
        period, bins = st["period"][idx], st["bins"][idx]
        safe = np.where(period > 0, period, 1.0)
        pos = np.where(period > 0, np.mod(t - st["anchor"][idx], safe) / safe * bins, 0.0)
        lo = np.floor(pos)
        i = lo.astype(np.int64) % bins
        return i, (i + 1) % bins, pos - lo

    def _expected(self, st: State, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        i, j, frac = self._phase(st, idx, t)
        prof = st["profile"]
        a, b = prof[idx, i], prof[idx, j]
        return st["level"][idx] + (a + frac * (b - a))

    def _sigma(self, st: State, idx: np.ndarray) -> np.ndarray:
        return np.maximum(
            MAD_TO_SIGMA * st["spread"][idx], SIGMA_FLOOR * np.maximum(1.0, np.abs(st["level"][idx]))
        )

    def warming(self) -> np.ndarray:
        """Per row: True until it scores (its warm-up, two periods and ``MIN_RESIDUALS`` residuals)."""
        st = self.state
        out = np.ones(self.rows, dtype=bool)
        known = np.flatnonzero(~np.isnan(st["period"]))
        out[known] = ~self._ready(st, known, st["last"][known])
        return out

    def _ready(self, st: State, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        cycles = self._cycles(st, idx, t)
        return (st["n"][idx] >= self.p.warmup) & (cycles >= 2) & (st["nres"][idx] >= MIN_RESIDUALS)

    # --- a column -------------------------------------------------------------------------------------

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        st = self.state
        rows = x.shape[0]
        expected, half = np.full(rows, np.nan), np.full(rows, np.nan)
        known = np.flatnonzero(~np.isnan(st["period"]))
        if known.size:
            ready = self._ready(st, known, t[known])
            r = known[ready]
            expected[r] = self._expected(st, r, t[r])
            half[r] = self.p.k * self._sigma(st, r)
        s = self.finish(x, expected, expected - half, expected + half)
        xl = self.learnable(x, s)
        # Rows with a period learn the sample; rows in warm-up (and flat rows) keep it.
        learn = np.flatnonzero(ok & ~np.isnan(st["period"]))
        if learn.size:
            self._learn(st, learn, xl[learn], t[learn])
        np.copyto(st["last"], t, where=ok)
        keep = ok & (np.isnan(st["period"]) | (st["period"] == 0))
        if keep.any():
            self._keep(st, np.flatnonzero(keep), xl, t)
        return s

    def _learn(self, st: State, idx: np.ndarray, x: np.ndarray, t: np.ndarray) -> None:
        """One sample per row of ``idx``: the learner of the module's step 2 and 3."""
        cycles = self._cycles(st, idx, t)
        # A row whose first period just ended turns its bins' means into a level and offsets.
        first = idx[(cycles >= 1) & (st["nres"][idx] == 0) & (st["period"][idx] > 0)]
        if first.size:
            self._settle(st, first)
        i, j, frac = self._phase(st, idx, t)
        period = st["period"][idx]
        seasonal = period > 0
        shape_i, shape_j = st["profile"][idx, i], st["profile"][idx, j]
        level = st["level"][idx]
        in_first = cycles < 1
        # First period: raw running means per bin. Later: residuals against level + profile.
        e = np.where(in_first, 0.0, x - (level + shape_i + frac * (shape_j - shape_i)))
        # The level and the bins learn Huber means: a residual enters them at most HUBER sigmas from the
        # model, so an anomaly moves them little more than a normal point does (as the refitted medians
        # did); while the spread is still unknown, as it is.
        sig = MAD_TO_SIGMA * st["spread"][idx]
        e_h = np.where(sig > 0, np.clip(e, -HUBER * sig, HUBER * sig), e)
        a = 1.0 / self.p.memory
        st["level"][idx] = level + np.where(in_first, 0.0, a * e_h)
        if seasonal.any():
            s_idx, si, sj, sf = idx[seasonal], i[seasonal], j[seasonal], frac[seasonal]
            e_s = e_h[seasonal]
            count = st["count"]
            count[s_idx, si] += 1 - sf
            count[s_idx, sj] += sf
            # Mean of a bin's samples until profile_memory periods, then about 1 / profile_memory of what a
            # period brings it: count / cycles samples a period.
            slow = np.maximum(1.0, cycles[seasonal] / self.p.profile_memory)
            first_p = in_first[seasonal]
            for b, w in ((si, 1 - sf), (sj, sf)):
                c = count[s_idx, b]
                g = np.where(c > 0, w * slow / np.where(c > 0, c, 1.0), 0.0)
                target = np.where(first_p, x[seasonal] - st["profile"][s_idx, b], (1 - a) * e_s)
                st["profile"][s_idx, b] += np.minimum(g, 1.0) * target
        # The spread: the median |residual|, first as MEAN_TO_MEDIAN times their plain mean (the second
        # period), then tracked by a step of 1 / memory of itself towards each new one: it settles where
        # half the residuals are larger, and a burst of L anomalous points moves it by exp(L / memory)
        # at most (a mean moves by L times their size over memory).
        learn_sigma = ~in_first
        if learn_sigma.any():
            r = idx[learn_sigma]
            ae = np.abs(e[learn_sigma])
            nres = st["nres"][r]
            spread = st["spread"][r]
            plain = (self._cycles(st, r, t[learn_sigma]) < 2) | (nres < MIN_RESIDUALS)
            floor = SIGMA_FLOOR * np.maximum(1.0, np.abs(st["level"][r])) / MAD_TO_SIGMA
            step = np.maximum(2.0 / (nres + 1), a)  # fast while few residuals were seen, then 1 / memory
            # Only a residual inside the band tells the spread of normal points (a wider noise widens the
            # band through them); one outside it says nothing of it and is not learnt.
            inside = ae <= self.p.k * MAD_TO_SIGMA * np.maximum(spread, floor)
            tracked = np.maximum(spread, floor) * np.exp(np.where(inside, np.sign(ae - spread), 0.0) * step)
            st["spread"][r] = np.where(plain, spread + (MEAN_TO_MEDIAN * ae - spread) / (nres + 1), tracked)
            st["nres"][r] = nres + 1

    def _settle(self, st: State, idx: np.ndarray) -> None:
        """End of the first period: level = mean of the bins' means, profile = offsets from it; a bin
        no sample reached takes the line between its neighbours (around the period)."""
        for r in idx.tolist():
            nb = int(st["bins"][r])
            prof, cnt = st["profile"][r, :nb], st["count"][r, :nb]
            seen = cnt > 0
            if not seen.all():
                pos = np.arange(nb)
                prof[:] = np.interp(pos, pos[seen], prof[seen], period=nb)
            level = float(prof.mean())
            st["level"][r] = level
            prof -= level

    def _keep(self, st: State, idx: np.ndarray, x: np.ndarray, t: np.ndarray) -> None:
        """Keep the sample of rows ``idx`` (warming up, or flat); look for a period where one is due."""
        w = self.p.warmup
        blen, since = st["blen"], st["since"]
        slot = blen[idx] % w
        st["bt"][idx, slot] = t[idx]
        st["bx"][idx, slot] = x[idx]
        blen[idx] += 1
        since[idx] += 1
        due = idx[since[idx] >= w]
        if not due.size:
            return
        # Oldest first (a flat row's kept samples are a ring).
        order = (np.arange(w)[None, :] + blen[due][:, None]) % w
        ts = np.take_along_axis(st["bt"][due], order, axis=1)
        xs = np.take_along_axis(st["bx"][due], order, axis=1)
        since[due] = 0
        found = np.array(
            [self._look(st, int(r), ts[k], xs[k]) for k, r in enumerate(due.tolist())], dtype=bool
        )
        if found.any():
            # Replay the kept samples into the new profiles, in time order, every such row at once.
            new, ts, xs = due[found], ts[found], xs[found]
            for c in range(w):
                self._learn(st, new, xs[:, c], ts[:, c])

    def _look(self, st: State, r: int, ts: np.ndarray, xs: np.ndarray) -> bool:
        """Row ``r``'s kept samples are a warm-up's worth: find its period (True) and reset its profile,
        or make it flat if it has no model yet (False)."""
        try:
            step = sampling_step(ts)
            period = self.p.period or detect_period(ts[-DETECT_MAX_POINTS:], xs[-DETECT_MAX_POINTS:])
        except PeriodError:
            if np.isnan(st["period"][r]):  # no season yet: flat, from the warm-up's median and spread
                level = float(np.median(xs))
                st["period"][r] = 0.0
                st["level"][r] = level
                st["spread"][r] = float(np.median(np.abs(xs - level)))
                st["nres"][r] = max(self.p.warmup, MIN_RESIDUALS)
            return False
        st["period"][r] = period
        st["bins"][r] = max(1, min(self.p.max_bins, round(period / step)))
        st["anchor"][r] = st["start"][r] = ts[0]
        st["level"][r] = st["spread"][r] = 0.0
        st["nres"][r] = 0
        st["profile"][r] = st["count"][r] = 0.0
        return True

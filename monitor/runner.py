"""The monitor's loop: pull new samples, score them through a SeriesDetector, export, print one line.

Time comes from a ``streamwatch.clock.Clock`` and samples from a ``Source`` (Prometheus in production,
anything with ``fetch``/``recent`` in tests and benchmarks), so the loop runs at full speed under
``FakeClock``. Prometheus failures (an answer we cannot parse is one too) are counted, retried with
``Backoff`` and logged once per change of state; the source remembers the last processed timestamp, so
the first good cycle catches up.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TextIO

import numpy as np

from monitor.detectors.base import SeriesDetector
from monitor.exporter import MonitorMetrics
from monitor.scoring import CycleStats, cycle_stats
from streamwatch.backoff import DEFAULT_MAX_S as DEFAULT_BACKOFF_MAX_S
from streamwatch.backoff import Backoff
from streamwatch.clock import Clock
from streamwatch.promapi import FormatError, PrometheusError
from streamwatch.series import Series

log = logging.getLogger(__name__)

# Builds a fresh detector from training samples; the runner calls it to retrain.
Rebuild = Callable[[Series], SeriesDetector]
# Persists the read position after a cycle that scored something; raises OSError when it cannot.
SavePosition = Callable[[], None]


class Source(Protocol):
    def fetch(self, now: float) -> list[Series]:
        """Samples that arrived since the previous call, each exactly once."""
        ...

    def recent(self, now: float, window: float) -> list[Series]:
        """Every sample of the last ``window`` seconds (for retraining)."""
        ...


@dataclass(frozen=True)
class RunnerSettings:
    interval: float = 30.0
    retrain_every: float = 0.0  # 0: never
    retrain_window: float = 3600.0
    backoff_max: float = DEFAULT_BACKOFF_MAX_S
    min_train_points: int = 20


HEADER = f"{'time':<20}  {'samples':>7}  {'anomalies':>9}  {'mae':>12}  {'mape':>10}"


def format_line(now: float, stats: CycleStats) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    mae = "-" if math.isnan(stats.mae) else f"{stats.mae:.3f}"
    mape = "-" if math.isnan(stats.mape) else f"{stats.mape * 100:.2f}%"
    return f"{stamp:<20}  {stats.samples:>7}  {stats.anomalies:>9}  {mae:>12}  {mape:>10}"


class Runner:
    """Public API: ``run_cycle()`` (one cycle; True when Prometheus answered) and ``run()`` (the loop)."""

    def __init__(
        self,
        detector: SeriesDetector,
        source: Source,
        metrics: MonitorMetrics,
        clock: Clock,
        settings: RunnerSettings | None = None,
        rebuild: Rebuild | None = None,
        out: TextIO | None = None,
        prefer: Mapping[str, str] | None = None,
        save_position: SavePosition | None = None,
    ):
        self.detector = detector
        self.source = source
        self.metrics = metrics
        self.clock = clock
        self.settings = settings or RunnerSettings()
        self.rebuild = rebuild
        self.save_position = save_position
        self.position_saved = True  # False while saving fails: logged once per change, counted each time
        self.out = out if out is not None else sys.stdout
        self.backoff = Backoff(
            initial_s=min(1.0, self.settings.interval), maximum_s=max(self.settings.backoff_max, 1.0)
        )
        self.healthy: bool | None = None  # None until the first query: the first state is logged too
        self.cycles = 0
        self.last_retrain = clock.time()
        self.header_printed = False
        # One detector watches one series: the query's series whose labels are ``prefer``'s (the training
        # file's, ``__name__`` aside), else the first seen; the others are ignored, said once.
        self.prefer = {k: v for k, v in (prefer or {}).items() if k != "__name__"}
        self.watched: tuple[tuple[str, str], ...] | None = None
        self.others_logged = False
        metrics.watch_band(self.band_now)

    def band_now(self) -> tuple[float, float, float] | None:
        """The current detector's band at the clock's time, for detectors whose band is a function of
        time (``band_at``); None for the others (streaming detectors only know their band at a sample)."""
        band_at = getattr(self.detector, "band_at", None)
        return band_at(self.clock.time()) if band_at is not None else None

    def run_cycle(self) -> bool:
        now = self.clock.time()
        try:
            batches = self.source.fetch(now)
        except (PrometheusError, FormatError) as exc:  # unreachable, an error, or garbage: retry alike
            self.metrics.record_error()
            self._set_health(False, str(exc))
            return False
        self._set_health(True, "")
        stats, last = self.score(batches)
        self.metrics.record_cycle(stats, now, last)
        if batches:
            self._save_position()
        self._print(now, stats)
        self.cycles += 1
        every = self.settings.retrain_every
        if self.rebuild is not None and every and now - self.last_retrain >= every:
            self.retrain(now)
        return True

    def score(self, batches: list[Series]) -> tuple[CycleStats, tuple[float, float, float, float] | None]:
        """Score the new samples in time order; ``last`` is the newest finite one's (actual, lower,
        expected, upper).

        Non-finite samples are counted. NaN (a target exporting NaN) has nothing to score and is left out;
        +Inf and -Inf are as far from any band as a value can be, so they count as anomalies with an
        infinite score, but no detector learns them (one infinite value would ruin every running mean).
        """
        batches = self.one_series(batches)
        if not batches:
            return cycle_stats(np.empty(0), np.empty(0), np.empty(0)), None
        ts = np.concatenate([b.timestamps for b in batches])
        xs = np.concatenate([b.values for b in batches])
        order = np.argsort(ts, kind="stable")
        ts, xs = ts[order], xs[order]
        finite = np.isfinite(xs)
        infinite = np.isinf(xs)
        if not finite.all():
            self.metrics.record_nonfinite(int(np.count_nonzero(~finite)))
        scored = finite | infinite
        score = np.full(xs.size, np.inf)
        expected, lower, upper = (np.full(xs.size, np.nan) for _ in range(3))
        if finite.any():
            scores = self.detector.update_many(xs[finite], ts[finite])
            score[finite] = scores.score
            expected[finite], lower[finite], upper[finite] = scores.expected, scores.lower, scores.upper
        stats = cycle_stats(xs[scored], expected[scored], score[scored])
        if not finite.any():
            return stats, None
        i = int(np.flatnonzero(finite)[-1])
        last = (float(xs[i]), float(lower[i]), float(expected[i]), float(upper[i]))
        return stats, last

    def one_series(self, found: list[Series]) -> list[Series]:
        """Only the watched series' batches: several series merged into one stream for one detector
        would be scored against each other's values."""
        keys = sorted({s.key for s in found})
        if not keys:
            return found
        if self.watched is None:
            named = [k for k in keys if {a: b for a, b in k if a != "__name__"} == self.prefer]
            self.watched = named[0] if named else keys[0]
        others = [k for k in keys if k != self.watched]
        if others and not self.others_logged:
            log.warning(
                "the query returns %d series; watching only %s (to watch every series with its own "
                "detector, run monitor.py --config with [[monitor.queries]])",
                len(keys),
                "{" + ",".join(f'{k}="{v}"' for k, v in self.watched if k != "__name__") + "}",
            )
            self.others_logged = True
        return [s for s in found if s.key == self.watched]

    def retrain(self, now: float) -> None:
        """Refit on recent Prometheus data, leaving out what the current model flags as anomalous."""
        assert self.rebuild is not None
        self.last_retrain = now
        try:
            found = self.source.recent(now, self.settings.retrain_window)
        except (PrometheusError, FormatError) as exc:
            log.warning("retraining postponed: %s", exc)
            return
        found = self.one_series(found)
        if len(found) != 1:
            log.warning("retraining skipped: the watched series is not in the window")
            return
        s = found[0]
        # Score without learning: the new model must not learn trouble as normal, and a retrain that is
        # skipped or fails must leave the current detector as it was (it has learnt these samples once).
        flagged = np.asarray(self.detector.score_many(s.values, s.timestamps).anomalous) if len(s) else None
        # Non-finite values cannot be learnt either (an infinity scores as an anomaly, NaN does not).
        keep = (~flagged & np.isfinite(s.values)) if flagged is not None else np.zeros(0, dtype=bool)
        clean = Series(s.labels, s.timestamps[keep], s.values[keep])
        if len(clean) < self.settings.min_train_points:
            log.warning("retraining skipped: %d clean samples in the window", len(clean))
            return
        try:
            detector = self.rebuild(clean)
        except ValueError as exc:
            log.warning("retraining failed, keeping the current model: %s", exc)
            return
        self.detector = detector
        log.info("retrained on %d samples (%d flagged left out)", len(clean), int(np.sum(~keep)))
        fit_s = getattr(detector, "fit_seconds", None)
        if fit_s is not None:
            self.metrics.record_fit(fit_s)

    def run(self) -> None:
        """Cycle every ``interval`` until the clock reports a stop; back off while Prometheus fails."""
        while True:
            began = self.clock.time()
            ok = self.run_cycle()
            if ok:
                self.backoff.reset()
                delay = self.settings.interval - (self.clock.time() - began)
            else:
                delay = self.backoff.next_delay()
            if self.clock.wait(max(0.0, delay)):
                return

    def _save_position(self) -> None:
        if self.save_position is None:
            return
        try:
            self.save_position()
        except OSError as exc:  # a full disk: keep scoring; a restart then re-reads from the last saved one
            self.metrics.record_save_error("position")
            if self.position_saved:
                log.error("cannot save the read position (%s); running on from memory", exc.strerror or exc)
            self.position_saved = False
            return
        if not self.position_saved:
            log.info("read position saved again")
        self.position_saved = True

    def _set_health(self, ok: bool, detail: str) -> None:
        if ok == self.healthy:
            return
        if ok:
            log.info("Prometheus answers%s", "" if self.healthy is None else " again; catching up")
        else:
            log.warning("Prometheus query failing: %s (retrying with backoff)", detail)
        self.healthy = ok

    def _print(self, now: float, stats: CycleStats) -> None:
        if not self.header_printed:
            print(HEADER, file=self.out, flush=True)
            self.header_printed = True
        print(format_line(now, stats), file=self.out, flush=True)

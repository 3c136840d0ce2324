"""The many-series monitor's shell: read each query from Prometheus, train new series, score, export.

``FleetRunner.run_cycle`` does, for each ``[[monitor.queries]]`` query: read the points since the
oldest point still awaited (``QueryReader``), let its ``QueryFleet`` admit and score them, train the
series that are new from ``fit_window`` of Prometheus history (``query_range`` at the query's step):
streaming detectors inline, Prophet in the ``FitPool``; drop stale series; then render the per-series
exposition. Time comes from a ``Clock``, so tests drive cycles with ``FakeClock``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from monitor.config import MAX_RANGE_POINTS, MonitorConfig, QueryConfig
from monitor.detectors import registry
from monitor.detectors.base import SeriesDetector
from monitor.fitpool import FitPool
from monitor.fleet import Accept, LabelKey, QueryFleet
from monitor.fleetexport import FleetMetrics, render_series
from monitor.prophet_profile import Profile, ProfileBandDetector
from streamwatch.backoff import Backoff
from streamwatch.clock import Clock
from streamwatch.promapi import FormatError, PrometheusClient, PrometheusError
from streamwatch.series import Series

log = logging.getLogger(__name__)

# `name`, `name{...}` or `{...}`: read as raw samples; anything else is evaluated with query_range.
SELECTOR = re.compile(r"^\s*(?:[a-zA-Z_:][a-zA-Z0-9_:]*\s*)?(?:\{[^{}\[\]()]*\})?\s*$")
# Prometheus may make a scrape queryable a moment after its timestamp: one second of overlap (repeated
# samples are dropped by timestamp).
OVERLAP_S = 1.0


def is_selector(expr: str) -> bool:
    return bool(expr.strip()) and SELECTOR.match(expr) is not None


class QueryReader:
    """New points of one query: raw samples for a plain selector, ``query_range`` at ``step`` otherwise.

    ``query_range`` evaluates on a grid of multiples of ``step``, so consecutive reads hit the same
    times and the fleet's per-series high-water marks score each point once.
    """

    def __init__(self, client: PrometheusClient, query: QueryConfig, max_window: float):
        self.client = client
        self.query = query
        self.max_window = max_window
        self.raw = is_selector(query.expr)

    def read(self, now: float, since: float) -> list[Series]:
        since = max(since, now - self.max_window)
        if self.raw:
            window = max(now - since + OVERLAP_S, 1.0)
            return self.client.query(f"{self.query.expr}[{math.ceil(window * 1000)}ms]", at=now)
        step = self.query.step
        last = math.floor(now / step) * step
        start = min(math.floor(since / step) * step + step, last)
        start = max(start, last - (MAX_RANGE_POINTS - 1) * step)  # what Prometheus answers at most
        return self.client.query_range(self.query.expr, start, last, step)

    def history(self, now: float) -> list[Series]:
        """``fit_window`` of history on the step grid, for training new series."""
        step = self.query.step
        last = math.floor(now / step) * step
        return self.client.query_range(self.query.expr, last - self.query.fit_window + step, last, step)


@dataclass
class Watch:
    query: QueryConfig
    fleet: QueryFleet
    reader: QueryReader
    healthy: bool | None = None  # None until the first read: the first state is logged too
    last_ok: float = -math.inf  # cycle time of the last successful read


class FleetRunner:
    """Public API: ``run_cycle()`` (True when every query was read) and ``run()`` (the loop)."""

    def __init__(
        self,
        cfg: MonitorConfig,
        client: PrometheusClient,
        clock: Clock,
        metrics: FleetMetrics | None = None,
        pool: FitPool | None = None,
        accept: Accept | None = None,
    ):
        self.cfg = cfg
        self.clock = clock
        self.metrics = metrics or FleetMetrics([q.name for q in cfg.queries])
        self.pool = pool or FitPool(cfg.workers)
        self.watches = [
            Watch(q, QueryFleet(q, accept), QueryReader(client, q, cfg.max_catchup)) for q in cfg.queries
        ]
        self.by_name = {w.query.name: w for w in self.watches}
        self.submitted: set[tuple[str, LabelKey]] = set()
        self.backoff = Backoff(initial_s=min(1.0, cfg.interval), maximum_s=max(cfg.backoff_max, 1.0))
        self.cycles = 0
        self.last_duration = 0.0

    def run_cycle(self) -> bool:
        began = time.perf_counter()
        now = self.clock.time()
        self._collect_fits()
        all_ok = True
        scored = anomalies = 0
        for w in self.watches:
            since = w.fleet.read_from(now - self.cfg.interval, w.last_ok)
            try:
                batches = w.reader.read(now, since)
            except (PrometheusError, FormatError) as exc:  # unreachable, an error, or garbage: retry alike
                self.metrics.record_error(w.query.name)
                self._set_health(w, False, str(exc))
                all_ok = False
                continue
            self._set_health(w, True, "")
            w.last_ok = now
            report = w.fleet.observe(batches, now)
            self._train(w, now)
            dropped = w.fleet.drop_stale(now)
            self.submitted.difference_update((w.query.name, k) for k in dropped)
            self.metrics.record_query(w.fleet, now, report, len(dropped))
            scored += report.scored
            anomalies += report.anomalies
        self._collect_fits()
        self.metrics.fits_pending.set(sum(len(w.fleet.waiting()) for w in self.watches))
        self.metrics.series_text = render_series(w.fleet for w in self.watches)
        self.last_duration = time.perf_counter() - began
        self.metrics.cycle_duration.observe(self.last_duration)
        self.cycles += 1
        log.info(
            "cycle: %d series, %d samples scored, %d anomalies, %d waiting for a model, %.3f s",
            sum(len(w.fleet.series) for w in self.watches),
            scored,
            anomalies,
            sum(len(w.fleet.waiting()) for w in self.watches),
            self.last_duration,
        )
        return all_ok

    def _train(self, w: Watch, now: float) -> None:
        """Train the series admitted and not yet sent for a fit, from one history read for all of them."""
        name = w.query.name
        todo = {k for k in w.fleet.waiting() if (name, k) not in self.submitted}
        if not todo:
            return
        try:
            found = {s.key: s for s in w.reader.history(now) if s.key in todo}
        except (PrometheusError, FormatError) as exc:
            log.warning("query %s: history for %d new series not read (%s); retrying", name, len(todo), exc)
            return
        for key in todo:
            s = found.get(key)
            ts = s.timestamps if s is not None else np.empty(0)
            vs = s.values if s is not None else np.empty(0)
            finite = np.isfinite(vs)
            ts, vs = ts[finite], vs[finite]
            trained_until = float(ts[-1]) if ts.size else -math.inf
            if w.query.detector == "prophet":
                if ts.size < self.cfg.min_train_points:
                    continue  # too little history yet: tried again next cycle
                params = registry.make_params("prophet", w.query.params)
                self.pool.submit((name, key, trained_until), ts, vs, params)
                self.submitted.add((name, key))
                continue
            # A streaming detector learns the history inline: it scores from its first live point.
            w.fleet.install(key, registry.build(w.query.detector, w.query.params, ts, vs), trained_until)
            self.metrics.fits.labels(name).inc()

    def _collect_fits(self) -> None:
        for tag, result in self.pool.collect():
            name, key, trained_until = self._untag(tag)
            self.submitted.discard((name, key))
            w = self.by_name[name]
            if isinstance(result, BaseException):
                log.warning("query %s: fit failed for %s: %s", name, dict(key), result)
                w.fleet.fail(key)
                continue
            if result.no_season:
                log.info(
                    "query %s: %s has no repeating shape (%s): watching it with a flat band, no season",
                    name,
                    describe(key),
                    result.no_season,
                )
            detector: SeriesDetector = self._profile_detector(w.query, result)
            if w.fleet.install(key, detector, trained_until):
                self.metrics.fits.labels(name).inc()

    @staticmethod
    def _untag(tag: Hashable) -> tuple[str, LabelKey, float]:
        name, key, trained_until = tag  # type: ignore[misc]
        return name, key, trained_until

    @staticmethod
    def _profile_detector(q: QueryConfig, profile: Profile) -> SeriesDetector:
        return ProfileBandDetector(profile, registry.make_params("prophet", q.params))

    def run(self) -> None:
        """Cycle every ``interval`` until the clock reports a stop; back off while Prometheus fails."""
        try:
            while True:
                began = self.clock.time()
                if self.run_cycle():
                    self.backoff.reset()
                    delay = self.cfg.interval - (self.clock.time() - began)
                else:
                    delay = self.backoff.next_delay()
                if self._wait(max(0.0, delay)):
                    return
        finally:
            self.pool.close()

    def _wait(self, seconds: float) -> bool:
        """Wait for the next cycle; while fits are running, install each within a second of finishing
        (a series fitted early scores from the next cycle, not one cycle later). True: stop asked."""
        end = self.clock.time() + seconds
        while True:
            left = end - self.clock.time()
            if not self.pool.pending or left <= 0:
                return self.clock.wait(max(0.0, left))
            if self.clock.wait(min(1.0, left)):
                return True
            self._collect_fits()
            self.metrics.fits_pending.set(sum(len(w.fleet.waiting()) for w in self.watches))

    def _set_health(self, w: Watch, ok: bool, detail: str) -> None:
        if ok == w.healthy:
            return
        if ok:
            log.info("query %s: Prometheus answers%s", w.query.name, "" if w.healthy is None else " again")
        else:
            log.warning(
                "query %s: Prometheus query failing: %s (retrying with backoff)", w.query.name, detail
            )
        w.healthy = ok


def describe(key: LabelKey) -> str:
    labels = dict(key)
    name = labels.pop("__name__", "")
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"

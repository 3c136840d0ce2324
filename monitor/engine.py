"""The monitor's shell: read each query from Prometheus, train new series, score, export, save state.

``Engine.run_cycle`` does, for each query: read the points after the oldest point still awaited
(``QueryReader``); let its ``QueryWatch`` admit and score them in one columnar step; train the series
that are new: a streaming detector learns the query's history (``query_range`` over the history the
detector's warm-up needs, at least ``fit_window``) for all new series at once, a Prophet band is fitted
per series in the ``FitPool``'s worker processes, and a series seeded by a training file (the positional
form) takes that model; score what the new series have already brought in the same cycle; drop stale
series; then render the per-series exposition. Every ``retrain_every`` seconds the ready series are
trained again on ``retrain_window`` of history minus what their current model flags. Every detector's
state is saved (``monitor.snapshot``) soon after new models are installed, every ``snapshot_every``
seconds, and at exit, and restored at start.

Time comes from a ``Clock``, so tests drive cycles with ``FakeClock``. Prometheus failures (an answer
that cannot be parsed is one too) are counted per query, retried with ``Backoff`` and logged once per
change of state; each series remembers its last scored point, so the first good cycle catches up (at
most ``max_catchup`` back; older points are counted as skipped).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from monitor import snapshot
from monitor.config import DEFAULT_MODEL_DIR, MonitorConfig, QueryConfig
from monitor.detectors import registry
from monitor.detectors.base import Detector
from monitor.detectors.scores import ANOMALY_THRESHOLD
from monitor.export import MonitorMetrics, render_band, render_series
from monitor.fitpool import FitPool
from monitor.prophet_profile import Profile
from monitor.query import Accept, CycleReport, QueryWatch, describe, layout
from monitor.reader import QueryReader
from streamwatch.backoff import Backoff
from streamwatch.clock import Clock
from streamwatch.errors import ConfigError
from streamwatch.promapi import Columns, FormatError, PrometheusError, ResultTypeError
from streamwatch.series import SeriesKey

log = logging.getLogger("monitor")

HEADER = f"{'time':<20}  {'samples':>7}  {'anomalies':>9}  {'mae':>12}  {'mape':>10}"


def format_line(now: float, report: CycleReport) -> str:
    """The per-cycle line the positional form prints (the original design's output)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    mae = "-" if math.isnan(report.mae) else f"{report.mae:.3f}"
    mape = "-" if math.isnan(report.mape) else f"{report.mape * 100:.2f}%"
    return f"{stamp:<20}  {report.scored:>7}  {report.anomalies:>9}  {mae:>12}  {mape:>10}"


@dataclass
class Seed:
    """A model trained apart (the positional form's training file) for a query's first series: a
    one-row detector, and the newest point it learnt."""

    detector: Detector
    trained_until: float


@dataclass
class Watch:
    query: QueryConfig
    core: QueryWatch
    reader: QueryReader
    seed: Seed | None = None
    healthy: bool | None = None  # None until the first read: the first state is logged too
    last_ok: float = -math.inf  # cycle time of the last successful read
    submitted: set[SeriesKey] = field(default_factory=set)  # series whose fit is in the pool


def empty_detector(q: QueryConfig) -> Detector:
    """The query's detector with no rows: what its series' rows are kept in."""
    return registry.container(q.detector, q.params)


def matrix(core: QueryWatch, rows: np.ndarray, read: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``read``'s points of the series in ``rows`` as ``(len(rows), T)`` matrices (NaN: no point), in the
    order of ``rows``, and each row's newest finite timestamp (-inf when it has none)."""
    where = {int(r): i for i, r in enumerate(rows.tolist())}
    index = core.table.index
    pos = np.array([where.get(index.get(k, -1), -1) for k in read.keys], dtype=np.intp)
    srow = np.repeat(pos, read.counts)
    keep = srow >= 0
    r, ts, xs = srow[keep], read.ts[keep], read.values[keep]
    x, t = layout(r, ts, xs, rows.size)
    last = np.full(rows.size, -math.inf)
    fin = np.isfinite(xs)
    np.maximum.at(last, r[fin], ts[fin])
    return x, t, last


class Engine:
    """Public API: ``probe()`` and ``restore()`` at start, ``run_cycle()`` (True when every query was
    read), ``run()`` (the loop), ``snapshot()``; ``settle()`` installs every pending fit at once (the
    backtest, which also passes ``offline=True``: no snapshot, no exposition)."""

    def __init__(
        self,
        cfg: MonitorConfig,
        client: Any,
        clock: Clock,
        metrics: MonitorMetrics | None = None,
        pool: FitPool | None = None,
        accept: Accept | None = None,
        seeds: Mapping[str, Seed] | None = None,
        prefer: Mapping[str, str] | None = None,
        out: TextIO | None = None,
        shard: tuple[int, int] | None = None,
        snapshot_extra: Mapping[str, Any] | None = None,
        offline: bool = False,
    ):
        self.cfg = cfg
        # Replaying recorded history (the backtest): nothing is saved and no exposition is rendered.
        self.offline = offline
        self.clock = clock
        self.metrics = metrics or MonitorMetrics([q.name for q in cfg.queries])
        self.pool = pool or FitPool(cfg.workers)
        self.shard = shard
        self.snapshot_extra = dict(snapshot_extra or {})
        self.out = out
        self.header_printed = False
        self.watches = [
            Watch(
                q,
                QueryWatch(q, empty_detector(q), accept, prefer),
                QueryReader(client, q, cfg.max_catchup),
                seed=(seeds or {}).get(q.name),
            )
            for q in cfg.queries
        ]
        self.by_name = {w.query.name: w for w in self.watches}
        self.backoff = Backoff(initial_s=min(1.0, cfg.interval), maximum_s=max(cfg.backoff_max, 1.0))
        self.cycles = 0
        self.last_duration = 0.0
        self.last_scoring = 0.0  # of it, in QueryWatch.observe: admission, the columnar step, the figures
        self.last_retrain = clock.time()
        self.last_snapshot = -math.inf
        self.installed_since_snapshot = False
        # Held while a cycle changes the detectors, and by a scrape that evaluates bands (render_band).
        self.lock = threading.Lock()
        self.metrics.band_text = self._band_text

    # --- start ------------------------------------------------------------------------------------

    def probe(self) -> None:
        """Ask Prometheus once per query whether it accepts the expression: one it refuses, or one whose
        result is not series, is a ``ConfigError`` (exit 2) where it would otherwise look like an outage
        forever. Prometheus down at start is an outage: the loop retries it (and logs it once)."""
        now = self.clock.time()
        for w in self.watches:
            try:
                w.reader.probe(now)
            except PrometheusError as exc:
                if exc.bad_query:
                    raise ConfigError(
                        f"query {w.query.name}: Prometheus refuses {w.query.expr!r}: {exc}"
                    ) from None
                return  # unreachable: the loop will say so, once
            except ResultTypeError as exc:
                raise ConfigError(f"query {w.query.name}: {w.query.expr!r}: {exc}") from None
            except FormatError:
                pass  # garbage from something else on that port: counted and retried by the loop

    def restore(self) -> None:
        """Take every query's series back from its snapshot (``monitor.snapshot``)."""
        now = self.clock.time()
        for w in self.watches:
            saved = snapshot.load(self.snapshot_path(w), w.query, w.core.detector, self.snapshot_extra)
            if saved is None:
                continue
            restored = w.core.restore(saved.labels, saved.detector, saved.columns, now)
            self.metrics.restored.labels(w.query.name).inc(restored)
            self.metrics.series.labels(w.query.name).set(len(w.core.table))
            if saved.seed is not None:
                w.seed = Seed(saved.seed, saved.seed_until)
            if saved.labels:
                log.info(
                    "query %s: %d of %d saved series restored", w.query.name, restored, len(saved.labels)
                )
        self.last_snapshot = now

    # --- the cycle --------------------------------------------------------------------------------

    def run_cycle(self) -> bool:
        began = time.perf_counter()
        now = self.clock.time()
        total = CycleReport()
        self.last_scoring = 0.0
        all_ok = True
        with self.lock:
            self._collect_fits()
            for w in self.watches:
                report = self._cycle(w, now)
                if report is None:
                    all_ok = False
                    continue
                total.add(report)
            if self.cfg.retrain_every and now - self.last_retrain >= self.cfg.retrain_every:
                self._retrain(now)
            self._collect_fits()
            self.metrics.fits_pending.set(sum(len(w.submitted) for w in self.watches))
            if not self.offline:
                self.metrics.series_text = render_series(w.core for w in self.watches)
        due = now - self.last_snapshot >= self.cfg.snapshot_every
        soon = self.installed_since_snapshot and now - self.last_snapshot >= self.cfg.interval
        # Soon after new models: a crash then does not retrain on what runs now.
        if (due or soon) and not self.offline:
            self.snapshot()
        self.last_duration = time.perf_counter() - began
        self.metrics.cycle_duration.observe(self.last_duration)
        self.cycles += 1
        self._report(now, total)
        return all_ok

    def _cycle(self, w: Watch, now: float) -> CycleReport | None:
        since = w.core.read_from(now - self.cfg.interval, w.last_ok)
        start = w.reader.start(now, since)
        try:
            read = w.reader.read(now, since)
        except (PrometheusError, FormatError) as exc:  # unreachable, an error, or garbage: retry alike
            self.metrics.record_error(w.query.name)
            self._set_health(w, False, str(exc))
            return None
        self._set_health(w, True, "")
        if start > since and w.core.table.col["ready"].any():
            self._count_skipped(w, since, start, now)
        w.last_ok = now
        w.core.begin_cycle()
        began = time.perf_counter()
        report = w.core.observe(read, now)
        self.last_scoring += time.perf_counter() - began
        if self._train(w, now):  # series that got their model now score what they brought already
            began = time.perf_counter()
            report.add(w.core.observe(read, now))
            self.last_scoring += time.perf_counter() - began
        dropped = w.core.drop_stale(now)
        report.dropped = dropped
        if dropped:
            w.submitted &= set(w.core.table.index)
        self.metrics.record_query(w.core, now, report)
        return report

    def _count_skipped(self, w: Watch, since: float, start: float, now: float) -> None:
        """Count the points between each series' last one and the capped read's start."""
        try:
            skipped: int | None = w.core.count_after(w.reader.gap(since, start))
        except (PrometheusError, FormatError):
            skipped = None  # the gap is still reported, without its size
        log.warning(
            "query %s: %.0f s behind: catching up the last %.0f s (max_catchup); %s older samples skipped",
            w.query.name,
            now - since,
            self.cfg.max_catchup,
            "an unknown number of" if skipped is None else skipped,
        )
        if skipped:
            self.metrics.skipped.labels(w.query.name).inc(skipped)

    # --- models -----------------------------------------------------------------------------------

    def _train(self, w: Watch, now: float) -> bool:
        """Train the series admitted and not yet trained, from one history read for all of them.
        True when some got their model now (streaming detectors and seeds install at once)."""
        core = w.core
        keys = core.table.keys
        rows = np.array([r for r in core.waiting().tolist() if keys[r] not in w.submitted], dtype=np.intp)
        if not rows.size:
            return False
        if w.seed is not None:  # the training file's model goes to the query's first series (again, if
            # that series went stale and came back: it keeps its training file)
            core.install(rows[:1], w.seed.detector, np.array([w.seed.trained_until]))
            self._installed(w, 1)
            if rows.size == 1:
                return True
            rows = rows[1:]
        q = w.query
        try:
            history = w.reader.history(now, q.history_window(core.detector.warmup))
        except (PrometheusError, FormatError) as exc:
            log.warning("query %s: history for %d new series not read (%s); retrying", q.name, rows.size, exc)
            return False
        x, t, last = matrix(core, rows, history)
        if registry.needs_fit(q.detector):
            self._submit_fits(w, rows, x, t, last)
            return False
        trained = registry.create(q.detector, q.params, rows=rows.size)
        trained.update(x, t)
        core.install(rows, trained, last)
        self._installed(w, rows.size)
        return True

    def _submit_fits(
        self, w: Watch, rows: np.ndarray, x: np.ndarray, t: np.ndarray, last: np.ndarray
    ) -> None:
        params = registry.make_params(w.query.detector, w.query.params)
        # A refit keeps the period the series' first fit found: an hour of live data must not move it to
        # another season (a series without one is tried again, as its shape may have come).
        periods = w.core.detector.state.get("period")
        for i, r in enumerate(rows.tolist()):
            ok = np.isfinite(x[i])
            if np.count_nonzero(ok) < self.cfg.min_train_points:
                continue  # too little history yet: tried again next cycle
            key = w.core.table.keys[r]
            assert key is not None
            p = params
            ready = bool(w.core.table.col["ready"][r])
            if periods is not None and not params.period and ready and periods[r] > 0:
                p = dataclasses.replace(params, period=float(periods[r]))
            self.pool.submit((w.query.name, key, float(last[i])), t[i][ok], x[i][ok], p)
            w.submitted.add(key)

    def _collect_fits(self) -> None:
        for tag, result in self.pool.collect():
            name, key, trained_until = tag  # type: ignore[misc]
            w = self.by_name[name]
            w.submitted.discard(key)
            row = w.core.table.index.get(key)
            if row is None:
                continue  # dropped meanwhile
            if isinstance(result, BaseException):
                log.warning("query %s: fit failed for %s: %s", name, describe(dict(key)), result)
                w.core.fail(np.array([row]))
                continue
            assert isinstance(result, Profile)
            if result.no_season:
                log.info(
                    "query %s: %s has no repeating shape (%s): watching it with a flat band, no season",
                    name,
                    describe(dict(key)),
                    result.no_season,
                )
            trained = registry.from_profile(w.query.detector, w.query.params, result)
            w.core.install(np.array([row]), trained, np.array([trained_until]))
            self.metrics.fit_duration.labels(name).set(result.fit_seconds)
            self._installed(w, 1)

    def settle(self) -> None:
        """Wait for every fit in the pool and install it, as if each had finished before the next cycle
        (what the live loop does within a second of a fit ending; the backtest replays cycles faster
        than fits run)."""
        self.pool.wait()
        with self.lock:
            self._collect_fits()
            self.metrics.fits_pending.set(sum(len(w.submitted) for w in self.watches))

    def _installed(self, w: Watch, n: int) -> None:
        self.metrics.fits.labels(w.query.name).inc(n)
        self.installed_since_snapshot = True

    def _retrain(self, now: float) -> None:
        """Train every ready series again on ``retrain_window`` of recent history, leaving out what its
        current model flags (so a long incident is not learnt as normal) and non-finite points."""
        self.last_retrain = now
        for w in self.watches:
            core = w.core
            rows = np.flatnonzero(core.table.used & core.table.col["ready"])
            if not rows.size:
                continue
            try:
                history = w.reader.history(now, self.cfg.retrain_window)
            except (PrometheusError, FormatError) as exc:
                log.warning("query %s: retraining postponed: %s", w.query.name, exc)
                continue
            x, t, _ = matrix(core, rows, history)
            flagged = core.detector.take(rows).score(x, t).score > ANOMALY_THRESHOLD
            clean = np.where(flagged, np.nan, x)
            learnt = int(np.count_nonzero(np.isfinite(clean)))
            log.info(
                "query %s: retraining %d series on %d points (%d flagged left out)",
                w.query.name,
                rows.size,
                learnt,
                int(np.count_nonzero(flagged)),
            )
            until = core.table.col["trained_until"][rows]
            if registry.needs_fit(w.query.detector):
                self._submit_fits(w, rows, clean, t, until)
                continue
            trained = registry.create(w.query.detector, w.query.params, rows=rows.size)
            trained.update(clean, t)
            core.install(rows, trained, until)

    # --- the loop ---------------------------------------------------------------------------------

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
            with self.lock:
                self._collect_fits()
                self.metrics.fits_pending.set(sum(len(w.submitted) for w in self.watches))

    # --- state on disk ----------------------------------------------------------------------------

    def snapshot_path(self, w: Watch) -> Path:
        return snapshot.snapshot_path(self.cfg.model_dir or DEFAULT_MODEL_DIR, w.query.name, self.shard)

    def snapshot(self) -> None:
        """Write every query's state (a failed write is one line and a counter: the monitor runs on)."""
        self.last_snapshot = self.clock.time()
        self.installed_since_snapshot = False
        with self.lock:
            for w in self.watches:
                path = self.snapshot_path(w)
                seed = w.seed.detector if w.seed is not None else None
                until = w.seed.trained_until if w.seed is not None else -math.inf
                try:
                    n = snapshot.save(path, w.core, self.snapshot_extra, seed, until)
                except ValueError as exc:  # a detector kept as objects (PerSeries) has no arrays
                    log.debug("query %s: no snapshot: %s", w.query.name, exc)
                    continue
                except OSError as exc:  # a full or read-only volume: keep scoring, say so
                    self.metrics.save_errors.labels(w.query.name, "snapshot").inc()
                    log.warning(
                        "query %s: snapshot not written to %s: %s", w.query.name, path, exc.strerror or exc
                    )
                    continue
                log.debug("query %s: %d series saved to %s", w.query.name, n, path)

    # --- output -----------------------------------------------------------------------------------

    def _band_text(self) -> bytes:
        with self.lock:
            return render_band((w.core for w in self.watches), self.clock.time())

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

    def _report(self, now: float, total: CycleReport) -> None:
        waiting = sum(len(w.submitted) for w in self.watches)
        log.info(
            "cycle: %d series, %d samples scored, %d anomalies, %d waiting for a model, %.3f s "
            "(scoring %.3f s)",
            sum(len(w.core.table) for w in self.watches),
            total.scored,
            total.anomalies,
            waiting,
            self.last_duration,
            self.last_scoring,
        )
        if self.out is None:
            return
        if not self.header_printed:
            print(HEADER, file=self.out, flush=True)
            self.header_printed = True
        print(format_line(now, total), file=self.out, flush=True)

"""Prometheus' answers, recorded once and replayed: what the monitor would have read at any past time.

The backtest reads each query's history once (``record``): the step grid with ``query_range`` (paged
within the 11,000 points per series Prometheus answers), and for a plain selector, which the monitor
reads as raw samples, the raw samples too (instant queries of ``expr[window]`` in pages). It then runs
the monitor's own ``Engine`` with a ``FakeClock`` and a ``ReplayClient`` over that recording: every read
the engine makes (a raw ``expr[window]`` at a time, a ``query_range`` on the step grid, the history a
new series is trained on, a retrain's history) is answered from the recording with exactly the points
Prometheus returns for that request about the past. No detector, reader or engine code is copied here:
only Prometheus' side of the conversation is.

Times are compared in milliseconds, as Prometheus stores them and as ``PrometheusClient`` sends them.
A range selector ``x[w]`` at ``t`` holds the samples in ``[t - w, t]`` (Prometheus 2.x); a
``query_range`` from ``start`` to ``end`` the grid points in ``[start, end]``.

>>> from streamwatch.series import Series
>>> grid = Columns.of([Series({"a": "1"}, [10.0, 20.0, 30.0], [1.0, 2.0, 3.0])])
>>> client = ReplayClient([Recording("up", 10.0, Track(grid, 0.0, 30.0))])
>>> client.query_range_columns("up", 20.0, 30.0, 10.0).values.tolist()
[2.0, 3.0]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from monitor.config import MonitorConfig, QueryConfig
from monitor.detectors import registry
from monitor.reader import OVERLAP_S, QueryReader, concat
from streamwatch.promapi import Columns, PrometheusClient

# Raw samples are read in pages of this many seconds: an instant query of ``expr[600s]`` keeps a fleet of
# thousands of series scraped every second within Prometheus' default query.max-samples (50 million).
RAW_PAGE_S = 600.0
_RAW = re.compile(r"^(?P<expr>.*)\[(?P<ms>\d+)ms\]$", re.DOTALL)


class ReplayError(RuntimeError):
    """The replay asked for something that was not recorded (a bug in what ``record`` reads)."""


def _ms(t: float) -> int:
    # As PrometheusClient sends a time (``f"{t:.3f}"``) and Prometheus reads it: whole milliseconds.
    return round(float(f"{t:.3f}") * 1000)


def select(cols: Columns, keep: np.ndarray) -> Columns:
    """The points of ``cols`` where ``keep`` is True; a series left with none is left out, as Prometheus
    leaves out a series with no point in a range."""
    sid = np.repeat(np.arange(len(cols)), cols.counts)
    counts = np.bincount(sid[keep], minlength=len(cols)).astype(np.int64)
    present = np.flatnonzero(counts).tolist()
    labels, keys = [cols.labels[i] for i in present], [cols.keys[i] for i in present]
    return Columns(labels, counts[present], cols.ts[keep], cols.values[keep], keys)


class Track:
    """One recorded result (``Columns``) answering time windows of it, for every series at once.

    ``first`` and ``last`` bound what was asked of Prometheus; a window reaching outside is a
    ``ReplayError``, never a quietly shorter answer.
    """

    def __init__(self, cols: Columns, first: float, last: float):
        self.cols = cols
        self.first_ms, self.last_ms = _ms(first), _ms(last)
        ms = np.round(cols.ts * 1000.0).astype(np.int64)
        self.t0 = int(ms.min()) if ms.size else 0
        # Each series' times live in their own band of keys, so one sorted array answers all of them.
        self.span = (int(ms.max()) - self.t0 + 2) if ms.size else 2
        self.sid = np.arange(len(cols), dtype=np.int64)
        self.keys = np.repeat(self.sid, cols.counts) * self.span + (ms - self.t0)
        self.starts = cols.starts

    @property
    def points(self) -> int:
        return int(self.cols.ts.size)

    def between(self, lo: float, hi: float) -> Columns:
        """The points with ``lo <= t <= hi`` (milliseconds), each series in time order."""
        lo_ms, hi_ms = _ms(lo), _ms(hi)
        if lo_ms < self.first_ms or hi_ms > self.last_ms:
            raise ReplayError(
                f"asked for [{lo_ms / 1000:.3f}, {hi_ms / 1000:.3f}], recorded "
                f"[{self.first_ms / 1000:.3f}, {self.last_ms / 1000:.3f}]"
            )
        base = self.sid * self.span
        a = np.searchsorted(self.keys, base + np.clip(lo_ms - self.t0, -1, self.span - 1), side="left")
        b = np.searchsorted(self.keys, base + np.clip(hi_ms - self.t0, -1, self.span - 1), side="right")
        counts = b - a
        present = np.flatnonzero(counts > 0)
        n = counts[present]
        idx = np.repeat(a[present] - np.concatenate(([0], np.cumsum(n)[:-1])), n) + np.arange(int(n.sum()))
        rows = present.tolist()  # the recorded keys go along: a read's keys are made once, when parsed
        return Columns(
            [self.cols.labels[i] for i in rows],
            n.astype(np.int64),
            self.cols.ts[idx],
            self.cols.values[idx],
            [self.cols.keys[i] for i in rows],
        )


@dataclass
class Recording:
    """One query's history: its step grid (``query_range``), and its raw samples for a selector."""

    expr: str
    step: float
    grid: Track
    raw: Track | None = None

    @property
    def series(self) -> int:
        return len(self.grid.cols) if self.raw is None else len(self.raw.cols)

    @property
    def points(self) -> int:
        return self.grid.points if self.raw is None else self.raw.points


class ReplayClient:
    """Answers the two calls ``QueryReader`` makes (``query_columns`` for ``expr[Nms]``,
    ``query_range_columns``) from recordings, as Prometheus answered them about the same times."""

    def __init__(self, recordings: Sequence[Recording]):
        self.grids = {(r.expr, r.step): r.grid for r in recordings}
        self.raws = {r.expr: r.raw for r in recordings if r.raw is not None}

    def query_columns(self, expr: str, at: float | None = None) -> Columns:
        m = _RAW.match(expr)
        track = self.raws.get(m.group("expr")) if m else None
        if m is None or track is None or at is None:
            raise ReplayError(f"not recorded: instant query {expr!r}")
        end = _ms(at)
        return track.between((end - int(m.group("ms"))) / 1000.0, end / 1000.0)

    def query_range_columns(self, expr: str, start: float, end: float, step_s: float) -> Columns:
        track = self.grids.get((expr, step_s))
        if track is None:
            raise ReplayError(f"not recorded: query_range {expr!r} at step {step_s:g}")
        return track.between(start, end)


def lookback(cfg: MonitorConfig, q: QueryConfig) -> float:
    """Seconds before the first cycle the engine may read: a new series' training history (at least its
    detector's warm-up), a retrain's window, and a catch-up's reach (``max_catchup``)."""
    warmup = registry.container(q.detector, q.params).warmup
    reach = max(q.history_window(warmup), cfg.max_catchup, cfg.interval + OVERLAP_S)
    if cfg.retrain_every:
        reach = max(reach, cfg.retrain_window)
    return reach + q.step


def record(
    client: PrometheusClient,
    cfg: MonitorConfig,
    q: QueryConfig,
    since: float,
    until: float,
    progress: Callable[[float], None] | None = None,
) -> Recording:
    """Read what the engine can ask about query ``q`` while replaying ``since`` to ``until``.

    Raises ``PrometheusError`` / ``FormatError`` as the reads do. ``progress`` gets the fraction of the
    raw pages read (a selector's raw samples are most of the reading).
    """
    reader = QueryReader(client, q, cfg.max_catchup)
    step = q.step
    first = math.floor((since - lookback(cfg, q)) / step) * step
    last = math.floor(until / step) * step
    grid = Track(reader.range(first, last), first, last)
    if not reader.raw:
        return Recording(q.expr, step, grid)
    lo = since - max(cfg.max_catchup, cfg.interval) - OVERLAP_S
    pages: list[Columns] = []
    page_end = lo
    while page_end < until:
        page_start, page_end = page_end, min(until, page_end + RAW_PAGE_S)
        page = client.query_columns(reader.expression(page_end - page_start), at=page_end)
        # A range selector includes both ends: the previous page already holds a sample at its end.
        pages.append(select(page, page.ts > page_start) if page_start > lo else page)
        if progress is not None:
            progress((page_end - lo) / (until - lo))
    return Recording(q.expr, step, grid, Track(concat(pages), lo, until))

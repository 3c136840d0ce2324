"""How the monitor reads one query from Prometheus: new points each cycle, history to train on.

A plain selector (``name``, ``name{...}``, ``{...}``) is read as raw samples with an instant query of
``expr[window]``, so every stored sample is scored once with its own timestamp. Any other expression is
evaluated with ``query_range`` at the query's ``step``, always on the grid of multiples of ``step``, so
consecutive reads hit the same times and the per-series high-water marks score each point once.
History (training, retraining, the backtest) is ``query_range`` at ``step``, paged so that no request
asks for more than the 11,000 points per series Prometheus answers.
"""

from __future__ import annotations

import math
import re

import numpy as np

from monitor.config import MAX_RANGE_POINTS, QueryConfig
from streamwatch.promapi import Columns, PrometheusClient
from streamwatch.series import SeriesKey

# `name`, `name{...}` or `{...}`: read as raw samples; anything else is evaluated with query_range.
SELECTOR = re.compile(r"^\s*(?:[a-zA-Z_:][a-zA-Z0-9_:]*\s*)?(?:\{[^{}\[\]()]*\})?\s*$")
# Prometheus may make a scrape queryable a moment after its timestamp: one second of overlap (repeated
# samples are dropped by timestamp).
OVERLAP_S = 1.0


def is_selector(expr: str) -> bool:
    return bool(expr.strip()) and SELECTOR.match(expr) is not None


def concat(parts: list[Columns]) -> Columns:
    """Pages of one query, joined per series in time order (a series may be missing from some pages)."""
    if len(parts) == 1:
        return parts[0]
    order: dict[SeriesKey, int] = {}
    labels: list[dict[str, str]] = []
    ts_runs: list[list[np.ndarray]] = []
    vs_runs: list[list[np.ndarray]] = []
    for part in parts:
        edges = part.starts.tolist()
        for i, (lab, key) in enumerate(zip(part.labels, part.keys, strict=True)):
            j = order.setdefault(key, len(labels))
            if j == len(labels):
                labels.append(lab)
                ts_runs.append([])
                vs_runs.append([])
            ts_runs[j].append(part.ts[edges[i] : edges[i + 1]])
            vs_runs[j].append(part.values[edges[i] : edges[i + 1]])
    ts = [np.concatenate(r) for r in ts_runs]
    vs = [np.concatenate(r) for r in vs_runs]
    return Columns(
        labels,
        np.array([a.size for a in ts], dtype=np.int64),
        np.concatenate(ts) if ts else np.empty(0),
        np.concatenate(vs) if vs else np.empty(0),
    )


class QueryReader:
    def __init__(self, client: PrometheusClient, query: QueryConfig, max_window: float):
        self.client = client
        self.query = query
        self.max_window = max_window
        self.raw = is_selector(query.expr)

    def expression(self, window: float) -> str:
        """The PromQL of a raw read reaching ``window`` seconds back."""
        return f"{self.query.expr}[{math.ceil(window * 1000)}ms]"

    def probe(self, now: float) -> None:
        """Ask once, as the live reads will: ``PrometheusError.bad_query`` or ``ResultTypeError`` mean the
        expression is wrong (a configuration error); any other error is an outage the loop rides out."""
        if self.raw:
            self.client.query_columns(self.expression(1.0), at=now)
        else:
            self.client.query_columns(self.query.expr, at=now)

    def start(self, now: float, since: float) -> float:
        """Where a read at ``now`` wanting everything after ``since`` actually starts (``max_catchup``)."""
        return max(since, now - self.max_window)

    def read(self, now: float, since: float) -> Columns:
        """The points after ``since`` (at most ``max_window`` back; older ones are the caller's to count)."""
        if self.raw:
            window = min(now - since + OVERLAP_S, self.max_window)
            return self.client.query_columns(self.expression(max(window, 1.0)), at=now)
        since = self.start(now, since)
        step = self.query.step
        last = math.floor(now / step) * step
        start = min(math.floor(since / step) * step + step, last)
        start = max(start, last - (MAX_RANGE_POINTS - 1) * step)  # what Prometheus answers at most
        return self.client.query_range_columns(self.query.expr, start, last, step)

    def history(self, now: float, window: float) -> Columns:
        """``window`` seconds before ``now`` on the step grid, in pages of at most ``MAX_RANGE_POINTS``."""
        step = self.query.step
        last = math.floor(now / step) * step
        first = last - math.ceil(window / step) * step + step
        return self.range(first, last)

    def range(self, first: float, last: float) -> Columns:
        """``query_range`` from ``first`` to ``last`` (step-grid times), paged."""
        step = self.query.step
        pages: list[Columns] = []
        start = first
        while start <= last:
            end = min(last, start + (MAX_RANGE_POINTS - 1) * step)
            pages.append(self.client.query_range_columns(self.query.expr, start, end, step))
            start = end + step
        return concat(pages) if pages else Columns([], np.empty(0, dtype=np.int64), np.empty(0), np.empty(0))

    def gap(self, since: float, until: float) -> Columns:
        """Points after ``since`` up to ``until`` (a catch-up's skipped part, to count it)."""
        if self.raw:
            return self.client.query_columns(self.expression(until - since), at=until)
        step = self.query.step
        return self.range(math.floor(since / step) * step + step, math.floor(until / step) * step)

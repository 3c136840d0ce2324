"""New samples from Prometheus, each exactly once.

Each cycle asks for the raw samples of ``<query>[<window>s]`` at time ``now`` (an instant query of a
range selector), where the window reaches back to the last sample already processed for each series.
That returns every stored sample with its real timestamp; ``query_range`` instead evaluates the query at
step-aligned times, which repeats a sample when the step is shorter than the scrape interval and skips
one when it is longer. Samples at or before a series' last processed timestamp are dropped, so nothing
is counted twice; after an outage the window grows to cover the gap, capped at ``max_window`` seconds.
The samples an outage longer than that costs are counted (one query for the gap) and reported once, in a
log line and through ``on_skipped``. ``last_ts`` can be restored from a previous run
(``monitor.position``), so a restart is just such a gap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import numpy as np

from streamwatch.promapi import FormatError, PrometheusClient, PrometheusError
from streamwatch.series import Series

log = logging.getLogger(__name__)

# Prometheus may make a scrape queryable a moment after its timestamp; one second of overlap costs a
# few repeated samples (dropped by timestamp) and loses none.
OVERLAP_S = 1.0


class PrometheusSource:
    def __init__(
        self,
        client: PrometheusClient,
        query: str,
        first_window: float,
        max_window: float,
        last_ts: Mapping[tuple[tuple[str, str], ...], float] | None = None,
        on_skipped: Callable[[int], None] | None = None,
    ):
        self.client = client
        self.query = query
        self.first_window = first_window
        self.max_window = max_window
        self.last_ts: dict[tuple[tuple[str, str], ...], float] = dict(last_ts or {})
        self.on_skipped = on_skipped
        self.capped = False  # True while the monitor is further behind than max_window

    def window_for(self, now: float) -> float:
        if not self.last_ts:
            return self.first_window
        wanted = now - min(self.last_ts.values()) + OVERLAP_S
        self.capped = wanted > self.max_window
        return min(wanted, self.max_window)

    def report_skipped(self, now: float, window: float) -> None:
        """Count and report the samples between each series' last one and the capped window's start."""
        at_ms = round(now * 1000)  # the fetch's own arithmetic: `time` to the ms, the window ceil'ed
        end_ms = at_ms - math.ceil(window * 1000) - 1  # the last ms the fetch does not cover
        oldest_ms = math.floor(min(self.last_ts.values()) * 1000)
        skipped: int | None = 0
        if end_ms > oldest_ms:
            try:
                found = self.client.query(f"{self.query}[{end_ms - oldest_ms}ms]", at=end_ms / 1000)
            except (PrometheusError, FormatError):
                skipped = None  # the gap is still reported, without its size
            else:
                skipped = 0
                for s in found:
                    last = self.last_ts.get(s.key)
                    if last is not None:
                        ms = np.round(s.timestamps * 1000)
                        skipped += int(np.count_nonzero((s.timestamps > last) & (ms <= end_ms)))
        behind = now - min(self.last_ts.values())
        log.warning(
            "%.0f s behind: catching up the last %.0f s (max_catchup); %s older samples skipped",
            behind,
            self.max_window,
            "an unknown number of" if skipped is None else skipped,
        )
        if skipped and self.on_skipped is not None:
            self.on_skipped(skipped)

    def expression(self, window: float) -> str:
        """The PromQL this source sends: the raw samples of the last ``window`` seconds."""
        return f"{self.query}[{math.ceil(window * 1000)}ms]"

    def probe(self, now: float) -> None:
        """Ask once for the first window, without moving the read position: a ``PrometheusError`` whose
        ``bad_query`` is set means Prometheus will never accept the query."""
        self.client.query(self.expression(self.first_window), at=now)

    def fetch(self, now: float) -> list[Series]:
        """Samples stored since the last call (first call: the last ``first_window`` seconds)."""
        window = self.window_for(now)
        found = self.client.query(self.expression(window), at=now)
        if self.capped:  # counted once the fetch has succeeded: a failed one skips nothing yet
            self.report_skipped(now, window)
        fresh: list[Series] = []
        for s in found:
            new = s.since(self.last_ts.get(s.key, -math.inf))
            if len(new):
                self.last_ts[s.key] = float(new.timestamps[-1])
                fresh.append(new)
        # A series silent for longer than the window has gone (or the monitor skipped past it): forget
        # it, so it no longer stretches every query; if it comes back, all its samples are new anyway.
        horizon = now - self.max_window
        self.last_ts = {k: t for k, t in self.last_ts.items() if t >= horizon}
        return fresh

    def recent(self, now: float, window: float) -> list[Series]:
        """Every sample of the last ``window`` seconds, for retraining (does not move the read position)."""
        return self.client.query(self.expression(window), at=now)

"""New samples from Prometheus, each exactly once.

Each cycle asks for the raw samples of ``<query>[<window>s]`` at time ``now`` (an instant query of a
range selector), where the window reaches back to the last sample already processed for each series.
That returns every stored sample with its real timestamp; ``query_range`` instead evaluates the query at
step-aligned times, which repeats a sample when the step is shorter than the scrape interval and skips
one when it is longer. Samples at or before a series' last processed timestamp are dropped, so nothing
is counted twice; after an outage the window grows to cover the gap, capped at ``max_window`` seconds.
"""

from __future__ import annotations

import logging
import math

from streamwatch.promapi import PrometheusClient
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
    ):
        self.client = client
        self.query = query
        self.first_window = first_window
        self.max_window = max_window
        self.last_ts: dict[tuple[tuple[str, str], ...], float] = {}
        self.capped = False  # True while the monitor is further behind than max_window

    def window_for(self, now: float) -> float:
        if not self.last_ts:
            return self.first_window
        wanted = now - min(self.last_ts.values()) + OVERLAP_S
        capped = wanted > self.max_window
        if capped and not self.capped:
            log.warning(
                "%.0f s behind: catching up the last %.0f s (max_catchup); older samples are skipped",
                wanted,
                self.max_window,
            )
        self.capped = capped
        return min(wanted, self.max_window)

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

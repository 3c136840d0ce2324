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
from collections.abc import Callable

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
        self.skipped_s = 0.0  # seconds of samples left behind because an outage outlasted max_window

    def window_for(self, now: float) -> float:
        if not self.last_ts:
            return self.first_window
        wanted = now - min(self.last_ts.values()) + OVERLAP_S
        if wanted > self.max_window:
            self.skipped_s += wanted - self.max_window
            log.warning(
                "catching up %.0f s of samples at most (max_catchup); %.0f s older than that are skipped",
                self.max_window,
                wanted - self.max_window,
            )
            return self.max_window
        return wanted

    def fetch(self, now: float) -> list[Series]:
        """Samples stored since the last call (first call: the last ``first_window`` seconds)."""
        window = self.window_for(now)
        found = self.client.query(f"{self.query}[{math.ceil(window * 1000)}ms]", at=now)
        fresh: list[Series] = []
        for s in found:
            new = s.since(self.last_ts.get(s.key, -math.inf))
            if len(new):
                self.last_ts[s.key] = float(new.timestamps[-1])
                fresh.append(new)
        return fresh

    def recent(self, now: float, window: float) -> list[Series]:
        """Every sample of the last ``window`` seconds, for retraining (does not move the read position)."""
        return self.client.query(f"{self.query}[{math.ceil(window * 1000)}ms]", at=now)


Fetch = Callable[[float], list[Series]]

"""New anomalies from a cumulative counter: each anomaly is counted once, whatever the poll interval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Self


class CounterDeltas:
    """Turns successive readings of ``streamwatch_monitor_anomalies_total`` per metric into increases.

    The first successful reading is a baseline (anomalies from before the detector started are history,
    not news). A metric that first appears later starts from 0, so a monitor that starts after the
    detector has all its anomalies counted. A reading lower than the last one is a counter reset (the
    monitor restarted): the new value is all new anomalies. A metric missing from a reading has no new
    anomalies, and its last value is kept so it resumes cleanly when it comes back.
    """

    def __init__(self, metrics: Iterable[str]):
        self.metrics = tuple(metrics)
        self._last: dict[str, float] = {}
        self._baselined = False
        self.nonfinite: list[str] = []  # metrics whose value in the last reading was +Inf, -Inf or NaN

    def update(self, reading: Mapping[str, float]) -> dict[str, float]:
        """New anomalies per watched metric since the previous reading (0 for missing ones)."""
        out = {m: 0.0 for m in self.metrics}
        self.nonfinite = []
        for metric in self.metrics:
            if metric not in reading:
                continue
            value = float(reading[metric])
            if not math.isfinite(value):  # +Inf or NaN is no count: ignore it, keep the last value
                self.nonfinite.append(metric)
                continue
            if value < 0:  # nonsense: ignore this sample, keep the last value
                continue
            if not self._baselined:
                self._last[metric] = value
                continue
            last = self._last.get(metric, 0.0)
            out[metric] = value - last if value >= last else value
            self._last[metric] = value
        self._baselined = True
        return out

    def to_dict(self) -> dict[str, Any]:
        """The last values as saved state: a restart counts only what arrived since they were read."""
        return {"last": dict(self._last), "baselined": self._baselined}

    @classmethod
    def from_dict(cls, doc: dict[str, Any], metrics: Iterable[str]) -> Self:
        out = cls(metrics)
        out._last = {m: float(v) for m, v in dict(doc["last"]).items() if m in out.metrics}
        out._baselined = bool(doc["baselined"])
        return out

"""New anomalies from a cumulative counter: each anomaly is counted once, whatever the poll interval."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class CounterDeltas(Generic[K]):
    """Turns successive readings of ``streamwatch_monitor_anomalies_total`` per key into increases.

    A key is whatever names one counter: a metric, or one series (its full label set). With ``keys``
    given, only those are watched and every one of them is in each answer (0 when missing); without,
    every key of each reading is, so series are found as the monitors export them.

    The first successful reading is a baseline (anomalies from before the detector started are history,
    not news). A key that first appears later starts from 0, so a monitor (or a series) that starts after
    the detector has all its anomalies counted. A reading lower than the last one is a counter reset (the
    monitor restarted): the new value is all new anomalies. A key missing from a reading has no new
    anomalies, and its last value is kept so it resumes cleanly when it comes back, until ``forget``.
    """

    def __init__(self, keys: Iterable[K] | None = None):
        self.keys: tuple[K, ...] | None = None if keys is None else tuple(keys)
        self._last: dict[K, float] = {}
        self._baselined = False
        self.nonfinite: list[K] = []  # keys whose value in the last reading was +Inf, -Inf or NaN

    def __len__(self) -> int:
        return len(self._last)

    def update(self, reading: Mapping[K, float]) -> dict[K, float]:
        """New anomalies per key since the previous reading (0 for missing watched keys)."""
        watched: Iterable[K] = reading.keys() if self.keys is None else self.keys
        out: dict[K, float] = {}
        self.nonfinite = []
        for key in watched:
            out[key] = 0.0
            if key not in reading:
                continue
            value = float(reading[key])
            if not math.isfinite(value):  # +Inf or NaN is no count: ignore it, keep the last value
                self.nonfinite.append(key)
                continue
            if value < 0:  # nonsense: ignore this sample, keep the last value
                continue
            if not self._baselined:
                self._last[key] = value
                continue
            last = self._last.get(key, 0.0)
            out[key] = value - last if value >= last else value
            self._last[key] = value
        self._baselined = True
        return out

    def forget(self, keys: Iterable[K]) -> None:
        """Drop the memory of these keys (series gone for long); one that comes back starts from 0."""
        for key in keys:
            self._last.pop(key, None)

    def to_dict(self, encode: Callable[[K], str] = str) -> dict[str, Any]:
        """The last values as saved state: a restart counts only what arrived since they were read.

        ``encode`` turns a key into the string the JSON object is keyed by (``SeriesId.to_key``).
        """
        return {"last": {encode(k): v for k, v in self._last.items()}, "baselined": self._baselined}

    @classmethod
    def from_dict(
        cls,
        doc: dict[str, Any],
        keys: Iterable[K] | None = None,
        decode: Callable[[str], K] | None = None,
        keep: Callable[[K], bool] | None = None,
    ) -> CounterDeltas[K]:
        """Resumed from ``to_dict``: only the watched ``keys`` (or those ``keep`` accepts) are kept."""
        out: CounterDeltas[K] = cls(keys)
        for raw, v in dict(doc["last"]).items():
            key = decode(raw) if decode else raw
            if (out.keys is None or key in out.keys) and (keep is None or keep(key)):
                out._last[key] = float(v)
        out._baselined = bool(doc["baselined"])
        return out

"""The live set of injected anomalies: a small thread-safe object the Flask app holds (no globals)."""

from __future__ import annotations

import threading
import uuid

from simulator.anomalies import Anomaly


class ActiveAnomalies:
    """Anomalies by id; expired ones are pruned whenever the set is read at a later time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Anomaly] = {}

    def add(
        self,
        metric: str,
        kind: str,
        magnitude: float,
        duration_s: float,
        now: float,
        series: int | None = None,
    ) -> Anomaly:
        anomaly = Anomaly(uuid.uuid4().hex[:12], metric, kind, magnitude, now, duration_s, series)
        with self._lock:
            self._by_id[anomaly.id] = anomaly
        return anomaly

    def remove(self, anomaly_id: str) -> Anomaly | None:
        with self._lock:
            return self._by_id.pop(anomaly_id, None)

    def active(self, now: float) -> list[Anomaly]:
        """Anomalies still running at ``now``, oldest first; ended ones are forgotten."""
        with self._lock:
            for key in [k for k, a in self._by_id.items() if a.end <= now]:
                del self._by_id[key]
            return sorted(self._by_id.values(), key=lambda a: a.start)  # stable: ties keep insertion order

"""Every series' detector state on disk, so a restarted monitor scores again within one cycle.

One file per query (and shard): ``<model_dir>/snapshot-<query>.pickle``, or
``snapshot-<query>-<I>of<N>.pickle`` for shard I of N, so replicas sharing a folder (the local stack)
never overwrite each other. It holds ``FORMAT_VERSION``, the query settings that shape a detector
(``expr``, ``detector``, ``params``, ``step``) and, for each series with a model, its labels, the time
of the last point it has seen, its detector object and its sample and anomaly counts. It is written
atomically (``streamwatch.atomic``): a crash leaves the previous snapshot, never half of one.

A snapshot is used only when its format version and query settings equal the running code's and
config's; otherwise (or when it is missing or damaged) the series are trained from Prometheus history
as new ones are. The detectors are pickled: the file is written and read only by the monitor itself,
in its own model folder, which no one else should be able to write.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config import QueryConfig
from monitor.detectors.base import SeriesDetector
from monitor.fleet import QueryFleet
from streamwatch.atomic import atomic_write_bytes

# Bump when a detector's attributes change shape: old snapshots are then retrained instead of loaded.
FORMAT_VERSION = 1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedSeries:
    labels: dict[str, str]
    trained_until: float  # the newest point its detector has seen
    last_seen: float  # the cycle time it last brought a new point: it goes stale from there as before
    detector: SeriesDetector
    samples: int
    anomalies: int


def snapshot_path(model_dir: Path, query: str, shard: tuple[int, int] | None = None) -> Path:
    suffix = f"-{shard[0]}of{shard[1]}" if shard is not None and shard[1] > 1 else ""
    return Path(model_dir) / f"snapshot-{query}{suffix}.pickle"


def fingerprint(q: QueryConfig) -> dict[str, Any]:
    """The settings a saved detector was made under: any change means training afresh."""
    return {"expr": q.expr, "detector": q.detector, "params": dict(q.params), "step": q.step}


def save(path: Path, fleet: QueryFleet) -> int:
    """Write every series of ``fleet`` that has a model; returns how many."""
    series = [
        SavedSeries(dict(s.labels), s.trained_until, s.last_seen, s.detector, s.samples, s.anomalies)
        for s in list(fleet.series.values())
        if s.detector is not None
    ]
    doc = {"format": FORMAT_VERSION, "query": fingerprint(fleet.query), "series": series}
    atomic_write_bytes(path, pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
    return len(series)


def load(path: Path, q: QueryConfig) -> list[SavedSeries]:
    """The saved series of query ``q``, or none when the snapshot is missing, old, damaged or for other
    settings (those series are then trained from Prometheus history)."""
    if not path.exists():
        return []
    try:
        doc = pickle.loads(path.read_bytes())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
            log.info("snapshot %s has another format version; training its series afresh", path)
            return []
        if doc.get("query") != fingerprint(q):
            log.info("snapshot %s was made for other query settings; training its series afresh", path)
            return []
        series = list(doc["series"])
        if not all(isinstance(s, SavedSeries) for s in series):
            raise TypeError("not a list of saved series")
        return series
    except Exception as exc:  # unpickling can raise anything; an unreadable snapshot only means retraining
        log.warning(
            "ignoring unreadable snapshot %s (%s); training its series afresh", path, type(exc).__name__
        )
        return []

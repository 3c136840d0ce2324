"""Every series' state on disk, so a restarted monitor scores again within one cycle, from where it was.

One file per query (and shard): ``<model_dir>/snapshot-<query>.npz``, or ``snapshot-<query>-<I>of<N>.npz``
for shard I of N, so replicas sharing a folder never overwrite each other. It is a NumPy ``.npz`` of plain
arrays read with ``allow_pickle=False``, so loading a snapshot cannot run code whoever wrote it:

- ``meta``: one JSON text: ``FORMAT_VERSION``, the settings that shape a detector (``fingerprint``: the
  query's ``expr``, ``detector``, ``params`` and ``step``, plus what the caller adds, such as the
  positional form's training file) and each saved series' labels, in row order;
- ``t.<name>``: the per-series figures a restart continues (``trained_until``: the read position;
  ``last_seen``; ``samples``; ``anomalies``);
- ``d.<name>``: the detector's state arrays (``Detector.arrays``), row for row;
- ``s.<name>``: the query's *seed* when it has one (the positional form's model of its training file,
  ``meta["seed_until"]`` its newest point), so a restart loads it instead of fitting again.

It is written atomically (``streamwatch.atomic``): a crash leaves the previous snapshot, never half of
one. A snapshot is used only when its version and fingerprint equal the running ones; a missing, old,
foreign or damaged one is one log line, and its series are trained afresh.
"""

from __future__ import annotations

import io
import json
import logging
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import QueryConfig
from monitor.detectors.base import Detector
from monitor.query import QueryWatch
from streamwatch.atomic import atomic_write_bytes

FORMAT_VERSION = 2
TABLE_COLUMNS = ("trained_until", "last_seen", "samples", "anomalies")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Saved:
    labels: list[dict[str, str]]
    detector: Detector  # one row per saved series
    columns: dict[str, np.ndarray]  # TABLE_COLUMNS, one value per saved series
    seed: Detector | None = None  # one row: the query's model made apart (a training file's)
    seed_until: float = -math.inf


def snapshot_path(model_dir: Path, query: str, shard: tuple[int, int] | None = None) -> Path:
    suffix = f"-{shard[0]}of{shard[1]}" if shard is not None and shard[1] > 1 else ""
    return Path(model_dir) / f"snapshot-{query}{suffix}.npz"


def fingerprint(q: QueryConfig, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings a saved detector was made under: any change means training afresh."""
    return {"expr": q.expr, "detector": q.detector, "params": dict(q.params), "step": q.step, **(extra or {})}


def save(
    path: Path,
    watch: QueryWatch,
    extra: Mapping[str, Any] | None = None,
    seed: Detector | None = None,
    seed_until: float = -math.inf,
) -> int:
    """Write every series of ``watch`` that has a model (and its ``seed``); returns how many series.
    Raises ``OSError`` when the file cannot be written, and ``ValueError`` for a detector that keeps no
    arrays."""
    c = watch.table.col
    rows = np.flatnonzero(watch.table.used & c["ready"])
    arrays = watch.detector.take(rows).arrays()
    meta = {
        "format": FORMAT_VERSION,
        "query": fingerprint(watch.query, extra),
        "labels": [dict(watch.table.labels[r] or {}) for r in rows.tolist()],
        "seed_until": seed_until if seed is not None and math.isfinite(seed_until) else None,
    }
    out: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta, allow_nan=False))}
    out.update({f"t.{k}": c[k][rows] for k in TABLE_COLUMNS})
    out.update({f"d.{k}": v for k, v in arrays.items()})
    if seed is not None:
        out.update({f"s.{k}": v for k, v in seed.arrays().items()})
    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(path, buf.getvalue())
    return int(rows.size)


def load(path: Path, q: QueryConfig, empty: Detector, extra: Mapping[str, Any] | None = None) -> Saved | None:
    """The saved series of query ``q`` (their detector shaped like ``empty``), or None when the snapshot
    is missing, old, damaged or for other settings."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
                log.info("snapshot %s has another format version; training its series afresh", path)
                return None
            if meta.get("query") != json.loads(json.dumps(fingerprint(q, extra))):
                log.info("snapshot %s was made for other settings; training its series afresh", path)
                return None
            labels = meta["labels"]
            if not isinstance(labels, list) or not all(
                isinstance(lab, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in lab.items())
                for lab in labels
            ):
                raise ValueError("labels are not a list of string maps")
            columns = {k: np.asarray(z[f"t.{k}"]) for k in TABLE_COLUMNS}
            state = {name[2:]: np.asarray(z[name]) for name in z.files if name.startswith("d.")}
            seed_state = {name[2:]: np.asarray(z[name]) for name in z.files if name.startswith("s.")}
        if any(v.shape != (len(labels),) for v in columns.values()):
            raise ValueError("series figures do not match the saved series")
        if not all(np.isfinite(columns[k]).all() for k in ("trained_until", "last_seen")):
            raise ValueError("non-finite read positions")
        detector = empty.copy_empty()
        detector.restore(state)
        if detector.rows != len(labels):
            raise ValueError("detector rows do not match the saved series")
        seed = None
        until = meta.get("seed_until")
        if seed_state and isinstance(until, int | float) and math.isfinite(until):
            seed = empty.copy_empty()
            seed.restore(seed_state)
            if seed.rows != 1:
                raise ValueError("a seed is one row")
        return Saved(labels, detector, columns, seed, float(until) if seed is not None else -math.inf)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, RecursionError) as exc:
        log.warning(
            "ignoring unreadable snapshot %s (%s: %s); training its series afresh",
            path,
            type(exc).__name__,
            exc,
        )
        return None

"""The monitor's read position on disk: the newest sample scored of each series, so a restart resumes
exactly where the last run stopped, neither scoring a sample twice nor skipping one.

The file sits in the model folder as ``<metric>.position.json`` and is replaced atomically after every
cycle that scored something. A file written for another query, or one that cannot be read, is ignored
(with a warning): the monitor then starts as a fresh one would, from its first window.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from streamwatch.atomic import atomic_write_text

FORMAT_VERSION = 1
log = logging.getLogger(__name__)

SeriesKey = tuple[tuple[str, str], ...]  # streamwatch.series.Series.key


def position_path(model_dir: Path, metric: str) -> Path:
    return Path(model_dir) / f"{metric}.position.json"


def save(path: Path, query: str, last_ts: Mapping[SeriesKey, float]) -> None:
    """Write the position atomically; an ``OSError`` (a full disk) is the caller's to report."""
    doc = {
        "format": FORMAT_VERSION,
        "query": query,
        "series": [{"labels": dict(key), "last": t} for key, t in sorted(last_ts.items())],
    }
    atomic_write_text(path, json.dumps(doc, allow_nan=False))


def load(path: Path, query: str) -> dict[SeriesKey, float]:
    """The stored position for ``query``, or ``{}`` when there is none that can be trusted."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: brackets nested 100k deep
        log.warning("ignoring unreadable read position %s (%s); starting afresh", path, type(exc).__name__)
        return {}
    try:
        if doc["format"] != FORMAT_VERSION:
            return {}
        if doc["query"] != query:
            log.warning(
                "read position %s is for the query %r, not %r; starting afresh", path, doc["query"], query
            )
            return {}
        out: dict[SeriesKey, float] = {}
        for item in doc["series"]:
            t = float(item["last"])
            if not math.isfinite(t):
                raise ValueError(t)
            out[tuple(sorted((str(k), str(v)) for k, v in item["labels"].items()))] = t
        return out
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("ignoring unreadable read position %s (%s); starting afresh", path, type(exc).__name__)
        return {}

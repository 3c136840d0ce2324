"""Fitted models on disk: Prophet's own JSON plus the band's parameters, keyed by data and settings.

The key is a hash of the training samples and every setting that changes the fit, so a restart with the
same file loads the model in milliseconds instead of fitting again, and any change fits afresh. Files
are written atomically: a crash leaves the old model or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from monitor.forecast import FittedModel
from streamwatch.atomic import atomic_write_text

FORMAT_VERSION = 1
log = logging.getLogger(__name__)


def model_key(ts: np.ndarray, vs: np.ndarray, settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(ts, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(vs, dtype=np.float64).tobytes())
    return h.hexdigest()[:20]


def model_path(model_dir: Path, name: str, key: str) -> Path:
    return Path(model_dir) / f"{name}-{key}.json"


def save(path: Path, fitted: FittedModel) -> None:
    from prophet.serialize import model_to_json

    doc = {
        "format": FORMAT_VERSION,
        "period": fitted.period,
        "sigma": fitted.sigma,
        "k": fitted.k,
        "step": fitted.step,
        "anchor": fitted.anchor,
        "fit_seconds": fitted.fit_seconds,
        "prophet": model_to_json(fitted.model),
    }
    atomic_write_text(path, json.dumps(doc))


def load(path: Path) -> FittedModel | None:
    """The stored model, or None when there is none or it cannot be used (then the caller fits)."""
    if not path.exists():
        return None
    from prophet.serialize import model_from_json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT_VERSION:
            return None
        model = model_from_json(doc["prophet"])
        return FittedModel(
            model=model,
            period=float(doc["period"]),
            sigma=float(doc["sigma"]),
            k=float(doc["k"]),
            step=float(doc["step"]),
            anchor=float(doc["anchor"]),
            fit_seconds=float(doc["fit_seconds"]),
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        # A damaged model file is not the user's error: fitting again repairs it.
        log.warning("ignoring unreadable model %s (%s); fitting again", path, type(exc).__name__)
        return None

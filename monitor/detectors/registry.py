"""Detector registry: every detector by name, with typed parameters; the one way to construct one.

``create("sma", {"window": 20}, rows=1)`` builds a columnar detector (``base.Detector``) of ``rows``
series from nothing; ``build(name, params, ts, values)`` builds a one-series detector from training
data, which is how the monitor gets its detector at start and on every retrain: a streaming detector is
created and learns the training data, a detector that ``needs_fit`` (a class attribute: Prophet's band,
``FITTED``) is fitted by its class's ``fit``. A model kept as one Python object per series (``PER_SERIES``)
is created behind ``base.PerSeries``. Parameters are the fields of each detector's ``Params`` dataclass
(``direction`` and ``min_deviation`` from ``options`` included); ``--param`` strings are read as the
field's type and checked by ``streamwatch.config``, so a bad name or value is a one-line ``ConfigError``.
The ensemble also takes ``member.param=value`` (``sma.window=20``), routed to that member.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monitor.detectors.adaptive import Adaptive
from monitor.detectors.base import Detector, PerSeries
from monitor.detectors.ema import EMAZScore
from monitor.detectors.ensemble import Ensemble
from monitor.detectors.iforest import IsolationForestDetector
from monitor.detectors.iqr import RollingIQR
from monitor.detectors.normalise import Normalised
from monitor.detectors.options import DetectorOptions
from monitor.detectors.prophet import ModelStore, Profile, ProfileBand, unfitted
from monitor.detectors.seasonal import SeasonalDetector
from monitor.detectors.sma import SMAZScore
from monitor.detectors.trend import TrendDetector
from streamwatch.config import from_mapping
from streamwatch.errors import ConfigError

DETECTORS: dict[str, type] = {
    "sma": SMAZScore,
    "ema": EMAZScore,
    "iqr": RollingIQR,
    "trend": TrendDetector,
    "ensemble": Ensemble,
    "adaptive": Adaptive,
    "iforest": IsolationForestDetector,
    "seasonal": SeasonalDetector,
}
# One Python object per series (not columnar): created behind base.PerSeries.
PER_SERIES: frozenset[str] = frozenset({"iforest"})
# Detectors that learn in batches from training data (``needs_fit``), never from nothing.
FITTED: dict[str, type] = {
    "prophet": ProfileBand,
}
# Every name the monitor's --detector and the evaluation accept.
NAMES: tuple[str, ...] = (*FITTED, *DETECTORS)


def detector_class(name: str) -> type:
    cls = FITTED.get(name) or DETECTORS.get(name)
    if cls is None:
        raise ConfigError(f"unknown detector {name!r} (known: {', '.join(NAMES)})")
    return cls


def needs_fit(name: str) -> bool:
    """True for a detector built from training data by its class's ``fit`` (keeps models in a model dir)."""
    return bool(getattr(detector_class(name), "needs_fit", False))


def make_params(name: str, raw: Mapping[str, Any] | None = None) -> Any:
    """Detector ``name``'s ``Params`` from ``raw`` (typed values, or strings from the command line),
    checked: the way to report a bad parameter before any data is read. Member parameters of the
    ensemble (``sma.window``) are checked by ``create``."""
    return _split(name, raw)[0]


def _split(name: str, raw: Mapping[str, Any] | None) -> tuple[Any, dict[str, dict[str, Any]]]:
    cls = detector_class(name)
    own: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in (raw or {}).items():
        if "." in key and name == "ensemble":
            member, sub = key.split(".", 1)
            nested.setdefault(member, {})[sub] = value
        else:
            own[key] = value
    return from_mapping(cls.Params, own, where=f"detector {name}", text=True), nested


def create(name: str, params: Mapping[str, Any] | None = None, rows: int = 1) -> Detector:
    """A fresh columnar detector ``name`` of ``rows`` series with ``params`` (typed, or strings from the
    command line)."""
    if needs_fit(name):
        raise ConfigError(f"detector {name} learns from training data: build it with registry.build")
    cls = DETECTORS[name]
    p, nested = _split(name, params)
    if name == "ensemble":
        unknown = sorted(set(nested) - set(p.member_names))
        if unknown:
            raise ConfigError(f"detector ensemble: {unknown[0]!r} is not a member ({p.members})")
        members = [create(m, p.member_params(nested.get(m, {})), rows) for m in p.member_names]
        return cls(p, members)
    if name in PER_SERIES:
        # A partial, not a lambda: the detector pickles (the monitor's snapshot of such a query).
        factory = functools.partial(cls, p)
        return PerSeries(factory, rows, params=p, warmup=_warmup(factory()))
    return cls(p, rows)


def _warmup(model: Any) -> int:
    """A per-series model's warm-up: its ``warmup`` property, else its parameters' ``warmup``."""
    w = getattr(model, "warmup", None)
    if not isinstance(w, int):
        w = getattr(model.p, "warmup", 0)
    return int(w)


def build(
    name: str,
    params: Mapping[str, Any] | None,
    ts: np.ndarray,
    values: np.ndarray,
    *,
    store: ModelStore | None = None,
) -> Detector:
    """A one-series detector ``name`` that has learnt the training samples: the monitor's one
    construction path.

    A streaming detector is created and learns ``values``, so its windows are full and it scores from
    the first live sample instead of sitting in warm-up. A detector that ``needs_fit`` is fitted by its
    class's ``fit`` (loading from and saving to ``store`` when given).
    """
    ts = np.asarray(ts, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if needs_fit(name):
        cls = detector_class(name)
        return cls.fit(make_params(name, params), ts, values, store=store)
    detector = create(name, params)
    if len(values):
        detector.update_many(values, ts)  # the scores of the training data are not wanted
    return detector


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["window=20", "threshold=3"]`` -> ``{"window": "20", "threshold": "3"}`` (values still strings)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param must look like name=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def from_cli(name: str, pairs: Sequence[str]) -> Detector:
    return create(name, parse_params(pairs))


def describe(name: str) -> str:
    """One line listing a detector's parameters and defaults, for --help."""
    p = detector_class(name).Params()
    return ", ".join(f"{f.name}={getattr(p, f.name)}" for f in dataclasses.fields(p))


def container(name: str, params: Mapping[str, Any] | None = None) -> Detector:
    """Detector ``name`` with no rows: what a query's series are kept in. A fitted detector's rows have
    no model until one is installed (``from_profile``) and score 0 meanwhile."""
    if not needs_fit(name):
        return create(name, params, rows=0)
    return from_profile(name, params, unfitted(), rows=0)


def from_profile(name: str, params: Mapping[str, Any] | None, profile: Profile, rows: int = 1) -> Detector:
    """A fitted detector whose ``rows`` use the fitted ``profile`` (``monitor.prophet_profile``): how a
    fit made in a worker process becomes a series' model; ``normalise = true`` wraps it."""
    p = make_params(name, params)
    band = ProfileBand.of(
        profile, DetectorOptions(direction=p.direction, min_deviation=p.min_deviation), rows
    )
    return Normalised(band) if p.normalise else band

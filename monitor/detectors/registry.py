"""Detector registry: a name -> constructor with typed parameters, for ``monitor.evaluate`` and the monitor.

``create("sma", {"window": 20})`` or ``from_cli("sma", ["window=20"])``. Parameters are the fields of
each detector's ``Params`` dataclass (``direction`` and ``min_deviation`` from ``options`` included);
``--param`` strings are converted to the field's type and checked by ``streamwatch.config``, so a bad
name or value is a one-line ``ConfigError``. The ensemble also takes ``member.param=value``
(``sma.window=20``), routed to that member.

The Prophet band is not built here: it needs a fitted model (``monitor.detectors.prophet``); the
evaluation fits it on each file's probationary prefix.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monitor.detectors.base import Detector
from monitor.detectors.ema import EMAZScore
from monitor.detectors.ensemble import Ensemble
from monitor.detectors.iqr import RollingIQR
from monitor.detectors.options import DetectorOptions
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
    "seasonal": SeasonalDetector,
}
# Names the monitor's --detector accepts; prophet is fitted by the monitor itself.
NAMES: tuple[str, ...] = ("prophet", *DETECTORS)


def create(name: str, params: Mapping[str, Any] | None = None) -> Detector:
    """Build detector ``name`` with ``params`` (already typed, or strings from the command line)."""
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r} (known: {', '.join(DETECTORS)})")
    cls = DETECTORS[name]
    own: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in (params or {}).items():
        if "." in key and name == "ensemble":
            member, sub = key.split(".", 1)
            nested.setdefault(member, {})[sub] = value
        else:
            own[key] = value
    p = from_mapping(cls.Params, _typed(cls.Params, own, name), where=f"detector {name}")
    if name == "ensemble":
        unknown = sorted(set(nested) - set(p.member_names))
        if unknown:
            raise ConfigError(f"detector ensemble: {unknown[0]!r} is not a member ({p.members})")
        return cls(p, nested)
    return cls(p)


def warm_start(name: str, pairs: Sequence[str], ts: np.ndarray, values: np.ndarray) -> Detector:
    """A streaming detector built from ``--param`` strings that has already learnt ``values``.

    The monitor starts from its training file, so its windows are full and it scores from the first
    live sample instead of sitting in warm-up.
    """
    detector = from_cli(name, pairs)
    if len(values):
        detector.update_many(np.asarray(values, dtype=np.float64), np.asarray(ts, dtype=np.float64))
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


def options_from_cli(name: str, pairs: Sequence[str]) -> DetectorOptions:
    """Only the options every detector honours (direction, min_deviation), for a detector built elsewhere
    (the monitor's Prophet band, whose other settings come from its config)."""
    raw = parse_params(pairs)
    return from_mapping(DetectorOptions, _typed(DetectorOptions, raw, name), where=f"detector {name}")


def _typed(cls: type, raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Convert command-line strings to each field's declared type; typed values pass through."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields or not isinstance(value, str):
            out[key] = value  # from_mapping reports unknown keys with the list of known ones
            continue
        tp = hints[key]
        try:
            if tp is int:
                out[key] = int(value)
            elif tp is float:
                out[key] = float(value)
            elif tp is bool:
                out[key] = {"true": True, "false": False}[value.lower()]
            else:
                out[key] = value
        except (ValueError, KeyError):
            raise ConfigError(f"detector {name}: '{key}' has the wrong type: {value!r}") from None
    return out


def describe(name: str) -> str:
    """One line listing a detector's parameters and defaults, for --help."""
    p = DETECTORS[name].Params()
    return ", ".join(f"{f.name}={getattr(p, f.name)}" for f in dataclasses.fields(p))

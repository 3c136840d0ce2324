"""The documented range of every numeric setting, written once and checked at load.

A config dataclass lists its numeric fields' ranges in a ``RANGES`` class attribute and calls
``check_ranges(self)`` from ``__post_init__``; a value outside is a ``ValueError`` naming the key, the
range and the value, which ``streamwatch.config.load`` turns into one line and exit 2. The same table
is rendered into each service's page under docs/ (``scripts/render_settings_docs.py``), and
tests/test_settings_ranges.py fails when a numeric field has no range or the docs disagree.

>>> r = Range(0.1, 86_400, "s")
>>> r.text()
'0.1 to 86,400 s'
>>> r.check("interval", 1e12)
Traceback (most recent call last):
ValueError: interval must be 0.1 to 86,400 s, got 1e+12
>>> Range(1, 100, off=0).text()
'0 (off), or 1 to 100'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """``low`` to ``high`` inclusive (``low_open``: strictly above ``low``); ``off``: a value outside the
    range that is also accepted and switches the feature off (0, say)."""

    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    off: float | None = None

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"empty range {self.low}..{self.high}")

    def contains(self, value: float) -> bool:
        if self.off is not None and value == self.off:
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def check(self, name: str, value: Any) -> None:
        """``ValueError`` unless ``value`` (a number; None is left to the field's own default) fits."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return
        if not self.contains(value):
            got = f"{value:g}" if isinstance(value, float) else str(value)
            raise ValueError(f"{name} must be {self.text()}, got {got}")

    def text(self) -> str:
        low = f"above {_num(self.low)}" if self.low_open else _num(self.low)
        unit = f" {self.unit}" if self.unit else ""
        span = f"{low} to {_num(self.high)}{unit}"
        return span if self.off is None else f"{_num(self.off)} (off), or {span}"


def _num(value: float) -> str:
    """A number as people read it: ``86,400``, ``0.1``, ``1e+12``."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:g}"


def _plain(value: float) -> str:
    """A default as it is written in a config file: ``8110``, ``0.5``, ``1e+06``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_ranges(obj: Any, ranges: Mapping[str, Range] | None = None, prefix: str = "") -> None:
    """Check every field named in ``ranges`` (default: ``type(obj).RANGES``) against its range."""
    table = ranges if ranges is not None else getattr(type(obj), "RANGES", {})
    for name, rng in table.items():
        rng.check(prefix + name, getattr(obj, name))


def numeric_fields(cls: type) -> list[str]:
    """The init fields of dataclass ``cls`` whose type is int or float (optional ones too): the ones that
    must have a range."""
    import typing

    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        args = set(typing.get_args(tp)) - {type(None)} if typing.get_args(tp) else {tp}
        if args and args <= {int, float} and typing.get_origin(tp) not in (list, dict, tuple):
            out.append(f.name)
    return out


def markdown_table(cls: type, ranges: Mapping[str, Range] | None = None) -> str:
    """The settings table a docs page shows for ``cls``: key, default and range."""
    table = ranges if ranges is not None else getattr(cls, "RANGES", {})
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    lines = ["| key | default | range |", "|---|---|---|"]
    for name, rng in table.items():
        default = defaults.get(name, dataclasses.MISSING)
        shown = "-" if default is dataclasses.MISSING else ("none" if default is None else _plain(default))
        lines.append(f"| `{name}` | {shown} | {rng.text()} |")
    return "\n".join(lines)


# Ranges several services share, so their docs read the same.
PORT = Range(1, 65_535)
# The cycle of every polling service: shorter than 0.1 s is a busy loop against Prometheus (1e-9 was
# accepted), longer than a day is a typo (1e12 was accepted, and its sleep overflowed).
INTERVAL = Range(0.1, 86_400, "s")
# A timeout shorter than a loopback round trip fails every query (1e-9 was accepted: "Prometheus down").
PROMETHEUS_TIMEOUT = Range(0.1, 300, "s")
LOG_BYTES = Range(1024, 2**40, "bytes", off=0)  # 0: never rotate
LOG_BACKUPS = Range(0, 1000)
BODY_BYTES = Range(1024, 64 * 2**20, "bytes")

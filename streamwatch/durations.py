"""Durations as people and Prometheus write them: ``30s``, ``15m``, ``1h``, ``2d`` (or plain seconds)."""

from __future__ import annotations

import math
import re

from streamwatch.errors import UserError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``; anything else is a one-line ``UserError`` naming ``what``."""
    match = _DURATION.match(str(text))
    if not match:
        raise UserError(f"{what}: {text!r} is not a duration (use e.g. 30s, 15m, 1h, 2d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{what}: {text!r} must be a positive duration")
    return seconds

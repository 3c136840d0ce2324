"""Anomalies laid over the wave: pure data and pure functions of time, no clock and no HTTP.

Kinds:
- ``spike``: multiply the value by ``magnitude`` (3.0 triples it).
- ``shift``: add ``magnitude`` in the metric's own units (negative shifts it down).
- ``drop``: the value falls to the metric's ``min`` (``magnitude`` is ignored).
- ``drift``: add ``magnitude * elapsed / duration_s``, a ramp that reaches ``magnitude`` at the end.

An anomaly is active on ``[start, start + duration_s)``. Several on one metric apply in start order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from simulator.config import MetricSpec

Kind = Literal["spike", "shift", "drop", "drift"]
KINDS: tuple[str, ...] = get_args(Kind)
# Kinds that make sense without a magnitude; the others must say how big the anomaly is.
DEFAULT_MAGNITUDE: dict[str, float] = {"drop": 0.0}


class AnomalyError(ValueError):
    """An injection request that cannot be honoured; ``field`` names the offending JSON field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Anomaly:
    id: str
    metric: str
    kind: str
    magnitude: float
    start: float
    duration_s: float
    series: int | None = None  # one series of a fleet (simulator --series N); None: every series

    @property
    def end(self) -> float:
        return self.start + self.duration_s

    def active_at(self, t: float) -> bool:
        return self.start <= t < self.end

    def to_json(self) -> dict[str, Any]:
        doc = {**asdict(self), "end": self.end}
        if self.series is None:  # the document stays as it was before fleets existed
            del doc["series"]
        return doc

    def hits(self, metric: str, series: int | None) -> bool:
        """Whether this anomaly applies to ``series`` (None: the only one) of ``metric``."""
        return self.metric == metric and (self.series is None or series is None or self.series == series)


def _number(raw: Any, field: str) -> float:
    # bool is an int in Python, but `true` is not a magnitude.
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise AnomalyError(field, f"{field} must be a finite number, got {raw!r}")
    return float(raw)


def validate(request: Any, metrics: Mapping[str, MetricSpec]) -> tuple[str, str, float, float]:
    """Check an injection request (parsed JSON); return ``(metric, kind, magnitude, duration_s)``."""
    if not isinstance(request, Mapping):
        raise AnomalyError("body", "body must be a JSON object")
    for key in ("metric", "kind", "duration_s"):
        if key not in request:
            raise AnomalyError(key, f"missing field '{key}'")
    metric, kind = request["metric"], request["kind"]
    if not isinstance(metric, str) or metric not in metrics:
        known = ", ".join(sorted(metrics))
        raise AnomalyError("metric", f"unknown metric {metric!r} (known: {known})")
    if not isinstance(kind, str) or kind not in KINDS:
        raise AnomalyError("kind", f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    duration_s = _number(request["duration_s"], "duration_s")
    if duration_s <= 0:
        raise AnomalyError("duration_s", f"duration_s must be positive, got {duration_s:g}")
    if "magnitude" in request and request["magnitude"] is not None:
        magnitude = _number(request["magnitude"], "magnitude")
    elif kind in DEFAULT_MAGNITUDE:
        magnitude = DEFAULT_MAGNITUDE[kind]
    else:
        raise AnomalyError("magnitude", f"missing field 'magnitude' (required for {kind})")
    if kind == "spike" and magnitude < 0:
        raise AnomalyError(
            "magnitude", f"a spike's magnitude is a factor and must not be negative, got {magnitude:g}"
        )
    extra = sorted(set(request) - {"metric", "kind", "magnitude", "duration_s", "series"})
    if extra:
        raise AnomalyError(extra[0], f"unknown field '{extra[0]}'")
    return metric, kind, magnitude, duration_s


def validate_series(request: Mapping[str, Any], count: int) -> int | None:
    """The optional ``series`` field of an injection: one series' index, or None (all of them)."""
    raw = request.get("series")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < count:
        raise AnomalyError("series", f"series must be an integer from 0 to {count - 1}, got {raw!r}")
    return raw


def apply(value: float, t: float, anomaly: Anomaly, spec: MetricSpec) -> float:
    """The value at ``t`` with one anomaly laid over it (unchanged when it is not active)."""
    if not anomaly.active_at(t):
        return value
    if anomaly.kind == "spike":
        return value * anomaly.magnitude
    if anomaly.kind == "shift":
        return value + anomaly.magnitude
    if anomaly.kind == "drop":
        return spec.min
    if anomaly.kind == "drift":
        return value + anomaly.magnitude * (t - anomaly.start) / anomaly.duration_s
    raise ValueError(f"unknown anomaly kind {anomaly.kind!r}")


def apply_all(
    value: float, t: float, anomalies: Iterable[Anomaly], spec: MetricSpec, series: int | None = None
) -> float:
    """Lay every anomaly of ``spec``'s metric (that hits ``series``) over ``value`` in start order.

    A metric that cannot be negative (min >= 0) is floored at 0, so a downward shift ends at zero.
    """
    for anomaly in sorted((a for a in anomalies if a.hits(spec.name, series)), key=lambda a: a.start):
        value = apply(value, t, anomaly, spec)
    return max(value, 0.0) if spec.min >= 0 else value

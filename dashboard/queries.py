"""The only PromQL the dashboard runs: named queries built from validated parameters.

The browser asks for ``name`` + ``metric`` + ``range``; anything else is a ``BadRequest`` (HTTP 400). Metric
names are checked against the configured list before they reach a label matcher, so no request can turn
into arbitrary PromQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The time ranges the page offers, as in the original design's screenshots.
RANGES: dict[str, int] = {"5m": 300, "30m": 1800, "1h": 3600}
DEFAULT_RANGE = "5m"

ACTUAL = "streamwatch_monitor_actual"
FORECAST = "streamwatch_monitor_forecast"
CYCLE_ANOMALIES = "streamwatch_monitor_cycle_anomalies"
SCORE = "streamwatch_incident_score"
THRESHOLD = "streamwatch_incident_threshold"
SEVERITY = "streamwatch_incident_severity"


class BadRequest(ValueError):
    """A request parameter the dashboard does not accept; the message names it."""


@dataclass(frozen=True)
class RangeQuery:
    expr: str
    start: float
    end: float
    step_s: float


def parse_range(raw: str | None) -> int:
    """Seconds for one of the offered ranges (``5m``, ``30m``, ``1h``); missing means the default."""
    key = DEFAULT_RANGE if raw in (None, "") else raw
    if key not in RANGES:
        raise BadRequest(f"range must be one of {', '.join(RANGES)}, got {raw!r}")
    return RANGES[key]


def check_metric(raw: str | None, metrics: Sequence[str]) -> str:
    if raw is None or raw == "":
        raise BadRequest("metric is required")
    if raw not in metrics:
        raise BadRequest(f"unknown metric {raw!r} (watched: {', '.join(metrics)})")
    return raw


def step_for(range_s: float, max_points: int) -> float:
    """Whole seconds between chart points, so a chart never holds more than ``max_points`` samples."""
    return float(max(1, math.ceil(range_s / max_points)))


def band_expr(metric: str) -> str:
    # One round trip for the actual value, all three bounds and the cycle's anomaly count: they differ by
    # name, so a regex on __name__ returns them side by side.
    return f'{{__name__=~"{ACTUAL}|{FORECAST}|{CYCLE_ANOMALIES}",metric="{metric}"}}'


def score_expr(metric: str) -> str:
    return f'{SCORE}{{metric="{metric}"}} or {THRESHOLD}'


def incidents_expr() -> str:
    return f'{{__name__=~"{SEVERITY}|{SCORE}|{THRESHOLD}"}}'


def summary_expr() -> str:
    return (
        '{__name__=~"streamwatch_monitor_(cycle_anomalies|anomalies_total|mae|mape_ratio)'
        '|streamwatch_incident_(score|threshold|severity|open)"}'
    )


def anomalies_in_range_expr(range_s: int) -> str:
    # increase() over the chosen range: "anomalies in the last 30 min", robust to monitor restarts.
    return f"increase(streamwatch_monitor_anomalies_total[{range_s}s])"


def targets_up_expr() -> str:
    return "up"


SERIES_NAMES = ("band", "score")


def series_query(name: str | None, metric: str, range_s: int, now: float, max_points: int) -> RangeQuery:
    """The range query behind ``/api/series?name=...``."""
    step = step_for(range_s, max_points)
    # Align to the step so consecutive refreshes ask for the same grid and the chart does not jitter.
    end = math.floor(now / step) * step
    start = end - range_s
    if name == "band":
        return RangeQuery(band_expr(metric), start, end, step)
    if name == "score":
        return RangeQuery(score_expr(metric), start, end, step)
    raise BadRequest(f"name must be one of {', '.join(SERIES_NAMES)}, got {name!r}")

"""The only PromQL the dashboard runs: named queries built from validated parameters.

The browser asks for ``name`` + ``metric`` + ``range`` (+ ``series``, one series' labels as a JSON
object); anything else is a ``BadRequest`` (HTTP 400). Metric names are checked against the configured
list (or, for one series picked from the top-k table, against the name pattern), label names against the
label pattern, and label values are escaped as PromQL strings, so no request can turn into arbitrary
PromQL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dashboard.config import METRIC_NAME
from streamwatch import strictjson

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the monitor sets itself: a series is picked by the others (bound is never part of one).
RESERVED_LABELS = frozenset({"__name__", "metric", "bound"})

# The time ranges the page offers, as in the original design's screenshots.
RANGES: dict[str, int] = {"5m": 300, "30m": 1800, "1h": 3600}
DEFAULT_RANGE = "5m"

ACTUAL = "streamwatch_monitor_actual"
FORECAST = "streamwatch_monitor_forecast"  # the band at the last sample scored: changes once a cycle
BAND = "streamwatch_monitor_band"  # the band at each scrape (Prophet only): what the chart draws first
ANOMALIES_TOTAL = "streamwatch_monitor_anomalies_total"
MONITOR_SCORE = "streamwatch_monitor_anomaly_score"
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


def check_series_metric(raw: str | None, metrics: Sequence[str]) -> str:
    """A metric for a picked series: a watched one, or any name a monitor query could have."""
    if raw in metrics:
        return raw
    if raw is None or not METRIC_NAME.match(raw):
        raise BadRequest(f"metric must be a metric name, got {raw!r}")
    return raw


def parse_series(raw: str | None) -> dict[str, str]:
    """One series' labels from ``series={"cpu": "1", ...}`` (``metric`` comes on its own); {} when absent."""
    if raw in (None, ""):
        return {}
    try:
        doc = strictjson.loads(raw, max_depth=2)  # 5,000 brackets were a RecursionError and a 500
    except ValueError:
        raise BadRequest("series must be a JSON object of label names to values") from None
    if not isinstance(doc, dict) or len(doc) > 30:
        raise BadRequest("series must be a JSON object of at most 30 label names to values")
    for name, value in doc.items():
        if not LABEL_NAME.match(name) or name in RESERVED_LABELS:
            raise BadRequest(f"series: {name!r} is not a label that tells series apart")
        if not isinstance(value, str):
            raise BadRequest(f"series: the value of {name!r} must be a string")
    return doc


def promql_string(value: str) -> str:
    """A PromQL double-quoted string holding exactly ``value``."""
    return json.dumps(value)  # JSON's escapes (\\, \", \n, \uXXXX) are PromQL's too


def matchers(metric: str, series: Mapping[str, str]) -> str:
    parts = [f"metric={promql_string(metric)}"]
    parts += [f"{k}={promql_string(v)}" for k, v in sorted(series.items())]
    return ",".join(parts)


def step_for(range_s: float, max_points: int) -> float:
    """Whole seconds between chart points, so a chart never holds more than ``max_points`` samples."""
    return float(max(1, math.ceil(range_s / max_points)))


def band_expr(metric: str, series: Mapping[str, str] | None = None) -> str:
    # One round trip for the monitor's last actual value, both bands and its anomaly counter (its own
    # verdict): they differ by name, so a regex on __name__ returns them side by side.
    names = f"{ACTUAL}|{BAND}|{FORECAST}|{ANOMALIES_TOTAL}"
    return f'{{__name__=~"{names}",{matchers(metric, series or {})}}}'


def source_expr(template: str, metric: str) -> str:
    """The watched series itself (what the monitor reads), e.g. ``energy_price_metric``."""
    return template.replace("{metric}", metric)


def top_series_expr(k: int) -> str:
    return f"topk({int(k)}, {MONITOR_SCORE})"


def score_expr(metric: str) -> str:
    return f'{SCORE}{{metric="{metric}"}} or {THRESHOLD}'


def summary_expr() -> str:
    return (
        '{__name__=~"streamwatch_monitor_(cycle_anomalies|anomalies_total|mae|mape_ratio|series_warming)'
        '|streamwatch_incident_(score|threshold|severity|open)"}'
    )


def anomalies_in_range_expr(range_s: int) -> str:
    # increase() over the chosen range: "anomalies in the last 30 min", robust to monitor restarts.
    return f"increase(streamwatch_monitor_anomalies_total[{range_s}s])"


def targets_up_expr() -> str:
    return "up"


SERIES_NAMES = ("band", "score")


def series_query(
    name: str | None,
    metric: str,
    range_s: int,
    now: float,
    max_points: int,
    series: Mapping[str, str] | None = None,
    min_step_s: float = 1.0,
) -> RangeQuery:
    """The range query behind ``/api/series?name=...``; its step is never finer than ``min_step_s``."""
    step = max(step_for(range_s, max_points), float(math.ceil(min_step_s)))
    # Align to the step so consecutive refreshes ask for the same grid and the chart does not jitter.
    end = math.floor(now / step) * step
    start = end - range_s
    if name == "band":
        return RangeQuery(band_expr(metric, series), start, end, step)
    if name == "score":
        return RangeQuery(score_expr(metric), start, end, step)
    raise BadRequest(f"name must be one of {', '.join(SERIES_NAMES)}, got {name!r}")

"""Turn query results into what the page draws: aligned columns, anomalies, incidents. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dashboard import queries
from streamwatch.series import Series

Column = list[float | None]

SEVERITY_LABELS = {0: "normal", 1: "Sev 1", 2: "Sev 2"}


def _grid(series: Iterable[Series]) -> np.ndarray:
    stamps = [s.timestamps for s in series]
    if not stamps:
        return np.array([], dtype=np.float64)
    return np.unique(np.concatenate(stamps))


def _column(grid: np.ndarray, s: Series | None) -> np.ndarray:
    out = np.full(grid.shape, np.nan)
    if s is not None and len(s):
        idx = np.searchsorted(grid, s.timestamps)
        out[idx] = s.values
    return out


def _json_column(values: np.ndarray) -> Column:
    # JSON has no NaN; uPlot draws null as a gap, which is what a missing sample is.
    return [None if not math.isfinite(v) else float(v) for v in values]


def _pick(series: Sequence[Series], **labels: str) -> Series | None:
    """The series with these labels; when several match (a restarted target), the longest one."""
    found = [s for s in series if all(s.labels.get(k) == v for k, v in labels.items())]
    return max(found, key=len) if found else None


def outside_band(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """True where a sample lies outside [lower, upper], the monitor's definition of an anomaly."""
    with np.errstate(invalid="ignore"):
        return (actual < lower) | (actual > upper)


def band_payload(series: Sequence[Series]) -> dict[str, Any]:
    """Columns for the actual-vs-band chart, with the anomalous samples as their own (sparse) column.

    A point is marked when it lies outside the band, or when the monitor cycle that exported it found
    anomalies: Prometheus keeps only each cycle's last sample, so a 30 s cycle whose anomalies came
    earlier would otherwise show nothing, and detectors without a band (trend) could never mark one.
    """
    grid = _grid(series)
    actual = _column(grid, _pick(series, __name__=queries.ACTUAL))
    bounds = {
        b: _column(grid, _pick(series, __name__=queries.FORECAST, bound=b))
        for b in ("lower", "expected", "upper")
    }
    cycle = _column(grid, _pick(series, __name__=queries.CYCLE_ANOMALIES))
    with np.errstate(invalid="ignore"):
        flagged = np.isfinite(actual) & (outside_band(actual, bounds["lower"], bounds["upper"]) | (cycle > 0))
    anomalies = np.where(flagged, actual, np.nan)
    return {
        "timestamps": [float(t) for t in grid],
        "actual": _json_column(actual),
        "lower": _json_column(bounds["lower"]),
        "expected": _json_column(bounds["expected"]),
        "upper": _json_column(bounds["upper"]),
        "anomalies": _json_column(anomalies),
        "anomaly_count": int(flagged.sum()),
        "samples": int(np.isfinite(actual).sum()),
    }


def score_payload(series: Sequence[Series], metric: str) -> dict[str, Any]:
    grid = _grid(series)
    score = _column(grid, _pick(series, __name__=queries.SCORE, metric=metric))
    threshold = _column(grid, _pick(series, __name__=queries.THRESHOLD))
    return {
        "timestamps": [float(t) for t in grid],
        "score": _json_column(score),
        "threshold": _json_column(threshold),
        "samples": int(np.isfinite(score).sum()),
    }


def severity_label(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "unknown"
    return SEVERITY_LABELS.get(int(value), f"severity {int(value)}")


def derive_incidents(
    timestamps: np.ndarray,
    severity: np.ndarray,
    scores: Mapping[str, np.ndarray],
    threshold: np.ndarray,
) -> list[dict[str, Any]]:
    """Incidents as the detector's severity gauge shows them over time, newest first.

    An incident is a run of samples with a non-zero severity; its severity is the worst one seen (Sev 1
    beats Sev 2). Its metrics are those whose score passed the threshold during the run. A missing sample
    (the detector was not scraped) ends a run: the page shows only what Prometheus knows. A run still
    going at the last sample is ``ongoing`` with no end.
    """
    out: list[dict[str, Any]] = []
    n = len(timestamps)
    i = 0
    while i < n:
        if not (math.isfinite(severity[i]) and severity[i] > 0):
            i += 1
            continue
        j = i
        while j + 1 < n and math.isfinite(severity[j + 1]) and severity[j + 1] > 0:
            j += 1
        run = severity[i : j + 1]
        worst = int(run.min())  # 1 is worse than 2
        ongoing = j == n - 1
        metrics = []
        for name, col in sorted(scores.items()):
            with np.errstate(invalid="ignore"):
                if np.any(col[i : j + 1] > threshold[i : j + 1]):
                    metrics.append(name)
        end = None if ongoing else float(timestamps[j + 1])
        out.append(
            {
                "start": float(timestamps[i]),
                "end": end,
                "ongoing": ongoing,
                "duration_s": float((timestamps[j] if ongoing else timestamps[j + 1]) - timestamps[i]),
                "severity": worst,
                "severity_label": severity_label(worst),
                "metrics": metrics,
            }
        )
        i = j + 1
    out.reverse()
    return out


def incidents_payload(series: Sequence[Series], metrics: Sequence[str]) -> list[dict[str, Any]]:
    grid = _grid(series)
    severity = _column(grid, _pick(series, __name__=queries.SEVERITY))
    threshold = _column(grid, _pick(series, __name__=queries.THRESHOLD))
    scores = {m: _column(grid, _pick(series, __name__=queries.SCORE, metric=m)) for m in metrics}
    return derive_incidents(grid, severity, scores, threshold)


def _latest(series: Sequence[Series], **labels: str) -> float | None:
    s = _pick(series, **labels)
    if s is None or not len(s):
        return None
    v = float(s.values[-1])
    return v if math.isfinite(v) else None


def summary_payload(
    instant: Sequence[Series], in_range: Sequence[Series], up: Sequence[Series], metrics: Sequence[str]
) -> dict[str, Any]:
    """The numbers beside the charts and the severity banner, from three instant queries."""
    per_metric = {}
    for m in metrics:
        per_metric[m] = {
            "anomalies_in_range": _latest(in_range, metric=m),
            "anomalies_total": _latest(instant, __name__="streamwatch_monitor_anomalies_total", metric=m),
            "cycle_anomalies": _latest(instant, __name__="streamwatch_monitor_cycle_anomalies", metric=m),
            "mae": _latest(instant, __name__="streamwatch_monitor_mae", metric=m),
            "mape_ratio": _latest(instant, __name__="streamwatch_monitor_mape_ratio", metric=m),
            "score": _latest(instant, __name__=queries.SCORE, metric=m),
        }
    severity = _latest(instant, __name__=queries.SEVERITY)
    return {
        "metrics": per_metric,
        "threshold": _latest(instant, __name__=queries.THRESHOLD),
        "severity": None if severity is None else int(severity),
        "severity_label": severity_label(severity),
        "open_incidents": _latest(instant, __name__="streamwatch_incident_open"),
        "targets": {
            "up": sum(1 for s in up if len(s) and s.values[-1] == 1),
            "total": len(up),
            "down": sorted(s.labels.get("job", "?") for s in up if len(s) and s.values[-1] != 1),
        },
    }

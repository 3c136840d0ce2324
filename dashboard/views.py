"""Turn query results into what the page draws: aligned columns, anomalies, incidents. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dashboard import queries
from streamwatch.scores import ANOMALY_THRESHOLD
from streamwatch.series import Series, label_text

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


def _bound(grid: np.ndarray, at_scrape: Series | None, at_sample: Series | None) -> np.ndarray:
    scraped = _column(grid, at_scrape)
    return np.where(np.isfinite(scraped), scraped, _column(grid, at_sample))


def monitor_verdict(counter: np.ndarray) -> np.ndarray:
    """Anomalies the monitor counted between one grid point and the one before (its own verdict).

    Read from ``streamwatch_monitor_anomalies_total``: a drop is a restarted monitor (the new value is
    all new), a gap carries the last value over so nothing is counted twice.
    """
    out = np.zeros(counter.shape)
    last = math.nan
    for i, v in enumerate(counter):
        if not math.isfinite(v):
            continue
        if math.isfinite(last):
            out[i] = v - last if v >= last else v
        last = v
    return out


def _series_key(s: Series) -> tuple[tuple[str, str], ...]:
    """What tells one watched series from another: its labels without the name and the bound."""
    return tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("__name__", "bound")))


def band_payload(series: Sequence[Series], raw: Sequence[Series] = ()) -> dict[str, Any]:
    """Columns for the actual-vs-band chart, with the monitor's anomalies as their own (sparse) column.

    ``raw`` is the watched series itself at the scrape step: when it is one series, it is the actual
    line, so the chart shows every sample rather than the monitor's once-a-cycle
    ``streamwatch_monitor_actual``; the band likewise is ``streamwatch_monitor_band`` (evaluated at each
    scrape) where the monitor exports it, else ``streamwatch_monitor_forecast``. The anomalies are where
    the monitor's own counter rose, marked on the actual line at that point: the page never decides
    "anomalous" itself (the monitor knows the direction and the minimum deviation). When the metric has
    several series, one is drawn (the one with the most samples) with its own band and counter, never a
    mix; ``series_count`` says how many.
    """
    grid = _grid([*series, *raw])
    mine = (
        _pick(series, __name__=queries.ACTUAL)
        or _pick(series, __name__=queries.BAND)
        or _pick(series, __name__=queries.FORECAST)
    )
    key = _series_key(mine) if mine is not None else ()
    own = [s for s in series if _series_key(s) == key]
    count = len({_series_key(s) for s in series})
    source = raw[0] if len(raw) == 1 and len(raw[0]) and count <= 1 else None
    actual = _column(grid, source if source is not None else _pick(own, __name__=queries.ACTUAL))
    # The band at each scrape where the monitor exports one (Prophet), else its band at the last sample
    # scored, which changes once a cycle (streaming detectors, or before the first band scrape).
    bounds = {
        b: _bound(
            grid, _pick(own, __name__=queries.BAND, bound=b), _pick(own, __name__=queries.FORECAST, bound=b)
        )
        for b in ("lower", "expected", "upper")
    }
    counted = monitor_verdict(_column(grid, _pick(own, __name__=queries.ANOMALIES_TOTAL)))
    flagged = counted > 0
    # The mark sits on the actual line; where that has no sample at the point, on the forecast.
    at = np.where(np.isfinite(actual), actual, bounds["expected"])
    anomalies = np.where(flagged, at, np.nan)
    return {
        "timestamps": [float(t) for t in grid],
        "actual": _json_column(actual),
        "lower": _json_column(bounds["lower"]),
        "expected": _json_column(bounds["expected"]),
        "upper": _json_column(bounds["upper"]),
        "anomalies": _json_column(anomalies),
        "anomaly_count": round(float(counted.sum())),
        "samples": int(np.isfinite(actual).sum()),
        "source": "scrape" if source is not None else "monitor",
        "series_count": count,
        "shown": {k: v for k, v in key if k != "metric"},
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


def _own_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(labels.items()) if k not in queries.RESERVED_LABELS}


def top_payload(result: Sequence[Series]) -> list[dict[str, Any]]:
    """The ``topk`` rows, highest anomaly score first; each names its series as the page sends it back."""
    rows = []
    for s in result:
        if not len(s) or not math.isfinite(float(s.values[-1])):
            continue
        labels = _own_labels(s.labels)
        shown = label_text(labels, drop=("job", "instance"))
        rows.append(
            {
                "metric": s.labels.get("metric", ""),
                "labels": labels,
                "name": f"{s.labels.get('metric', '')}{{{shown}}}" if shown else s.labels.get("metric", ""),
                "score": float(s.values[-1]),
                # Decided here, on the one scale's threshold, so the page never hard-codes it.
                "anomalous": float(s.values[-1]) > ANOMALY_THRESHOLD,
            }
        )
    rows.sort(key=lambda r: (-r["score"], r["name"]))
    return rows


def _incident_row(doc: Mapping[str, Any], ongoing: bool) -> dict[str, Any]:
    worst = int(doc.get("peak_severity") or doc.get("severity") or 0)
    return {
        "incident_id": doc.get("incident_id"),
        "start": doc.get("started_at"),
        "end": None if ongoing else doc.get("ended_at"),
        "ongoing": ongoing,
        "duration_s": doc.get("duration_s"),
        "severity": worst,
        "severity_label": severity_label(worst),
        # Every metric in trouble during the incident (an older detector's state has only the last ones).
        "metrics": list(doc.get("all_metrics") or doc.get("metrics") or []),
        "series": [s.get("name", "") for s in doc.get("series") or []],
        "series_in_trouble": int(doc.get("series_in_trouble") or 0),
    }


def incidents_payload(state: Mapping[str, Any]) -> dict[str, Any]:
    """Banner and incident list from one ``/state`` of the incident detector: its own times and metrics.

    Both come from the same document, so the banner cannot say "Sev 2" while naming no metric, and the
    start times are the incident log's, the same on every refresh.
    """
    current = state.get("current")
    incidents = [_incident_row(current, True)] if current else []
    incidents += [_incident_row(doc, False) for doc in state.get("recent") or []]
    severity = int(state.get("severity") or 0) if current else 0
    return {
        "time": state.get("time"),
        "severity": severity,
        "severity_label": severity_label(severity),
        "metrics": list(current.get("metrics") or []) if current else [],
        "series": [s.get("name", "") for s in state.get("series_in_trouble") or []] if current else [],
        "series_in_trouble": int(state.get("series_in_trouble_count") or 0) if current else 0,
        "prometheus_up": state.get("prometheus_up"),
        "incidents": incidents,
    }


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
            # Series still learning (issue 20): scored once their detector's warm-up is done.
            "warming": _latest(instant, __name__="streamwatch_monitor_series_warming", metric=m),
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

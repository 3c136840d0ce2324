"""The backtest's report: a JSON summary and one self-contained HTML page.

The page holds everything it needs: its data as JSON, its script and stylesheet, and the live page's
uPlot (``dashboard/static/vendor/``, inlined under its MIT license), so it opens from a file with no
network. Tables are written here (readable without JavaScript); charts are drawn by
``monitor/report/backtest.js``: per top series of each query, the value, the band the detector scored it
against, the flagged points, and the score against the threshold. A chart keeps at most
``CHART_POINTS`` points (per time bucket the one with the highest score) plus every flagged point, so a
day of 1-second samples stays a page a browser opens at once.
"""

from __future__ import annotations

import html
import json
import re
import time
from importlib import resources
from string import Template
from typing import Any

import numpy as np

from monitor.backtest import Points, QueryOutcome
from monitor.detectors.scores import ANOMALY_THRESHOLD
from streamwatch.series import label_text

CHART_POINTS = 2000
REPORT_FORMAT = 1


def thin(p: Points, limit: int = CHART_POINTS) -> np.ndarray:
    """Indices of ``p``'s points to draw: all of them up to ``limit``; beyond, per one of ``limit`` time
    buckets the point with the highest score, and every flagged point.

    >>> from monitor.backtest import Points
    >>> t = np.arange(10.0); s = np.zeros(10); s[7] = 5.0
    >>> p = Points(np.zeros(10, dtype=np.int64), t, t, s, t, t, t, s > 1)
    >>> thin(p, 2).tolist()  # two buckets: [0..4] keeps its first point, [5..9] the flagged one
    [0, 7]
    """
    n = p.t.size
    if n <= limit:
        return np.arange(n)
    span = max(float(p.t[-1] - p.t[0]), 1e-9)
    bucket = np.minimum(((p.t - p.t[0]) / span * limit).astype(np.int64), limit - 1)
    order = np.lexsort((-np.nan_to_num(p.score, nan=-1.0), bucket))
    firsts = order[np.concatenate(([True], bucket[order][1:] != bucket[order][:-1]))]
    return np.union1d(firsts, np.flatnonzero(p.flagged))


def _column(a: np.ndarray) -> list[float | None]:
    """Numbers for the chart; what cannot be drawn (NaN, +/-Inf) is a gap."""
    a = np.asarray(a, dtype=np.float64)
    return [None if not np.isfinite(v) else round(v, 6) for v in a.tolist()]


def chart(outcome: QueryOutcome, i: int) -> dict[str, Any]:
    """The drawing data of series ``i`` of ``outcome``."""
    p = outcome.points.of_series(i)
    keep = thin(p)
    score = np.asarray(p.score[keep], dtype=np.float64)
    finite = score[np.isfinite(score)]
    top = max(float(finite.max()) if finite.size else 0.0, ANOMALY_THRESHOLD) * 2.0
    return {
        "query": outcome.query.name,
        "labels": outcome.labels[i],
        "points": int(p.t.size),
        "t": p.t[keep].tolist(),
        "value": _column(p.x[keep]),
        "expected": _column(p.expected[keep]),
        "lower": _column(p.lower[keep]),
        "upper": _column(p.upper[keep]),
        "score": _column(np.where(np.isposinf(score), top, score)),  # +Inf drawn at the top
        "flagged": _column(np.where(p.flagged[keep], p.x[keep], np.nan)),
    }


def report_document(meta: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary: how the run was made (``meta``) and its figures (``backtest.summarise``)."""
    return {"format": REPORT_FORMAT, **meta, **summary}


def to_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _asset(name: str) -> str:
    return resources.files("monitor").joinpath("report", name).read_text(encoding="utf-8")


def _vendor(name: str) -> str:
    return resources.files("dashboard").joinpath("static", "vendor", name).read_text(encoding="utf-8")


def _when(t: float | None) -> str:
    return "–" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _e(v: Any) -> str:
    return html.escape(str(v))


def _labels(labels: dict[str, str]) -> str:
    return _e("{" + label_text(labels) + "}")


def _series_rows(rows: list[dict[str, Any]], with_query: bool) -> str:
    head = (
        ("<th>query</th>" if with_query else "")
        + "<th>series</th><th class='num'>flagged points</th><th class='num'>incidents</th>"
        "<th class='num'>max score</th><th>first flagged (UTC)</th><th>last flagged (UTC)</th>"
    )
    out = [f"<table><thead><tr><th class='num'>#</th>{head}</tr></thead><tbody>"]
    for n, r in enumerate(rows, 1):
        score = r["max_score"]
        shown = f"{score:.3g}" if isinstance(score, float) else score
        hot = " hot" if r["points_flagged"] else ""
        out.append(
            f"<tr><td class='num'>{n}</td>"
            + (f"<td>{_e(r['query'])}</td>" if with_query else "")
            + f"<td><code>{_labels(r['labels'])}</code></td>"
            f"<td class='num{hot}'>{r['points_flagged']}</td><td class='num'>{r['incidents']}</td>"
            f"<td class='num'>{_e(shown)}</td><td>{_when(r['first_flagged'])}</td>"
            f"<td>{_when(r['last_flagged'])}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _body(doc: dict[str, Any], charts: list[dict[str, Any]]) -> str:
    parts = [
        f"<h1>Streamwatch backtest: {_e(doc['config'])}</h1>",
        f"<p class='muted'>{_when(doc['since'])} to {_when(doc['until'])} UTC, {doc['cycles']} cycles of "
        f"{doc['interval']:g} s, read from <code>{_e(doc['prometheus_url'])}</code>; retraining "
        + (f"every {doc['retrain_every']:g} s" if doc["retrain_every"] else "off")
        + f". An incident is a run of flagged points of one series at most {doc['incident_gap_s']:g} s "
        "apart. Flagged means a score above 1, as the live monitor counts "
        "<code>streamwatch_monitor_anomalies_total</code>.</p>",
        "<h2>Queries</h2><table><thead><tr><th>query</th><th>detector</th><th class='num'>series</th>"
        "<th class='num'>series flagged</th><th class='num'>points scored</th>"
        "<th class='num'>points flagged</th><th class='num'>incidents</th></tr></thead><tbody>",
    ]
    for q in doc["queries"]:
        params = json.dumps(q["params"], sort_keys=True) if q["params"] else ""
        ratio = f" ({q['flagged_ratio'] * 100:.2f} %)" if q["points_scored"] else ""
        parts.append(
            f"<tr><td><b>{_e(q['name'])}</b><br><code class='muted'>{_e(q['expr'])}</code></td>"
            f"<td>{_e(q['detector'])} <code class='muted'>{_e(params)}</code></td>"
            f"<td class='num'>{q['series']}</td><td class='num'>{q['series_flagged']}</td>"
            f"<td class='num'>{q['points_scored']}</td><td class='num'>{q['points_flagged']}{ratio}</td>"
            f"<td class='num'>{q['incidents']}</td></tr>"
        )
    parts.append("</tbody></table>")
    parts.append("<h2>Top series</h2>" + _series_rows(doc["top"], with_query=True))
    for q in doc["queries"]:
        parts.append(f"<h2>{_e(q['name'])}: top series</h2>")
        if not q["top"]:
            parts.append("<p class='muted'>No series scored in this span.</p>")
            continue
        parts.append(_series_rows(q["top"], with_query=False))
        for i, c in enumerate(charts):
            if c["query"] != q["name"]:
                continue
            drawn = f", {len(c['t'])} drawn" if len(c["t"]) < c["points"] else ""
            parts.append(
                f"<div class='series'><h3><code>{_labels(c['labels'])}</code></h3>"
                f"<p class='muted'>{c['points']} points scored{drawn}.</p>"
                f"<div class='chart' id='band-{i}'></div><div class='chart' id='score-{i}'></div></div>"
            )
    return "\n".join(parts)


def report_html(doc: dict[str, Any], charts: list[dict[str, Any]]) -> str:
    """The self-contained page for the JSON summary ``doc`` and the ``charts`` (``chart``)."""
    uplot_js = _vendor("uPlot.iife.min.js")
    version = re.search(r"\(v([\d.]+)\)", uplot_js[:200])
    data = json.dumps({"threshold": ANOMALY_THRESHOLD, "charts": charts}, allow_nan=False)
    return Template(_asset("backtest.html")).substitute(
        title=_e(f"Streamwatch backtest: {doc['config']}"),
        uplot_css=_vendor("uPlot.min.css"),
        css=_asset("backtest.css"),
        body=_body(doc, charts),
        data=data.replace("</", "<\\/"),  # never ends the script element early
        uplot_version=version.group(1) if version else "",
        uplot_license=_vendor("LICENSE").replace("*/", "* /"),
        uplot_js=uplot_js,
        js=_asset("backtest.js"),
    )

"""The provisioned Grafana files: valid, wired to the provisioned datasource, using the contract's names.

That every panel's query returns data from a real stack is checked in tests/test_stack_e2e.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.fleet import start_fleet
from harness.grafana import (
    DASHBOARD_DIR,
    ROOT,
    load,
    panels,
    query_result_values,
    substitute,
    targets,
    variable,
)
from harness.service_metrics import start_service_metrics
from harness.services import ScrapeTarget
from stack.render import GRAFANA_DATASOURCE_UID
from streamwatch.net import wait_until

DASHBOARD = load()
DATASOURCES = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
CONTRACT = (ROOT / "docs" / "metrics.md").read_text()


def test_every_dashboard_file_is_valid_json_with_a_unique_uid() -> None:
    uids = set()
    for path in DASHBOARD_DIR.glob("*.json"):
        doc = json.loads(path.read_text())
        assert doc["uid"] not in uids
        uids.add(doc["uid"])
        assert doc.get("id") is None  # provisioning assigns ids
    assert "streamwatch-overview" in uids


def test_datasource_is_provisioned_with_the_fixed_uid() -> None:
    (ds,) = DATASOURCES["datasources"]
    assert ds["uid"] == GRAFANA_DATASOURCE_UID == "streamwatch-prometheus"
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"


def test_every_panel_and_query_uses_the_provisioned_datasource() -> None:
    for panel in panels(DASHBOARD):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": GRAFANA_DATASOURCE_UID}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
    for title, target in targets(DASHBOARD):
        assert target["datasource"]["uid"] == GRAFANA_DATASOURCE_UID, title
    for var in DASHBOARD["templating"]["list"]:
        assert var["datasource"]["uid"] == GRAFANA_DATASOURCE_UID


def test_metric_variable_lists_the_watched_metrics() -> None:
    var = variable(DASHBOARD, "metric")
    assert var["query"]["query"] == "label_values(streamwatch_monitor_actual, metric)"
    assert [v["name"] for v in DASHBOARD["templating"]["list"]] == ["metric", "series"]


def test_many_series_top_table_and_one_chart_per_picked_series() -> None:
    (table,) = [p for p in panels(DASHBOARD) if p["type"] == "table"]
    assert [t["expr"] for t in table["targets"]] == ["topk(20, streamwatch_monitor_anomaly_score)"]
    assert table["targets"][0]["instant"] and table["options"]["sortBy"][0]["desc"]
    (per_series,) = [p for p in panels(DASHBOARD) if p.get("repeat") == "series"]
    # :raw, because Grafana regex-escapes a multi-value variable (127.0.0.1 would become 127\\.0\\.0\\.1).
    assert all("{${series:raw}" in t["expr"] for t in per_series["targets"])
    var = variable(DASHBOARD, "series")
    assert var["multi"] and "topk(20, streamwatch_monitor_anomaly_score)" in var["query"]["query"]


@pytest.mark.e2e
def test_series_panels_queries_return_each_picked_series(tmp_path: Path, start_prometheus: Any) -> None:
    """Every query of the many-series panels, run as Grafana would against 50 series of one metric."""
    fleet = start_fleet(tmp_path, "cpu", 50)
    try:
        prom = start_prometheus([ScrapeTarget("fleet", fleet.address)])
        fleet.add({}, scores={"12": 9.0, "30": 4.0})
        series_var = variable(DASHBOARD, "series")

        def values() -> list[str]:
            return query_result_values(series_var, prom.client)

        assert wait_until(lambda: len(values()) == 20 and "12" in values()[0], 20), values()
        first, second = values()[:2]
        assert first == f'cpu="12",instance="{fleet.address}",job="fleet",metric="cpu"'
        assert 'cpu="30"' in second  # highest score first
        (table,) = [p for p in panels(DASHBOARD) if p["type"] == "table"]
        assert len(prom.client.query(table["targets"][0]["expr"])) == 20
        (per_series,) = [p for p in panels(DASHBOARD) if p.get("repeat") == "series"]
        for target in per_series["targets"]:
            expr = substitute(target["expr"], {"series": first})
            result = prom.client.query(expr)
            assert len(result) == 1 and result[0].labels["cpu"] == "12", expr
    finally:
        fleet.process.stop()


def test_band_panel_draws_the_band_at_scrape_time_else_the_forecast(start_prometheus: Any) -> None:
    """The band panel's bounds, run against a real Prometheus: ``streamwatch_monitor_band`` where the
    monitor exports it (Prophet), ``streamwatch_monitor_forecast`` where it does not."""
    exporter = start_service_metrics(["energy_price", "energy_consumption"])  # forecast upper 60 for both
    try:
        exporter.set_scrape_band("energy_price", lower=30, expected=45, upper=70)
        prom = start_prometheus([ScrapeTarget("monitor", exporter.address)])
        (band,) = [p for p in panels(DASHBOARD) if "forecast band" in p["title"]]
        (upper,) = [t["expr"] for t in band["targets"] if t["legendFormat"] == "upper"]

        def value(metric: str) -> list[float]:
            return [float(s.values[-1]) for s in prom.client.query(substitute(upper, {"metric": metric}))]

        assert wait_until(lambda: value("energy_price") == [70.0], 20), value("energy_price")
        assert value("energy_consumption") == [60.0]
    finally:
        exporter.close()


def test_queries_use_only_metric_names_from_the_contract() -> None:
    names = set()
    for _, target in targets(DASHBOARD):
        # Whole names: a recording rule (with colons) is checked as itself, not by its middle part.
        names |= set(re.findall(r"(?<![\w:])[\w:]*streamwatch[\w:]*", target["expr"]))
    assert names
    for name in names:
        assert f"`{name}" in CONTRACT, f"{name} is not in docs/metrics.md"


@pytest.mark.parametrize(
    "needle",
    [
        "streamwatch_monitor_actual",
        'bound="lower"',
        'bound="upper"',
        "streamwatch_monitor_anomalies_total",
        "streamwatch_monitor_mae",
        "streamwatch_monitor_mape_ratio",
        "streamwatch_incident_severity",
        "streamwatch_incident_score",
        "streamwatch_incident_threshold",
        "streamwatch_incident_open",
        "streamwatch_monitor_prometheus_up",
        "streamwatch_incident_prometheus_up",
        "streamwatch_incident_series_in_trouble",
        "topk(20, streamwatch_monitor_anomaly_score)",
    ],
)
def test_overview_shows(needle: str) -> None:
    assert any(needle in target["expr"] for _, target in targets(DASHBOARD))


def test_forecast_band_is_shaded_between_lower_and_upper() -> None:
    (band,) = [p for p in panels(DASHBOARD) if "forecast band" in p["title"]]
    legends = {t["legendFormat"] for t in band["targets"]}
    assert {"actual", "lower", "upper"} <= legends
    fills = {
        o["matcher"]["options"]: prop["value"]
        for o in band["fieldConfig"]["overrides"]
        for prop in o["properties"]
        if prop["id"] == "custom.fillBelowTo"
    }
    assert fills == {"upper": "lower"}


def test_quick_ranges_include_30_minutes_and_1_hour() -> None:
    picker = DASHBOARD["timepicker"]
    assert {"30m", "1h"} <= set(picker["time_options"])
    froms = {r["from"] for r in picker["quick_ranges"]}
    assert {"now-30m", "now-1h"} <= froms
    assert DASHBOARD["time"]["from"] == "now-30m"


def test_dashboard_provider_points_at_the_mounted_folder() -> None:
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/streamwatch.yml").read_text())
    (p,) = provider["providers"]
    assert p["type"] == "file"
    assert p["options"]["path"] == "/etc/grafana/dashboards"


def test_every_recording_rule_feeds_a_panel() -> None:
    # Recording rules exist for the dashboards; one that no panel reads is cost without use.
    rules = yaml.safe_load((ROOT / "prometheus/rules/streamwatch.rules.yml").read_text())
    records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    exprs = " ".join(target["expr"] for _, target in targets(DASHBOARD))
    used = {name for name in records if re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", exprs)}
    assert len(records) >= 5 and used == records, sorted(records - used)

"""The dashboard's pure parts: parameter checks, named queries, band/anomaly columns, incidents, cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dashboard import injection, queries, views
from dashboard.config import DashboardConfig
from incident.severity import IncidentTracker, Rules
from streamwatch.config import load
from streamwatch.errors import ConfigError
from streamwatch.series import Series

METRICS = ["energy_consumption", "energy_price"]
NAN = math.nan


def series(name: str, ts: list[float], vs: list[float], **labels: str) -> Series:
    return Series({"__name__": name, **labels}, np.array(ts), np.array(vs))


# ---- parameters and queries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"), [("5m", 300), ("30m", 1800), ("1h", 3600), (None, 300), ("", 300)]
)
def test_parse_range_accepts_the_offered_ranges(raw: str | None, seconds: int) -> None:
    assert queries.parse_range(raw) == seconds


@pytest.mark.parametrize("raw", ["7m", "1d", "300", "5m;drop", "-5m"])
def test_parse_range_rejects_anything_else(raw: str) -> None:
    with pytest.raises(queries.BadRequest, match="range must be one of 5m, 30m, 1h"):
        queries.parse_range(raw)


@pytest.mark.parametrize("raw", [None, "", "up", 'energy_price"} or up{x="', "energy_price_metric"])
def test_check_metric_only_accepts_watched_metrics(raw: str | None) -> None:
    with pytest.raises(queries.BadRequest, match="metric"):
        queries.check_metric(raw, METRICS)
    assert queries.check_metric("energy_price", METRICS) == "energy_price"


def test_step_keeps_charts_under_max_points() -> None:
    assert queries.step_for(300, 300) == 1
    assert queries.step_for(1800, 300) == 6
    assert queries.step_for(3600, 300) == 12
    assert queries.step_for(10, 300) == 1  # never below a second


def test_series_query_builds_named_queries_on_an_aligned_grid() -> None:
    q = queries.series_query("band", "energy_price", 1800, now=1_700_000_003.7, max_points=300)
    names = (
        "streamwatch_monitor_actual|streamwatch_monitor_band|streamwatch_monitor_forecast"
        "|streamwatch_monitor_anomalies_total"
    )
    assert q.expr == f'{{__name__=~"{names}",metric="energy_price"}}'
    assert q.step_s == 6 and q.end % 6 == 0 and q.end - q.start == 1800 and q.end <= 1_700_000_003.7
    # Never finer than the scrape: a 5 m chart of a series scraped every 2 s asks for 2 s steps.
    fine = queries.series_query("band", "energy_price", 300, now=1_700_000_001, max_points=300, min_step_s=2)
    assert fine.step_s == 2 and fine.end % 2 == 0
    s = queries.series_query("score", "energy_consumption", 300, now=1_700_000_000, max_points=300)
    assert (
        s.expr == 'streamwatch_incident_score{metric="energy_consumption"} or streamwatch_incident_threshold'
    )
    with pytest.raises(queries.BadRequest, match="name must be one of band, score"):
        queries.series_query("up", "energy_price", 300, now=0, max_points=300)
    with pytest.raises(queries.BadRequest):
        queries.series_query(None, "energy_price", 300, now=0, max_points=300)


# ---- band and anomalies -------------------------------------------------------------------------------


def test_picked_series_become_escaped_label_matchers() -> None:
    picked = queries.parse_series('{"cpu": "1", "mode": "us\\"er"}')
    assert picked == {"cpu": "1", "mode": 'us"er'}
    q = queries.series_query("band", "cpu", 300, now=1_700_000_000, max_points=300, series=picked)
    assert q.expr.endswith(',metric="cpu",cpu="1",mode="us\\"er"}')
    assert queries.parse_series(None) == {} and queries.parse_series("") == {}
    for bad, message in [
        ("[1]", "JSON object"),
        ("{", "JSON object"),
        ('{"a b": "1"}', "not a label"),
        ('{"metric": "x"}', "not a label"),
        ('{"cpu": 1}', "must be a string"),
    ]:
        with pytest.raises(queries.BadRequest, match=message):
            queries.parse_series(bad)
    assert queries.check_series_metric("cpu", METRICS) == "cpu"
    with pytest.raises(queries.BadRequest, match="metric name"):
        queries.check_series_metric('cpu"} or vector(1) #', METRICS)
    assert queries.top_series_expr(20) == "topk(20, streamwatch_monitor_anomaly_score)"


def test_band_payload_marks_what_the_monitor_counted_not_what_lies_outside_the_band() -> None:
    # At 11 the value is above the band, but the monitor (say direction = "down") did not count it; its
    # counter rose by 2 between 12 and 13, so 13 carries the mark. A restart (counter back to 1) counts 1.
    ts = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    fc = "streamwatch_monitor_forecast"
    result = [
        series("streamwatch_monitor_actual", ts, [100, 140, 99, 102, 101, 100], metric="energy_price"),
        series(fc, ts, [90] * 6, metric="energy_price", bound="lower"),
        series(fc, ts, [100] * 6, metric="energy_price", bound="expected"),
        series(fc, ts, [110] * 6, metric="energy_price", bound="upper"),
        series("streamwatch_monitor_anomalies_total", ts, [5, 5, 5, 7, 7, 1], metric="energy_price"),
    ]
    p = views.band_payload(result)
    assert p["timestamps"] == ts and p["actual"] == [100, 140, 99, 102, 101, 100]
    assert p["anomalies"] == [None, None, None, 102, None, 100]
    assert p["anomaly_count"] == 3 and p["samples"] == 6 and p["source"] == "monitor"


def test_band_payload_draws_the_scraped_series_at_its_own_resolution() -> None:
    # The monitor's copy changes once a cycle (at 10 and 16); the scraped series has every 2 s sample.
    grid = [10.0, 12.0, 14.0, 16.0]
    result = [
        series("streamwatch_monitor_actual", grid, [100, 100, 100, 130], metric="energy_price"),
        series("streamwatch_monitor_forecast", grid, [110] * 4, metric="energy_price", bound="upper"),
        series("streamwatch_monitor_anomalies_total", grid, [0, 0, 0, 1], metric="energy_price"),
    ]
    raw = [series("energy_price_metric", grid, [100, 104, 131, 130], instance="sim")]
    p = views.band_payload(result, raw)
    assert p["actual"] == [100, 104, 131, 130] and p["source"] == "scrape"
    assert p["upper"] == [110] * 4 and p["anomalies"] == [None, None, None, 130]


def test_band_payload_draws_the_band_at_each_scrape_where_the_monitor_exports_it() -> None:
    # The forecast changes once a cycle (at 16); the band at scrape time at every 2 s step, except at
    # 10 (not scraped yet), where the forecast fills in.
    grid = [10.0, 12.0, 14.0, 16.0]
    fc, band = "streamwatch_monitor_forecast", "streamwatch_monitor_band"
    result = [
        series(fc, grid, [100, 100, 100, 106], metric="energy_price", bound="expected"),
        series(fc, grid, [110, 110, 110, 116], metric="energy_price", bound="upper"),
        series(band, grid[1:], [102, 104, 106], metric="energy_price", bound="expected"),
        series(band, grid[1:], [112, 114, 116], metric="energy_price", bound="upper"),
    ]
    p = views.band_payload(result)
    assert p["expected"] == [100, 102, 104, 106] and p["upper"] == [110, 112, 114, 116]
    assert p["lower"] == [None] * 4 and p["series_count"] == 1


def test_band_payload_on_no_data_is_empty_not_an_error() -> None:
    p = views.band_payload([])
    assert p["timestamps"] == [] and p["samples"] == 0 and p["anomaly_count"] == 0


def test_band_payload_fills_gaps_with_null() -> None:
    result = [
        series("streamwatch_monitor_actual", [1.0, 3.0], [5.0, 7.0]),
        series("streamwatch_monitor_forecast", [1.0, 2.0, 3.0], [4.0, 4.0, 4.0], bound="lower"),
    ]
    p = views.band_payload(result)
    assert p["timestamps"] == [1.0, 2.0, 3.0]
    assert p["actual"] == [5.0, None, 7.0]


def test_score_payload_pairs_the_metric_score_with_the_threshold() -> None:
    result = [
        series("streamwatch_incident_score", [1.0, 2.0], [0.5, 3.0], metric="energy_price"),
        series("streamwatch_incident_threshold", [1.0, 2.0], [2.0, 2.0]),
    ]
    p = views.score_payload(result, "energy_price")
    assert p["score"] == [0.5, 3.0] and p["threshold"] == [2.0, 2.0] and p["samples"] == 2


# ---- incidents ---------------------------------------------------------------------------------------


def test_top_rows_sort_by_score_and_name_their_series() -> None:
    result = [
        series(
            "streamwatch_monitor_anomaly_score", [1.0], [0.4], metric="cpu", cpu="0", job="m", instance="h"
        ),
        series(
            "streamwatch_monitor_anomaly_score", [1.0], [3.5], metric="cpu", cpu="7", job="m", instance="h"
        ),
        series("streamwatch_monitor_anomaly_score", [1.0], [NAN], metric="cpu", cpu="9"),
        series("streamwatch_monitor_anomaly_score", [1.0], [1.2], metric="energy_price", job="m"),
    ]
    rows = views.top_payload(result)
    assert [r["name"] for r in rows] == ['cpu{cpu="7"}', "energy_price", 'cpu{cpu="0"}']
    assert rows[0]["labels"] == {"cpu": "7", "instance": "h", "job": "m"} and rows[0]["score"] == 3.5
    assert rows[0]["metric"] == "cpu"
    # Above the one scale's threshold or not, decided by the server (the page only colours the row).
    assert [r["anomalous"] for r in rows] == [True, True, False]


def detector_state(events: list[tuple[float, dict[str, float]]], at: float) -> tuple[dict, list]:
    """A real incident tracker's /state after ``events``, and the events it logged."""
    tracker = IncidentTracker(("energy_consumption", "energy_price"), Rules(10, 10, 5))
    logged = [e for ts, reading in events for e in tracker.observe(ts, reading)]
    return tracker.snapshot(at), logged


def test_incidents_come_from_the_detector_state_with_the_logs_times() -> None:
    t0 = 1_700_000_000.0
    state, logged = detector_state(
        [(t0, {"energy_price": 12.0}), (t0 + 3, {"energy_consumption": 12.0})], t0 + 4
    )
    p = views.incidents_payload(state)
    assert p["severity"] == 1 and p["severity_label"] == "Sev 1"
    assert p["metrics"] == ["energy_consumption", "energy_price"] and p["series"] == [
        "energy_consumption",
        "energy_price",
    ]
    [row] = p["incidents"]
    assert row["ongoing"] and row["end"] is None and row["start"] == logged[0].to_dict()["started_at"] == t0
    assert row["severity"] == 1 and row["metrics"] == ["energy_consumption", "energy_price"]
    # The same state read again later gives the same start: nothing is re-derived from samples.
    again = views.incidents_payload(
        detector_state([(t0, {"energy_price": 12.0}), (t0 + 3, {"energy_consumption": 12.0})], t0 + 9)[0]
    )
    assert again["incidents"][0]["start"] == t0


def test_an_incident_row_names_every_metric_that_was_in_trouble() -> None:
    t0 = 1_700_000_000.0
    # Both in trouble, then consumption recovers first: the row still names both.
    events = [(t0, {"energy_price": 12.0, "energy_consumption": 12.0})]
    events += [(t0 + 5 * k, {"energy_price": 5.0}) for k in range(1, 8)]
    state, logged = detector_state(events, t0 + 35)
    assert [e.event for e in logged] == ["opened", "de-escalated"] and logged[-1].metrics == ("energy_price",)
    [row] = views.incidents_payload(state)["incidents"]
    assert row["metrics"] == ["energy_consumption", "energy_price"] and row["severity"] == 1


def test_right_after_a_resolve_the_banner_is_normal_and_names_nothing() -> None:
    t0 = 1_700_000_000.0
    state, logged = detector_state([(t0, {"energy_price": 12.0}), (t0 + 60, {})], t0 + 60)
    assert [e.event for e in logged] == ["opened", "resolved"]
    p = views.incidents_payload(state)
    assert (p["severity"], p["severity_label"], p["metrics"], p["series"]) == (0, "normal", [], [])
    [row] = p["incidents"]
    assert not row["ongoing"] and row["start"] == t0 and row["end"] == t0 + 60
    assert row["severity_label"] == "Sev 2" and row["series"] == ["energy_price"]


# ---- summary -----------------------------------------------------------------------------------------


def test_summary_payload_takes_the_latest_values_and_labels_the_severity() -> None:
    instant = [
        series("streamwatch_monitor_mae", [1.0], [12.5], metric="energy_price"),
        series("streamwatch_monitor_mape_ratio", [1.0], [0.04], metric="energy_price"),
        series("streamwatch_monitor_series_warming", [1.0], [3.0], metric="energy_price"),
        series("streamwatch_incident_score", [1.0], [3.0], metric="energy_price"),
        series("streamwatch_incident_threshold", [1.0], [2.0]),
        series("streamwatch_incident_severity", [1.0], [2.0]),
    ]
    in_range = [Series({"metric": "energy_price"}, np.array([1.0]), np.array([7.0]))]
    up = [
        Series({"__name__": "up", "job": "simulator"}, np.array([1.0]), np.array([1.0])),
        Series({"__name__": "up", "job": "monitor"}, np.array([1.0]), np.array([0.0])),
    ]
    p = views.summary_payload(instant, in_range, up, METRICS)
    assert p["severity"] == 2 and p["severity_label"] == "Sev 2" and p["threshold"] == 2.0
    assert p["metrics"]["energy_price"] == {
        "anomalies_in_range": 7.0,
        "anomalies_total": None,
        "cycle_anomalies": None,
        "mae": 12.5,
        "mape_ratio": 0.04,
        "score": 3.0,
        "warming": 3.0,
    }
    assert p["metrics"]["energy_consumption"]["mae"] is None
    assert p["targets"] == {"up": 1, "total": 2, "down": ["monitor"]}
    assert views.summary_payload([], [], [], METRICS)["severity_label"] == "unknown"


@pytest.mark.parametrize(("value", "label"), [(0, "normal"), (1, "Sev 1"), (2, "Sev 2"), (None, "unknown")])
def test_severity_labels_follow_the_detector_encoding(value: float | None, label: str) -> None:
    assert views.severity_label(value) == label


# ---- injection cases and config ----------------------------------------------------------------------


def test_the_four_cases_of_the_original_design() -> None:
    cfg = DashboardConfig(transient_duration_s=8, prolonged_duration_s=90, spike_magnitude=2.5)
    cases = {c.id: c for c in injection.cases(cfg)}
    assert list(cases) == ["transient_one", "transient_all", "prolonged_one", "prolonged_all"]
    assert cases["prolonged_all"].label == "Prolonged spike in both"
    assert cases["prolonged_all"].expect == "Sev 1" and cases["prolonged_one"].expect == "Sev 2"
    assert cases["transient_one"].metrics == ("energy_consumption",)
    assert injection.requests_for(cases["prolonged_all"], cfg.spike_magnitude) == [
        {"metric": "energy_consumption", "kind": "spike", "magnitude": 2.5, "duration_s": 90.0},
        {"metric": "energy_price", "kind": "spike", "magnitude": 2.5, "duration_s": 90.0},
    ]
    assert injection.requests_for(cases["transient_one"], 3.0)[0]["duration_s"] == 8.0
    with pytest.raises(queries.BadRequest, match="case must be one of"):
        injection.find_case("everything", list(cases.values()))


def test_config_loads_from_a_toml_section_and_flags_win(tmp_path: Path) -> None:
    f = tmp_path / "stack.toml"
    f.write_text('[dashboard]\nport = 8123\nmetrics = ["cpu"]\nprometheus_url = "http://127.0.0.1:9999/"\n')
    cfg = load(DashboardConfig, f, section="dashboard", overrides={"port": 8124, "host": None})
    assert (cfg.port, cfg.metrics, cfg.prometheus_url) == (8124, ["cpu"], "http://127.0.0.1:9999")
    assert (cfg.incident_url, cfg.source_query, cfg.scrape_step_s, cfg.top_k) == (
        "http://127.0.0.1:8110", "{metric}_metric", 2.0, 20,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 1", "unknown key 'colour'"),
        ("refresh_s = -2", "refresh_s must be 0.5 to 3,600 s, got -2"),
        ('metrics = ["energy_price\\"} or up{"]', "is not a valid metric name"),
        ("metrics = []", "at least one watched metric"),
        ('prometheus_url = "localhost:9090"', "must be an http:// or https:// URL"),
        ('port = "eighty"', "must be an integer"),
        ('incident_url = "127.0.0.1:8110"', "incident_url must be an http:// or https:// URL"),
        ("top_k = 0", "top_k must be 1 to 200, got 0"),
        ("scrape_step_s = 0", "scrape_step_s must be 0.1 to 3,600 s, got 0"),
        ('source_query = " "', "source_query must not be empty"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(f"[dashboard]\n{toml}\n")
    with pytest.raises(ConfigError, match=message):
        load(DashboardConfig, f, section="dashboard")


def test_a_metric_with_several_series_draws_one_of_them_whole_never_a_mix() -> None:
    ts = [10.0, 12.0]
    fc = "streamwatch_monitor_forecast"
    a, b = {"metric": "cpu", "cpu": "0"}, {"metric": "cpu", "cpu": "1"}
    result = [
        series("streamwatch_monitor_actual", ts, [100, 101], **a),
        series("streamwatch_monitor_actual", ts[1:], [500], **b),
        series(fc, ts, [110, 110], bound="upper", **a),
        series(fc, ts, [510, 510], bound="upper", **b),
        series("streamwatch_monitor_anomalies_total", ts, [0, 0], **a),
        series("streamwatch_monitor_anomalies_total", ts, [0, 9], **b),
    ]
    # The raw metric has two series as well: which one is the monitor's cpu="0" is unknown, so not used.
    raw = [series("cpu_metric", ts, [1, 2], cpu="0"), series("cpu_metric", ts, [3, 4], cpu="1")]
    p = views.band_payload(result, raw)
    assert p["actual"] == [100, 101] and p["upper"] == [110, 110] and p["anomaly_count"] == 0
    assert p["series_count"] == 2 and p["shown"] == {"cpu": "0"} and p["source"] == "monitor"

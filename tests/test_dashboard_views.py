"""The dashboard's pure parts: parameter checks, named queries, band/anomaly columns, incidents, cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dashboard import injection, queries, views
from dashboard.config import DashboardConfig
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
    names = "streamwatch_monitor_actual|streamwatch_monitor_forecast|streamwatch_monitor_cycle_anomalies"
    assert q.expr == f'{{__name__=~"{names}",metric="energy_price"}}'
    assert q.step_s == 6 and q.end % 6 == 0 and q.end - q.start == 1800 and q.end <= 1_700_000_003.7
    s = queries.series_query("score", "energy_consumption", 300, now=1_700_000_000, max_points=300)
    assert (
        s.expr == 'streamwatch_incident_score{metric="energy_consumption"} or streamwatch_incident_threshold'
    )
    with pytest.raises(queries.BadRequest, match="name must be one of band, score"):
        queries.series_query("up", "energy_price", 300, now=0, max_points=300)
    with pytest.raises(queries.BadRequest):
        queries.series_query(None, "energy_price", 300, now=0, max_points=300)


# ---- band and anomalies -------------------------------------------------------------------------------


def test_band_payload_aligns_columns_and_marks_samples_outside_the_band() -> None:
    ts = [10.0, 11.0, 12.0, 13.0]
    fc = "streamwatch_monitor_forecast"
    result = [
        series("streamwatch_monitor_actual", ts, [100, 140, 60, 105], metric="energy_price"),
        series(fc, ts, [90, 90, 90, 90], metric="energy_price", bound="lower"),
        series(fc, ts, [100, 100, 100, 100], metric="energy_price", bound="expected"),
        # The upper bound misses one sample: that sample cannot be judged and is not an anomaly.
        series(fc, [10.0, 11.0, 12.0], [110, 110, 110], metric="energy_price", bound="upper"),
    ]
    p = views.band_payload(result)
    assert p["timestamps"] == ts
    assert p["actual"] == [100, 140, 60, 105]
    assert p["upper"] == [110, 110, 110, None]
    assert p["anomalies"] == [None, 140, 60, None]
    assert p["anomaly_count"] == 2 and p["samples"] == 4


def test_band_payload_marks_samples_of_cycles_that_found_anomalies() -> None:
    # Inside the band, but the cycle that exported the sample at 11 and 13 flagged earlier samples
    # (a 30 s cycle exports only its last one); no bounds at all, as for the trend detector, at 13.
    ts = [10.0, 11.0, 12.0, 13.0]
    fc = "streamwatch_monitor_forecast"
    result = [
        series("streamwatch_monitor_actual", ts, [100, 101, 99, 102], metric="energy_price"),
        series(fc, ts[:3], [90, 90, 90], metric="energy_price", bound="lower"),
        series(fc, ts[:3], [110, 110, 110], metric="energy_price", bound="upper"),
        series("streamwatch_monitor_cycle_anomalies", ts, [0, 3, 0, 1], metric="energy_price"),
    ]
    p = views.band_payload(result)
    assert p["anomalies"] == [None, 101, None, 102]
    assert p["anomaly_count"] == 2 and p["samples"] == 4


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


def test_derive_incidents_finds_runs_their_worst_severity_and_metrics() -> None:
    ts = np.arange(0.0, 100.0, 10.0)
    sev = np.array([0, 2, 1, 2, 0, 0, 2, 2, 0, 0], dtype=float)
    threshold = np.full(10, 5.0)
    scores = {
        "energy_consumption": np.array([0, 6, 7, 6, 1, 0, 0, 0, 0, 0], dtype=float),
        "energy_price": np.array([0, 2, 8, 3, 1, 0, 9, 6, 2, 0], dtype=float),
    }
    got = views.derive_incidents(ts, sev, scores, threshold)
    assert [i["start"] for i in got] == [60.0, 10.0]  # newest first
    newest, oldest = got
    assert oldest["severity"] == 1 and oldest["severity_label"] == "Sev 1"  # escalated from Sev 2 to Sev 1
    assert oldest["end"] == 40.0 and oldest["duration_s"] == 30.0 and not oldest["ongoing"]
    assert oldest["metrics"] == ["energy_consumption", "energy_price"]
    assert newest["severity"] == 2 and newest["metrics"] == ["energy_price"] and newest["end"] == 80.0


def test_derive_incidents_reports_an_ongoing_incident_without_an_end() -> None:
    ts = np.array([0.0, 5.0, 10.0])
    got = views.derive_incidents(ts, np.array([0.0, 2.0, 2.0]), {}, np.full(3, 1.0))
    assert got == [
        {
            "start": 5.0,
            "end": None,
            "ongoing": True,
            "duration_s": 5.0,
            "severity": 2,
            "severity_label": "Sev 2",
            "metrics": [],
        }
    ]


def test_derive_incidents_a_missing_sample_ends_a_run_and_quiet_data_has_none() -> None:
    ts = np.arange(5.0)
    got = views.derive_incidents(ts, np.array([2.0, NAN, 2.0, 0.0, 0.0]), {}, np.full(5, NAN))
    assert [(i["start"], i["end"]) for i in got] == [(2.0, 3.0), (0.0, 1.0)]
    assert views.derive_incidents(ts, np.zeros(5), {}, np.zeros(5)) == []
    assert views.derive_incidents(np.array([]), np.array([]), {}, np.array([])) == []


# ---- summary -----------------------------------------------------------------------------------------


def test_summary_payload_takes_the_latest_values_and_labels_the_severity() -> None:
    instant = [
        series("streamwatch_monitor_mae", [1.0], [12.5], metric="energy_price"),
        series("streamwatch_monitor_mape_ratio", [1.0], [0.04], metric="energy_price"),
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


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 1", "unknown key 'colour'"),
        ("refresh_s = -2", "refresh_s must be positive"),
        ('metrics = ["energy_price\\"} or up{"]', "is not a valid metric name"),
        ("metrics = []", "at least one watched metric"),
        ('prometheus_url = "localhost:9090"', "must be an http:// or https:// URL"),
        ('port = "eighty"', "must be an integer"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(f"[dashboard]\n{toml}\n")
    with pytest.raises(ConfigError, match=message):
        load(DashboardConfig, f, section="dashboard")

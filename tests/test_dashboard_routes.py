"""The dashboard's routes against a real Prometheus (scraping an exporter with the contract's names)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from streamwatch.net import free_port, wait_until
from tests.conftest import PrometheusFactory, ScrapeTarget
from tests.dashboard_support import ServiceMetrics, start_service_metrics

METRICS = ["energy_consumption", "energy_price"]


def client_for(**kwargs: Any) -> FlaskClient:
    cfg = DashboardConfig(timeout_s=2.0, **kwargs)
    return create_app(cfg).test_client()


def nobody_listens() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def exporter() -> Iterator[ServiceMetrics]:
    e = start_service_metrics(METRICS)
    yield e
    e.close()


# ---- parameters: only named queries, 400 for anything else (checked before any query runs) --------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/api/series?name=band&metric=cpu&range=5m", "unknown metric 'cpu'"),
        ('/api/series?name=band&metric=energy_price"}or up{a="&range=5m', "unknown metric"),
        ("/api/series?name=band&range=5m", "metric is required"),
        ("/api/series?name=up&metric=energy_price", "name must be one of band, score"),
        ("/api/series?metric=energy_price", "name must be one of band, score"),
        ("/api/series?name=band&metric=energy_price&range=2d", "range must be one of 5m, 30m, 1h"),
        ("/api/series?query=up&metric=energy_price", "name must be one of"),
        ("/api/summary?range=10s", "range must be one of"),
    ],
)
def test_bad_parameters_are_rejected_with_400_json(url: str, message: str) -> None:
    # Prometheus is down here on purpose: a bad request must be a 400, never reach the query stage.
    resp = client_for(prometheus_url=nobody_listens()).get(url)
    assert resp.status_code == 400
    assert message in resp.json["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "body must be a JSON object"),
        ([], "body must be a JSON object"),
        ({}, "case must be one of"),
        (
            {"case": "meltdown"},
            "case must be one of transient_one, transient_all, prolonged_one, prolonged_all",
        ),
    ],
)
def test_bad_injection_requests_are_rejected_with_400(body: Any, message: str) -> None:
    c = client_for(simulator_url=nobody_listens())
    if body is None:
        resp = c.post("/api/inject", data="spike!", content_type="application/json")
    else:
        resp = c.post("/api/inject", json=body)
    assert resp.status_code == 400 and message in resp.json["error"]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        # A foreign page's no-preflight POST: text/plain from http://evil.example.
        (
            {
                "data": '{"case": "prolonged_all"}',
                "content_type": "text/plain",
                "headers": {"Origin": "http://evil.example"},
            },
            403,
        ),
        ({"data": '{"case": "prolonged_all"}', "content_type": "text/plain"}, 415),
        ({"json": {"case": "prolonged_all"}, "headers": {"Origin": "http://evil.example"}}, 403),
        ({"json": {"case": "prolonged_all"}, "headers": {"Host": "evil.example:8000"}}, 403),  # rebinding
        ({"json": {"case": "x" * 70_000}}, 413),
        ({"data": "[" * 30_000 + "]" * 30_000, "content_type": "application/json"}, 400),
    ],
)
def test_foreign_pages_cannot_press_the_injection_buttons(
    start_simulator: Any, kwargs: dict[str, Any], status: int
) -> None:
    sim = start_simulator()
    c = client_for(simulator_url=sim.url, port=8000)
    resp = c.post("/api/inject", **kwargs)
    assert resp.status_code == status and resp.is_json and resp.json["error"]
    assert requests.get(f"{sim.url}/anomalies", timeout=5).json() == {"anomalies": []}
    # The page's own fetch (same origin, JSON) still works.
    own = {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000"}
    assert c.post("/api/inject", json={"case": "prolonged_one"}, headers=own).status_code == 201


def test_unknown_paths_and_methods_answer_json() -> None:
    c = client_for()
    assert c.get("/api/query?query=up").status_code == 404
    assert c.get("/api/query?query=up").json["error"]
    assert c.get("/api/inject").status_code == 405


# ---- the page -----------------------------------------------------------------------------------------


def test_page_lists_each_watched_metric_and_loads_everything_from_its_own_origin() -> None:
    c = client_for(metrics=["cpu_load", "energy_price"])
    html = c.get("/").get_data(as_text=True)
    assert (
        'data-metric="cpu_load"' in html
        and 'id="band-energy_price"' in html
        and 'id="score-cpu_load"' in html
    )
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith("/static/") or r.startswith("data:") for r in refs), refs
    for ref in refs:
        if ref.startswith("/static/"):
            assert c.get(ref).status_code == 200, ref
    assert c.get("/static/vendor/uPlot.iife.min.js").get_data(as_text=True).count("uPlot") > 1
    assert c.get("/healthz").json == {"status": "ok"}
    assert c.get("/api/config").json["metrics"] == ["cpu_load", "energy_price"]


# ---- Prometheus down ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/series?name=band&metric=energy_price",
        "/api/series?name=score&metric=energy_price",
        "/api/summary",
        "/api/incidents",
    ],
)
def test_prometheus_unreachable_is_a_503_that_says_so(url: str) -> None:
    resp = client_for(prometheus_url=nobody_listens()).get(url)
    assert resp.status_code == 503
    assert resp.json["source"] == "prometheus" and "cannot reach Prometheus" in resp.json["error"]


# ---- real Prometheus ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_series_and_summary_come_from_prometheus(
    start_prometheus: PrometheusFactory, exporter: ServiceMetrics
) -> None:
    exporter.set_band("energy_price", actual=150, lower=90, expected=100, upper=110)  # above the band
    exporter.score.labels(metric="energy_price").set(3.0)
    exporter.anomalies_total.labels(metric="energy_price").inc(5)
    exporter.mae.labels(metric="energy_price").set(12.5)
    exporter.mape.labels(metric="energy_price").set(0.04)
    exporter.severity.set(2)
    prom = start_prometheus([ScrapeTarget("streamwatch", exporter.address)])
    c = client_for(prometheus_url=prom.url)

    def band(metric: str) -> dict[str, Any]:
        resp = c.get(f"/api/series?name=band&metric={metric}&range=5m")
        assert resp.status_code == 200, resp.json
        return resp.json

    assert wait_until(lambda: band("energy_price")["samples"] >= 2, 20), band("energy_price")
    price = band("energy_price")
    values = [v for v in price["actual"] if v is not None]
    assert set(values) == {150.0}
    assert {v for v in price["upper"] if v is not None} == {110.0}
    assert price["anomaly_count"] == price["samples"] and price["anomalies"] == price["actual"]
    assert price["step_s"] == 1.0 and price["end"] - price["start"] == 300

    consumption = band("energy_consumption")
    assert consumption["samples"] >= 1 and consumption["anomaly_count"] == 0
    assert all(v is None for v in consumption["anomalies"])

    def score_series() -> dict[str, Any]:
        return c.get("/api/series?name=score&metric=energy_price&range=30m").json

    # The 30 m chart's grid is aligned to its 6 s step, so its last point may precede the first scrape.
    assert wait_until(lambda: any(v is not None for v in score_series()["score"]), 20), score_series()
    score = score_series()
    assert {v for v in score["score"] if v is not None} == {3.0}
    assert {v for v in score["threshold"] if v is not None} == {2.0}
    assert score["step_s"] == 6.0

    summary = c.get("/api/summary?range=5m").json
    assert summary["severity"] == 2 and summary["severity_label"] == "Sev 2" and summary["threshold"] == 2.0
    price_stats = summary["metrics"]["energy_price"]
    assert (
        price_stats["anomalies_total"] == 5
        and price_stats["mae"] == 12.5
        and price_stats["mape_ratio"] == 0.04
    )
    assert price_stats["score"] == 3.0
    assert summary["targets"]["up"] >= 1 and summary["targets"]["down"] == []


@pytest.mark.e2e
def test_incidents_follow_the_detector_severity_over_time(
    start_prometheus: PrometheusFactory, exporter: ServiceMetrics
) -> None:
    exporter.severity.set(0)
    prom = start_prometheus([ScrapeTarget("streamwatch", exporter.address)])
    c = client_for(prometheus_url=prom.url, max_points=3600)  # 1 s steps over the lookback

    def summary() -> dict[str, Any]:
        return c.get("/api/summary").json

    def incidents() -> list[dict[str, Any]]:
        resp = c.get("/api/incidents")
        assert resp.status_code == 200, resp.json
        return resp.json["incidents"]

    assert wait_until(lambda: summary().get("severity") == 0, 20)
    assert incidents() == []

    exporter.score.labels(metric="energy_consumption").set(5)
    exporter.score.labels(metric="energy_price").set(4)
    exporter.severity.set(1)
    exporter.open.set(1)
    assert wait_until(lambda: any(i["ongoing"] for i in incidents()), 20)
    ongoing = incidents()[0]
    assert ongoing["severity_label"] == "Sev 1" and ongoing["end"] is None
    assert ongoing["metrics"] == METRICS

    for m in METRICS:
        exporter.score.labels(metric=m).set(0)
    exporter.severity.set(0)
    exporter.open.set(0)
    assert wait_until(lambda: incidents() and not incidents()[0]["ongoing"], 20)
    resolved = incidents()[0]
    assert resolved["end"] is not None and resolved["end"] > resolved["start"]
    assert summary()["severity_label"] == "normal"


@pytest.mark.e2e
def test_prometheus_going_away_turns_into_503_without_breaking_the_app(
    start_prometheus: PrometheusFactory, exporter: ServiceMetrics
) -> None:
    prom = start_prometheus([ScrapeTarget("streamwatch", exporter.address)])
    c = client_for(prometheus_url=prom.url)
    assert c.get("/api/summary").status_code == 200
    prom.process.stop()
    resp = c.get("/api/summary")
    assert resp.status_code == 503 and resp.json["source"] == "prometheus"
    assert c.get("/healthz").status_code == 200  # the page itself stays up and keeps retrying


# ---- the simulator ------------------------------------------------------------------------------------


def test_buttons_are_hidden_when_the_simulator_is_unreachable() -> None:
    c = client_for(simulator_url=nobody_listens())
    assert c.get("/api/simulator").json["reachable"] is False
    assert c.get("/api/simulator").json["cases"] == []
    resp = c.post("/api/inject", json={"case": "prolonged_all"})
    assert resp.status_code == 503 and resp.json["source"] == "simulator"


@pytest.mark.e2e
def test_injection_buttons_post_the_cases_to_the_real_simulator(start_simulator: Any) -> None:
    sim = start_simulator()
    c = client_for(simulator_url=sim.url, prolonged_duration_s=60, spike_magnitude=3.0)
    doc = c.get("/api/simulator").json
    assert doc["reachable"] is True
    assert [case["id"] for case in doc["cases"]] == [
        "transient_one",
        "transient_all",
        "prolonged_one",
        "prolonged_all",
    ]
    resp = c.post("/api/inject", json={"case": "prolonged_all"})
    assert resp.status_code == 201, resp.json
    active = requests.get(f"{sim.url}/anomalies", timeout=5).json()["anomalies"]
    assert sorted(a["metric"] for a in active) == METRICS
    assert all(a["kind"] == "spike" and a["magnitude"] == 3.0 and a["duration_s"] == 60 for a in active)

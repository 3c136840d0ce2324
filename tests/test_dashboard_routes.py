"""The dashboard's routes against a real Prometheus (scraping an exporter with the contract's names)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from harness.fleet import start_fleet
from harness.service_metrics import ServiceMetrics, start_service_metrics
from harness.services import PrometheusFactory, ScrapeTarget
from incident.config import IncidentConfig
from incident.log import IncidentLog, read_events
from incident.service import IncidentWatcher, serve
from streamwatch.clock import FakeClock
from streamwatch.net import free_port, wait_until
from streamwatch.promapi import PrometheusClient

METRICS = ["energy_consumption", "energy_price"]
T0 = 1_700_000_000.0


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
        ('/api/series?name=band&metric=cpu&series={"a b":"1"}', "not a label that tells series apart"),
        (
            '/api/series?name=band&metric=cpu"}or vector(1) or up{a="&series={"cpu":"1"}',
            "must be a metric name",
        ),
        ("/api/series?name=band&metric=cpu&series=cpu=1", "series must be a JSON object"),
        # Issue 22: a 5,000-deep series= was a RecursionError and a 500.
        ("/api/series?name=band&metric=cpu&series=" + "[" * 5000 + "]" * 5000, "series must be a JSON"),
        ('/api/series?name=band&metric=cpu&series={"cpu": 1e999}', "series must be a JSON object"),
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
        "/api/top",
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
    exporter.raw["energy_price"].set(151)  # the watched series itself, scraped: what the chart draws
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
    assert set(values) == {151.0} and price["source"] == "scrape"
    assert {v for v in price["upper"] if v is not None} == {110.0}  # no band at scrape time: the forecast
    # A Prophet monitor's band at scrape time is drawn instead of its band at the last sample scored.
    exporter.set_scrape_band("energy_price", lower=80, expected=95, upper=120)
    assert wait_until(lambda: band("energy_price")["upper"][-1] == 120.0, 20), band("energy_price")
    assert band("energy_price")["expected"][-1] == 95.0
    # Outside the band, but the monitor's counter has not moved in range: the page marks nothing.
    assert price["anomaly_count"] == 0 and all(v is None for v in price["anomalies"])
    assert price["step_s"] == 2.0 and price["end"] - price["start"] == 300  # the scrape step (2 s)
    # The monitor counts 3 more: one mark where its counter rose, on the actual line.
    exporter.anomalies_total.labels(metric="energy_price").inc(3)
    assert wait_until(lambda: band("energy_price")["anomaly_count"] == 3, 20), band("energy_price")
    marks = [v for v in band("energy_price")["anomalies"] if v is not None]
    assert marks == [151.0]

    consumption = band("energy_consumption")
    assert {v for v in consumption["upper"] if v is not None} == {60.0}  # its monitor exports no band
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
        price_stats["anomalies_total"] == 8  # 5, then the 3 the monitor counted during the test
        and price_stats["mae"] == 12.5
        and price_stats["mape_ratio"] == 0.04
    )
    assert price_stats["score"] == 3.0
    assert summary["targets"]["up"] >= 1 and summary["targets"]["down"] == []


@pytest.mark.e2e
def test_banner_and_incidents_are_the_detectors_own_state(
    start_prometheus: PrometheusFactory, exporter: ServiceMetrics, tmp_path: Path
) -> None:
    """A real incident watcher reads the counters; the page shows its /state and re-derives nothing."""
    prom = start_prometheus([ScrapeTarget("streamwatch", exporter.address)])
    clock = FakeClock(T0)
    cfg = IncidentConfig(prometheus_url=prom.url, interval=5, half_life_s=10, threshold=10)
    with IncidentLog(tmp_path / "incidents.log") as ilog:
        watcher = IncidentWatcher(cfg, PrometheusClient(prom.url), clock, ilog)
        port = free_port()
        server = serve(watcher, "127.0.0.1", port)
        try:
            c = client_for(prometheus_url=prom.url, incident_url=f"http://127.0.0.1:{port}")
            assert wait_until(lambda: len(prom.client.query("streamwatch_monitor_anomalies_total")) == 2, 20)
            watcher.cycle()
            assert c.get("/api/incidents").json["incidents"] == []

            counter = exporter.anomalies_total.labels(metric="energy_price")
            counter.inc(12)
            q = 'streamwatch_monitor_anomalies_total{metric="energy_price"}'
            assert wait_until(lambda: prom.client.query(q)[0].values[-1] == 12, 20)
            clock.advance(5)
            watcher.cycle()
            doc = c.get("/api/incidents").json
            assert (doc["severity"], doc["severity_label"], doc["metrics"]) == (2, "Sev 2", ["energy_price"])
            [row] = doc["incidents"]
            [opened] = read_events(tmp_path / "incidents.log")
            assert row["ongoing"] and row["start"] == opened["time"] == T0 + 5  # the log's own time
            clock.advance(3)
            assert c.get("/api/incidents").json["incidents"][0]["start"] == T0 + 5  # and it stays so

            clock.advance(120)
            watcher.cycle()
            doc = c.get("/api/incidents").json
            # Right after the resolve: normal, naming nothing; the incident ended at the log's time.
            assert (doc["severity"], doc["metrics"], doc["series"]) == (0, [], [])
            [row] = doc["incidents"]
            resolved = read_events(tmp_path / "incidents.log")[-1]
            assert not row["ongoing"] and row["end"] == resolved["time"] and row["start"] == T0 + 5
        finally:
            server.shutdown()
        server.server_close()
    # The detector gone: the incidents answer says so (503), the rest of the page keeps working.
    resp = c.get("/api/incidents")
    assert resp.status_code == 503 and resp.json["source"] == "incident detector"
    assert c.get("/api/summary").status_code == 200


@pytest.mark.e2e
def test_top_series_table_and_a_picked_series_chart(
    start_prometheus: PrometheusFactory, tmp_path: Path
) -> None:
    fleet = start_fleet(tmp_path, "cpu", 50)
    try:
        prom = start_prometheus([ScrapeTarget("fleet", fleet.address)])
        c = client_for(prometheus_url=prom.url, top_k=5)
        fleet.add({"17": 4}, scores={"17": 6.5, "3": 2.0, "40": 1.5})

        def top() -> list[dict[str, Any]]:
            return c.get("/api/top").json["series"]

        assert wait_until(lambda: top() and top()[0]["score"] == 6.5, 20), top()
        rows = top()
        assert len(rows) == 5 and [r["name"] for r in rows[:3]] == [
            'cpu{cpu="17"}',
            'cpu{cpu="3"}',
            'cpu{cpu="40"}',
        ]
        assert rows[0]["labels"] == {"cpu": "17", "instance": fleet.address, "job": "fleet"}

        def picked() -> dict[str, Any]:
            resp = c.get("/api/series", query_string={"name": "band", "metric": "cpu", "range": "5m",
                                                       "series": json.dumps(rows[0]["labels"])})  # fmt: skip
            assert resp.status_code == 200, resp.json
            return resp.json

        assert wait_until(lambda: picked()["samples"] >= 2, 20), picked()
        band = picked()
        # Only that series: its own level (100 + 17) and band, not another series' or a mix.
        assert {v for v in band["actual"] if v is not None} == {117.0}
        assert {v for v in band["upper"] if v is not None} == {127.0} and band["source"] == "monitor"
    finally:
        fleet.process.stop()


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

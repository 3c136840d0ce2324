"""The Flask shell: /metrics (parsed and promtool-checked), /healthz, and the /anomalies API."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from harness.services import assert_promtool_metrics_ok
from simulator import wave
from simulator.app import create_app
from simulator.cli import load_config
from simulator.config import SimulatorConfig
from streamwatch.clock import FakeClock
from streamwatch.errors import ConfigError

START = 1_700_000_001.0  # inside a tick, not on its edge


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def client(clock: FakeClock) -> FlaskClient:
    return create_app(SimulatorConfig(seed=5), clock).test_client()


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def price(client: FlaskClient) -> float:
    return samples(client)[("energy_price_metric", ())]


def inject(client: FlaskClient, **body: object):
    return client.post("/anomalies", json=body)


def test_metrics_exposes_the_wave_at_the_clock_time(client: FlaskClient, clock: FakeClock) -> None:
    cfg = SimulatorConfig(seed=5)
    got = samples(client)
    for spec in cfg.metrics:
        assert got[(spec.metric_name, ())] == wave.value(spec, START, seed=5)
    clock.advance(2.0)
    assert price(client) == wave.value(cfg.metrics[1], START + 2.0, seed=5)
    assert got[("streamwatch_simulator_active_anomalies", (("metric", "energy_price"),))] == 0.0
    assert (
        got[
            (
                "streamwatch_simulator_anomalies_injected_total",
                (("kind", "spike"), ("metric", "energy_price")),
            )
        ]
        == 0
    )
    assert ("process_cpu_seconds_total", ()) in got
    assert not any(name.endswith("_created") for name, _ in got)


def test_a_restarted_app_serves_the_same_value_at_the_same_time(clock: FakeClock) -> None:
    first = create_app(SimulatorConfig(), clock).test_client()
    before = price(first)
    later = create_app(SimulatorConfig(), FakeClock(START)).test_client()  # "restart"
    assert price(later) == before


def test_metrics_pass_promtool_check(client: FlaskClient) -> None:
    inject(client, metric="energy_price", kind="spike", magnitude=3, duration_s=20)
    text = client.get("/metrics").get_data(as_text=True)
    assert_promtool_metrics_ok(text)


def test_healthz(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "ok"


@pytest.mark.parametrize(
    ("kind", "magnitude", "expected"),
    [
        ("spike", 3.0, lambda base, t: base * 3.0),
        ("shift", 250.0, lambda base, t: base + 250.0),
        ("drop", None, lambda base, t: 10.0),
        ("drift", 100.0, lambda base, t: base + 100.0 * (t - START) / 40.0),
    ],
)
def test_every_kind_changes_the_served_value(
    client: FlaskClient, clock: FakeClock, kind, magnitude, expected
) -> None:
    spec = SimulatorConfig().metrics[1]
    body = {"metric": "energy_price", "kind": kind, "duration_s": 40}
    if magnitude is not None:
        body["magnitude"] = magnitude
    resp = client.post("/anomalies", json=body)
    assert resp.status_code == 201
    created = resp.get_json()
    assert created["kind"] == kind and created["metric"] == "energy_price" and created["id"]
    for dt in (0.0, 10.0, 30.0):
        clock.now = START + dt
        base = wave.value(spec, clock.now, seed=5)
        assert price(client) == pytest.approx(expected(base, clock.now)), dt
    got = samples(client)
    assert got[("streamwatch_simulator_active_anomalies", (("metric", "energy_price"),))] == 1.0
    assert (
        got[("streamwatch_simulator_anomalies_injected_total", (("kind", kind), ("metric", "energy_price")))]
        == 1
    )
    clock.now = START + 40.0  # ended
    assert price(client) == wave.value(spec, clock.now, seed=5)
    assert client.get("/anomalies").get_json() == {"anomalies": []}


def test_list_and_delete(client: FlaskClient, clock: FakeClock) -> None:
    a = inject(client, metric="energy_price", kind="spike", magnitude=3, duration_s=60).get_json()
    b = inject(client, metric="energy_consumption", kind="drop", duration_s=10).get_json()
    listed = client.get("/anomalies").get_json()["anomalies"]
    assert [x["id"] for x in listed] == [a["id"], b["id"]]
    clock.advance(15)
    assert [x["id"] for x in client.get("/anomalies").get_json()["anomalies"]] == [a["id"]]
    assert client.delete(f"/anomalies/{a['id']}").status_code == 204
    assert client.get("/anomalies").get_json() == {"anomalies": []}
    gone = client.delete(f"/anomalies/{a['id']}")
    assert gone.status_code == 404 and gone.get_json()["field"] == "id"
    assert price(client) == wave.value(SimulatorConfig().metrics[1], clock.now, seed=5)


def test_injection_is_logged(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="simulator")
    inject(client, metric="energy_price", kind="shift", magnitude=50, duration_s=20)
    lines = [r.getMessage() for r in caplog.records if r.name == "simulator"]
    assert len(lines) == 1 and "shift" in lines[0] and "energy_price" in lines[0]


GOOD = {"metric": "energy_price", "kind": "spike", "magnitude": 3.0, "duration_s": 20}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "metric": "water"}, "metric"),
        ({**GOOD, "kind": "wobble"}, "kind"),
        ({**GOOD, "duration_s": -1}, "duration_s"),
        ({**GOOD, "duration_s": "soon"}, "duration_s"),
        ({**GOOD, "magnitude": "big"}, "magnitude"),
        ({**GOOD, "magnitude": -3}, "magnitude"),
        ({k: v for k, v in GOOD.items() if k != "metric"}, "metric"),
        ({k: v for k, v in GOOD.items() if k != "kind"}, "kind"),
        ({k: v for k, v in GOOD.items() if k != "duration_s"}, "duration_s"),
        ({k: v for k, v in GOOD.items() if k != "magnitude"}, "magnitude"),
        ([1, 2], "body"),
    ],
)
def test_bad_injections_get_400_naming_the_field(client: FlaskClient, body: object, field: str) -> None:
    resp = client.post("/anomalies", json=body)
    assert resp.status_code == 400
    doc = resp.get_json()
    assert doc["field"] == field and doc["error"]
    assert client.get("/anomalies").get_json() == {"anomalies": []}


@pytest.mark.parametrize("raw", [b"not json", b"", b'{"metric": "energy_price",'])
def test_non_json_body_gets_400(client: FlaskClient, raw: bytes) -> None:
    resp = client.post("/anomalies", data=raw, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["field"] == "body"


def test_custom_metrics_from_toml(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        'seed = 9\n[[metrics]]\nname = "water_flow"\nmin = 0.0\nmax = 40.0\nstep = 4\nnoise = 0.0\n'
    )
    cfg = load_config(path)
    client = create_app(cfg, clock).test_client()
    got = samples(client)
    assert got[("water_flow_metric", ())] == wave.clean_value(cfg.metrics[0], START)
    assert ("energy_price_metric", ()) not in got
    assert inject(client, metric="water_flow", kind="drop", duration_s=5).status_code == 201
    assert inject(client, metric="energy_price", kind="drop", duration_s=5).status_code == 400


@pytest.mark.parametrize(
    "text",
    [
        '[[metrics]]\nname = "x"\nmin = 5.0\nmax = 1.0\nstep = 1\n',
        '[[metrics]]\nname = "x"\nmin = 0.0\nmax = 1.0\nstep = 0\n',
        '[[metrics]]\nname = "bad-name"\nmin = 0.0\nmax = 1.0\nstep = 1\n',
        '[[metrics]]\nname = "x"\nmin = 0.0\nmax = 1.0\nstep = 1\nnoise = -1\n',
        '[[metrics]]\nname = "x"\nmin = 0.0\nmax = 1.0\n',
        "metrics = []\n",
        "seed = -1\n",
        "colour = 'blue'\n",
    ],
)
def test_bad_config_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)


# ---- hostile requests and limits (issue 11) ------------------------------------------------------------


def refused_json(resp, status: int) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)[:200]
    assert resp.is_json and resp.get_json()["error"]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        # What a foreign page's fetch(..., {mode: "no-cors"}) sends without a preflight.
        (
            {
                "data": '{"metric":"energy_price","kind":"spike","magnitude":3,"duration_s":20}',
                "content_type": "text/plain",
                "headers": {"Origin": "http://evil.example"},
            },
            403,
        ),
        ({"data": "metric=energy_price", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"json": GOOD, "headers": {"Origin": "http://evil.example"}}, 403),
        ({"json": GOOD, "headers": {"Host": "evil.example:5000"}}, 403),  # DNS rebinding
        ({"data": b"[" * 200_000, "content_type": "application/json"}, 413),
        ({"data": b"[" * 30_000 + b"]" * 30_000, "content_type": "application/json"}, 400),  # was a 500
        (
            {
                "data": b'{"metric":"energy_price","kind":"spike","magnitude":Infinity,"duration_s":20}',
                "content_type": "application/json",
            },
            400,
        ),
        ({"json": {**GOOD, "magnitude": 1e308}}, 400),
    ],
)
def test_hostile_or_oversized_injections_are_refused_in_json(
    client: FlaskClient, kwargs: dict, status: int
) -> None:
    refused_json(client.post("/anomalies", **kwargs), status)
    assert client.get("/anomalies").get_json() == {"anomalies": []}
    assert all(math.isfinite(v) for v in samples(client).values())


def test_a_foreign_page_cannot_end_an_anomaly(client: FlaskClient) -> None:
    made = inject(client, **GOOD).get_json()
    refused_json(client.delete(f"/anomalies/{made['id']}", headers={"Origin": "http://evil.example"}), 403)
    refused_json(client.delete(f"/anomalies/{made['id']}", headers={"Host": "evil.example"}), 403)
    assert [a["id"] for a in client.get("/anomalies").get_json()["anomalies"]] == [made["id"]]
    same_origin = {"Origin": "http://127.0.0.1:5000", "Host": "127.0.0.1:5000"}
    assert client.delete(f"/anomalies/{made['id']}", headers=same_origin).status_code == 204


def test_the_page_of_the_simulator_itself_and_an_allowed_host_may_inject(clock: FakeClock) -> None:
    c = create_app(SimulatorConfig(port=5000, allowed_hosts=["simulator"]), clock).test_client()
    own = {"Host": "127.0.0.1:5000", "Origin": "http://127.0.0.1:5000"}
    assert c.post("/anomalies", json=GOOD, headers=own).status_code == 201
    assert c.post("/anomalies", json=GOOD, headers={"Host": "simulator:5000"}).status_code == 201


def test_at_most_max_active_anomalies_then_429(clock: FakeClock) -> None:
    c = create_app(SimulatorConfig(max_active_anomalies=3), clock).test_client()
    for _ in range(3):
        assert inject(c, **GOOD).status_code == 201
    refused_json(inject(c, **GOOD), 429)
    assert len(c.get("/anomalies").get_json()["anomalies"]) == 3
    clock.advance(GOOD["duration_s"])  # they end: room again
    assert inject(c, **GOOD).status_code == 201


def test_the_default_limit_is_100_active_anomalies(client: FlaskClient) -> None:
    codes = [inject(client, **GOOD).status_code for _ in range(101)]
    assert codes == [201] * 100 + [429]


def test_the_largest_spikes_stacked_never_export_inf(client: FlaskClient) -> None:
    for _ in range(100):
        assert inject(client, **{**GOOD, "magnitude": 1000}).status_code == 201
    text = client.get("/metrics").get_data(as_text=True)
    assert "Inf" not in text and "NaN" not in text
    assert math.isfinite(price(client))

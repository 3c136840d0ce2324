"""`simulator.py serve --series N`: N different waves per metric, told apart by a `series` label."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from harness.services import assert_promtool_metrics_ok
from simulator.app import create_app
from simulator.config import SimulatorConfig
from streamwatch.clock import FakeClock

T0 = 1_700_000_000.0


def samples(client, name: str) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[s.labels.get("series", "")] = s.value
    return out


def test_one_series_is_served_without_a_series_label():
    clock = FakeClock(T0)
    text = create_app(SimulatorConfig(series=1), clock).test_client().get("/metrics").get_data(as_text=True)
    lines = [line for line in text.splitlines() if line.startswith("energy_price_metric")]
    assert len(lines) == 1 and "{" not in lines[0]


def test_a_fleet_is_n_different_waves_and_the_same_for_the_same_seed():
    clock = FakeClock(T0)
    a = create_app(SimulatorConfig(series=20, seed=3), clock).test_client()
    b = create_app(SimulatorConfig(series=20, seed=3), clock).test_client()
    over_time = []
    for _ in range(40):  # one energy_price period is 40 ticks
        first = samples(a, "energy_price_metric")
        assert first == samples(b, "energy_price_metric")
        over_time.append([first[str(i)] for i in range(20)])
        clock.advance(2.0)
    waves = np.array(over_time).T  # one row per series
    assert waves.shape == (20, 40)
    assert np.all((waves >= 10.0) & (waves <= 1000.0))
    # Not copies: the rows differ in where they peak (phase) and in how high (amplitude).
    assert len({int(np.argmax(row)) for row in waves}) > 5
    assert np.ptp(waves.max(axis=1)) > 100
    assert_promtool_metrics_ok(a.get("/metrics").get_data(as_text=True))


def test_injection_hits_one_series_or_all():
    clock = FakeClock(T0)
    client = create_app(SimulatorConfig(series=5), clock).test_client()
    before = samples(client, "energy_price_metric")
    resp = client.post(
        "/anomalies",
        json={"metric": "energy_price", "kind": "shift", "magnitude": 5000, "duration_s": 10, "series": 2},
    )
    assert resp.status_code == 201 and resp.get_json()["series"] == 2
    after = samples(client, "energy_price_metric")
    assert after["2"] == before["2"] + 5000
    assert all(after[k] == before[k] for k in before if k != "2")
    client.post(
        "/anomalies", json={"metric": "energy_price", "kind": "shift", "magnitude": 1, "duration_s": 10}
    )
    every = samples(client, "energy_price_metric")
    assert all(every[k] == after[k] + 1 for k in before)


def test_a_series_out_of_range_is_a_400_naming_the_field():
    client = create_app(SimulatorConfig(series=5), FakeClock(T0)).test_client()
    for bad in (5, -1, "1", True):
        resp = client.post(
            "/anomalies", json={"metric": "energy_price", "kind": "drop", "duration_s": 10, "series": bad}
        )
        assert resp.status_code == 400 and resp.get_json()["field"] == "series", bad


def test_churn_renames_the_first_series_each_period():
    clock = FakeClock(T0 - T0 % 60)
    client = create_app(SimulatorConfig(series=4, churn_every=60.0, churn_count=2), clock).test_client()
    first = set(samples(client, "energy_price_metric"))
    clock.advance(60.0)
    second = set(samples(client, "energy_price_metric"))
    assert len(first) == len(second) == 4
    assert first & second == {"2", "3"}  # the other two were replaced by new series

"""The anomaly core: every kind over the wave, expiry, ordering, validation, and the live set."""

from __future__ import annotations

import math

import pytest

from simulator.active import ActiveAnomalies, TooManyAnomalies
from simulator.anomalies import (
    KINDS,
    MAX_DURATION_S,
    MAX_SPIKE_FACTOR,
    Anomaly,
    AnomalyError,
    apply,
    apply_all,
    validate,
)
from simulator.config import default_metrics

CONSUMPTION, PRICE = default_metrics()
SPECS = {m.name: m for m in default_metrics()}
START = 1_700_000_000.0


def anomaly(
    kind: str, magnitude: float, duration_s: float = 20.0, start: float = START, aid: str = "a"
) -> Anomaly:
    return Anomaly(aid, "energy_price", kind, magnitude, start, duration_s)


def test_kinds_are_the_four_of_the_issue() -> None:
    assert set(KINDS) == {"spike", "shift", "drop", "drift"}


def test_spike_multiplies_shift_adds_drop_falls_to_min() -> None:
    assert apply(400.0, START + 1, anomaly("spike", 3.0), PRICE) == 1200.0
    assert apply(400.0, START + 1, anomaly("shift", 250.0), PRICE) == 650.0
    assert apply(400.0, START + 1, anomaly("shift", -150.0), PRICE) == 250.0
    assert apply(400.0, START + 1, anomaly("drop", 0.0), PRICE) == PRICE.min


def test_drift_ramps_up_to_its_magnitude_over_the_duration() -> None:
    drift = anomaly("drift", 100.0, duration_s=40.0)
    assert apply(400.0, START, drift, PRICE) == 400.0
    assert apply(400.0, START + 10, drift, PRICE) == 425.0
    assert apply(400.0, START + 30, drift, PRICE) == 475.0
    assert apply(400.0, START + 39.9, drift, PRICE) == pytest.approx(499.75)


def test_an_anomaly_acts_only_inside_its_window() -> None:
    spike = anomaly("spike", 3.0, duration_s=20.0)
    assert apply(400.0, START - 0.001, spike, PRICE) == 400.0
    assert apply(400.0, START, spike, PRICE) == 1200.0
    assert apply(400.0, START + 19.999, spike, PRICE) == 1200.0
    assert apply(400.0, START + 20.0, spike, PRICE) == 400.0
    assert spike.end == START + 20.0


def test_apply_all_uses_start_order_only_the_metrics_own_anomalies_and_floors_at_zero() -> None:
    shift = anomaly("shift", 100.0, start=START, aid="s")
    spike = anomaly("spike", 2.0, start=START + 1, aid="p")
    other = Anomaly("o", "energy_consumption", "drop", 0.0, START, 20.0)
    # (400 + 100) * 2, whatever order the list is in; the consumption drop does not touch the price.
    assert apply_all(400.0, START + 2, [spike, other, shift], PRICE) == 1000.0
    assert apply_all(400.0, START + 2, [anomaly("shift", -900.0)], PRICE) == 0.0


def test_validate_accepts_a_full_request_and_defaults_drop_magnitude() -> None:
    req = {"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": 20}
    assert validate(req, SPECS) == ("energy_price", "spike", 3.0, 20.0)
    assert validate({"metric": "energy_consumption", "kind": "drop", "duration_s": 5}, SPECS) == (
        "energy_consumption",
        "drop",
        0.0,
        5.0,
    )
    assert validate({**req, "kind": "shift", "magnitude": -50}, SPECS)[2] == -50.0


BAD = [
    ([], "body"),
    ({"kind": "spike", "magnitude": 3, "duration_s": 20}, "metric"),
    ({"metric": "energy_price", "magnitude": 3, "duration_s": 20}, "kind"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3}, "duration_s"),
    ({"metric": "energy_price", "kind": "spike", "duration_s": 20}, "magnitude"),
    ({"metric": "water", "kind": "spike", "magnitude": 3, "duration_s": 20}, "metric"),
    ({"metric": 7, "kind": "spike", "magnitude": 3, "duration_s": 20}, "metric"),
    ({"metric": "energy_price", "kind": "wobble", "magnitude": 3, "duration_s": 20}, "kind"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": -5}, "duration_s"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": 0}, "duration_s"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": "20"}, "duration_s"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": math.inf}, "duration_s"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": "big", "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": True, "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": -2, "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": 20, "when": 1}, "when"),
    # Finite but absurd: 1e308 was exported as +Inf; a century-long anomaly never ends.
    ({"metric": "energy_price", "kind": "spike", "magnitude": 1e308, "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 1000.5, "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "shift", "magnitude": -1e12, "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "drift", "magnitude": 1e308, "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": math.nan, "duration_s": 20}, "magnitude"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": 1e308}, "duration_s"),
    ({"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": 86_401}, "duration_s"),
]


@pytest.mark.parametrize(("request_body", "field"), BAD)
def test_validate_names_the_bad_field(request_body: object, field: str) -> None:
    with pytest.raises(AnomalyError) as err:
        validate(request_body, SPECS)
    assert err.value.field == field
    assert field in str(err.value) or field == "body"


def test_active_set_adds_removes_and_forgets_expired() -> None:
    live = ActiveAnomalies(limit=10)
    a = live.add("energy_price", "spike", 3.0, 10.0, now=START)
    b = live.add("energy_consumption", "drop", 0.0, 30.0, now=START + 1)
    assert a.id != b.id
    assert live.active(START + 5) == [a, b]
    assert live.active(START + 10) == [b]  # a ended at START + 10 exactly
    assert live.remove(b.id) == b
    assert live.remove(b.id) is None
    assert live.active(START + 11) == []


def test_the_largest_allowed_values_are_accepted() -> None:
    req = {
        "metric": "energy_price",
        "kind": "spike",
        "magnitude": MAX_SPIKE_FACTOR,
        "duration_s": MAX_DURATION_S,
    }
    assert validate(req, SPECS) == ("energy_price", "spike", MAX_SPIKE_FACTOR, MAX_DURATION_S)
    span = PRICE.max - PRICE.min
    assert validate({**req, "kind": "shift", "magnitude": -1000 * span}, SPECS)[2] == -1000 * span


def test_stacked_spikes_clamp_to_a_finite_value_never_inf_or_nan() -> None:
    spikes = [anomaly("spike", MAX_SPIKE_FACTOR, aid=str(i), start=START + i * 1e-3) for i in range(120)]
    value = apply_all(900.0, START + 1, spikes, PRICE)
    assert math.isfinite(value) and value > 1e300
    # A later x0 spike on top of the overflowed product: 0, not inf * 0 = NaN.
    zero = anomaly("spike", 0.0, aid="z", start=START + 0.5)
    assert apply_all(900.0, START + 1, [*spikes, zero], PRICE) == 0.0


def test_the_active_set_refuses_past_its_limit_until_one_ends() -> None:
    live = ActiveAnomalies(limit=2)
    first = live.add("energy_price", "spike", 3.0, 10.0, now=START)
    live.add("energy_price", "spike", 3.0, 60.0, now=START)
    with pytest.raises(TooManyAnomalies, match="2 anomalies are already active"):
        live.add("energy_price", "spike", 3.0, 60.0, now=START + 1)
    live.remove(first.id)
    live.add("energy_price", "spike", 3.0, 60.0, now=START + 1)
    with pytest.raises(TooManyAnomalies):
        live.add("energy_price", "spike", 3.0, 60.0, now=START + 2)
    live.add("energy_price", "drop", 0.0, 5.0, now=START + 60.5)  # the first 60 s one ended: room again
    assert len(live.active(START + 60.5)) == 2

"""The pure wave: bounds, step, period, phase fixed by absolute time, noise spread, seed determinism."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import wave
from simulator.config import MetricSpec, SimulatorConfig, default_metrics

T0 = 1_700_000_000.0  # on the 2 s grid
CONSUMPTION, PRICE = default_metrics()


def clean_series(spec: MetricSpec, ticks: int, start: float = T0) -> np.ndarray:
    return np.array([wave.clean_value(spec, start + 2.0 * i) for i in range(ticks)])


@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
def test_clean_wave_spans_exactly_min_to_max(spec: MetricSpec) -> None:
    clean = clean_series(spec, 3 * wave.period_ticks(spec))
    assert clean.min() == spec.min
    assert clean.max() == spec.max


@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
def test_noisy_values_stay_inside_the_bounds(spec: MetricSpec) -> None:
    ts = T0 + 2.0 * np.arange(2000)
    vs = wave.values(spec, ts, seed=7)
    assert vs.min() >= spec.min and vs.max() <= spec.max
    # Noise really is there: not every value is the clean one.
    assert np.mean(vs != np.array([wave.clean_value(spec, t) for t in ts])) > 0.5


def test_each_tick_moves_by_one_step_except_where_max_clips() -> None:
    clean = clean_series(CONSUMPTION, 2 * wave.period_ticks(CONSUMPTION))
    diffs = np.abs(np.diff(clean))
    # 1 + 25 * 20 = 501 is clipped to 500, so the steps touching the top are 19 instead of 20.
    assert set(np.round(diffs, 9)) == {20.0, 19.0}
    assert np.sum(diffs == 19.0) == 4  # into and out of the peak, twice


def test_price_steps_and_clipped_top() -> None:
    # energy_price: n = ceil(990 / 50) = 20; 10 + 20 * 50 = 1010 is clipped to 1000.
    clean = clean_series(PRICE, 80)
    diffs = set(np.round(np.abs(np.diff(clean)), 9))
    assert diffs == {50.0, 40.0}


def test_periods_match_the_measured_ones() -> None:
    assert wave.steps_each_way(CONSUMPTION) == 25
    assert wave.period_ticks(CONSUMPTION) == 50
    assert wave.period_s(CONSUMPTION) == 100.0
    assert wave.steps_each_way(PRICE) == 20
    assert wave.period_s(PRICE) == 80.0
    assert wave.period_s(PRICE, tick_s=1.0) == 40.0


@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
def test_period_is_the_smallest_repeat(spec: MetricSpec) -> None:
    p = wave.period_ticks(spec)
    clean = clean_series(spec, 3 * p)
    assert np.array_equal(clean[:p], clean[p : 2 * p])
    for lag in range(1, p):
        assert not np.array_equal(clean[:p], clean[lag : lag + p]), lag


def test_phase_depends_only_on_absolute_time() -> None:
    # A tick starts at a multiple of tick_s since the epoch; the epoch itself is the wave's minimum.
    assert wave.clean_value(PRICE, 0.0) == PRICE.min
    period = wave.period_s(PRICE)
    base = 1_234_560 * period
    assert wave.clean_value(PRICE, base) == PRICE.min
    assert wave.clean_value(PRICE, base + 2.0) == PRICE.min + PRICE.step
    assert wave.clean_value(PRICE, base + period / 2) == PRICE.max
    # Within one tick every read (every scrape) sees the same value, noise included.
    assert wave.value(PRICE, base + 4.0, seed=3) == wave.value(PRICE, base + 5.999, seed=3)
    # Two "simulators" started at different times agree on the value at the same instant.
    a = wave.values(PRICE, T0 + 2.0 * np.arange(100), seed=1)
    b = wave.values(PRICE, T0 + 50.0 + 2.0 * np.arange(100), seed=1)
    assert np.array_equal(a[25:], b[:75])


def test_noise_has_the_configured_spread() -> None:
    # A wide range keeps values far from the clipping bounds, so the noise shows undistorted.
    spec = MetricSpec("wide", min=0.0, max=10_000.0, step=1.0, noise=0.01)
    ts = T0 + 2.0 * np.arange(4000)
    clean = np.array([wave.clean_value(spec, t) for t in ts])
    residual = wave.values(spec, ts, seed=11) - clean
    assert spec.sigma == 100.0
    assert abs(residual.mean()) < 0.1 * spec.sigma
    assert 0.95 * spec.sigma < residual.std() < 1.05 * spec.sigma
    assert np.abs(residual).max() < 5 * spec.sigma


def test_default_noise_is_two_percent_of_the_range_and_zero_means_clean() -> None:
    assert PRICE.sigma == pytest.approx(0.02 * 990.0)
    quiet = MetricSpec("quiet", min=1.0, max=500.0, step=20.0, noise=0.0)
    ts = T0 + 2.0 * np.arange(100)
    assert np.array_equal(wave.values(quiet, ts, seed=5), clean_series(quiet, 100))


def test_same_seed_same_values_other_seed_or_name_other_noise() -> None:
    ts = T0 + 2.0 * np.arange(500)
    first = wave.values(PRICE, ts, seed=42)
    assert np.array_equal(first, wave.values(PRICE, ts, seed=42))
    assert not np.array_equal(first, wave.values(PRICE, ts, seed=43))
    twin = MetricSpec("energy_price_twin", PRICE.min, PRICE.max, PRICE.step, PRICE.noise)
    assert not np.array_equal(first, wave.values(twin, ts, seed=42))
    ticks = [wave.tick_of(t) for t in ts]
    draws = [wave.standard_noise(42, "energy_price", k) for k in ticks]
    assert draws == [wave.standard_noise(42, "energy_price", k) for k in ticks]


def test_default_config_is_the_original_design() -> None:
    cfg = SimulatorConfig()
    assert (cfg.host, cfg.port, cfg.seed, cfg.tick_s) == ("127.0.0.1", 5000, 0, 2.0)
    assert [(m.name, m.min, m.max, m.step) for m in cfg.metrics] == [
        ("energy_consumption", 1.0, 500.0, 20.0),
        ("energy_price", 10.0, 1000.0, 50.0),
    ]

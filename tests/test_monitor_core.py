"""Period detection, the Prophet band's profile, the model store and calibration."""

from __future__ import annotations

import errno
import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest

from harness.waves import CONSUMPTION, PRICE, WAVES, grid
from monitor import forecast, modelstore
from monitor.config import MonitorConfig
from monitor.detectors import registry
from monitor.detectors.base import Detector
from monitor.detectors.prophet import ModelStore, Profile, ProfileBand, ProphetParams, profile_of
from monitor.period import NoSeasonError, PeriodError, detect_period, find_season, sampling_step
from simulator import wave
from simulator.config import default_metrics
from streamwatch.errors import ConfigError

START = 1_763_900_000.0
SPECS = {s.name: s for s in default_metrics()}


# --- period ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("w", WAVES, ids=lambda w: w.name)
def test_period_of_each_simulator_metric_is_within_5_percent_and_exact(w):
    spec = SPECS[w.name]
    ts = grid(START, 3600)
    found = detect_period(ts, wave.values(spec, ts))
    true = wave.period_s(spec)
    assert abs(found - true) / true < 0.05
    # A period a fraction of a second off drifts out of phase within a day: it must come out exact.
    assert found == true


@pytest.mark.parametrize("offset", [0.0, 1.0, 0.37])
@pytest.mark.parametrize("w", WAVES, ids=lambda w: w.name)
def test_period_is_exact_whatever_the_sampling_phase_and_noise(w, offset):
    for seed in range(3):
        ts = grid(START + offset, 1800)
        assert detect_period(ts, w.noisy(ts, seed)) == w.period_s


def test_a_truly_fractional_period_is_not_rounded_to_whole_steps():
    ts = grid(START, 6 * 3600)
    vs = 100 * np.sin(2 * np.pi * ts / 100.3) + np.random.default_rng(1).normal(0, 5, ts.size)
    assert detect_period(ts, vs) == pytest.approx(100.3, abs=0.01)


def test_scrape_jitter_does_not_leak_into_the_step_or_the_period():
    ts = grid(START, 3600, 1.0) + np.random.default_rng(2).uniform(-0.003, 0.003, 3600)
    assert sampling_step(ts) == 1.0
    assert detect_period(ts, PRICE.noisy(ts)) == 80.0


@pytest.mark.parametrize(
    "vs", [np.full(300, 7.0), np.linspace(0, 10, 300)], ids=["constant", "straight line"]
)
def test_data_without_a_period_is_refused(vs):
    with pytest.raises(PeriodError):
        detect_period(grid(START, 600), vs)


@pytest.mark.parametrize("n", [200, 1800, 10_000])
def test_white_noise_has_no_season_rather_than_an_invented_one(n: int):
    for seed in range(5):
        ts = grid(START, 2.0 * n)
        vs = np.random.default_rng(seed).normal(100.0, 10.0, ts.size)
        with pytest.raises(NoSeasonError, match="no significant season"):
            detect_period(ts, vs)
        assert find_season(ts, vs) is None
    ts = grid(START, 2.0 * n)
    assert find_season(ts, PRICE.noisy(ts)) == PRICE.period_s  # the waves keep theirs


def test_less_than_two_periods_is_refused():
    ts = grid(START, 150)  # 1.5 periods of consumption
    with pytest.raises(PeriodError):
        detect_period(ts, CONSUMPTION.clean(ts))


# --- band --------------------------------------------------------------------------------------------


def test_profile_lookup_takes_the_grid_value_at_or_before_each_sample_every_period():
    values = np.sin(2 * np.pi * np.arange(512) / 512) * 10 + 50  # a 100 s period, sampled every 2 s
    profile = Profile(100.0, START, values, 3.0, step=2.0)
    d = ProfileBand.of(profile)
    ts = np.array([START, START + 1.9, START + 2.0, START + 3.0, START + 1.995, START + 1e6 + 4.0])
    s = d.update_many(np.zeros(ts.size), ts)
    # Held at the training grid's sample at or before (within 1% of a step: the next), a million s on too.
    want = profile.expected(START + np.array([0.0, 0.0, 2.0, 2.0, 2.0, 4.0]))
    np.testing.assert_allclose(s.expected, want)
    np.testing.assert_allclose(s.upper - s.expected, 3.0)
    np.testing.assert_allclose(profile.expected(ts), want)
    assert want[1] == values[0] and want[2] != want[0]


def test_the_profile_of_a_fit_is_its_forecast_on_the_training_phases(fitted_price):
    ts, _, fitted = fitted_price
    profile = profile_of(fitted)
    assert profile.step == fitted.step and profile.half_width == pytest.approx(fitted.k * fitted.sigma)
    later = ts[-1] + grid(0, 3 * 3600)  # hours on, at the training samples' phases
    got = ProfileBand.of(profile).score_many(np.zeros(later.size), later).expected
    # Prophet's own forecast hours later, against its one period interpolated on 512 values: within a
    # thousandth of the band's half-width.
    want = forecast.predict_expected(fitted.model, later)
    assert np.max(np.abs(got - want)) < 1e-3 * profile.half_width


# --- the detector, the model store and calibration ----------------------------------------------------


@pytest.fixture(scope="module")
def fitted_price() -> tuple[np.ndarray, np.ndarray, forecast.FittedModel]:
    ts = grid(START, 3600)
    vs = wave.values(SPECS["energy_price"], ts)
    return ts, vs, forecast.fit(ts, vs, detect_period(ts, vs), sampling_step(ts))


def test_prophet_band_is_a_detector_with_the_common_score(fitted_price):
    ts, _, fitted = fitted_price
    det = ProfileBand.of(profile_of(fitted))
    assert isinstance(det, Detector)
    t = float(ts[-1]) + 10.0
    one = det.score_one(500.0, t)
    assert one.lower < one.expected < one.upper
    assert one.upper - one.expected == pytest.approx(4 * fitted.sigma)
    outside = det.update_one(one.upper + 1.0, t)
    assert outside.anomalous and outside.score > 1.0
    many = det.update_many(np.array([one.expected, one.upper + 1.0]), np.array([t, t]))
    assert list(many.anomalous) == [False, True]


def test_model_store_round_trip_gives_the_same_band(tmp_path: Path, fitted_price):
    ts, vs, fitted = fitted_price
    path = modelstore.model_path(tmp_path, "energy_price", modelstore.model_key(ts, vs, {"k": 4.0}))
    modelstore.save(path, fitted)
    loaded = modelstore.load(path)
    assert loaded is not None
    a, b = profile_of(fitted), profile_of(loaded)
    np.testing.assert_allclose(a.values, b.values)
    assert (a.period, a.anchor, a.half_width, a.step) == (b.period, b.anchor, b.half_width, b.step)
    assert (loaded.period, loaded.sigma, loaded.step) == (fitted.period, fitted.sigma, fitted.step)


def test_model_key_changes_with_the_data_and_the_settings():
    ts = grid(START, 100)
    vs = np.arange(ts.size, dtype=float)
    key = modelstore.model_key(ts, vs, {"k": 4.0})
    assert key == modelstore.model_key(ts.copy(), vs.copy(), {"k": 4.0})
    assert key != modelstore.model_key(ts, vs + 1, {"k": 4.0})
    assert key != modelstore.model_key(ts, vs, {"k": 5.0})


def test_a_damaged_model_file_means_fit_again(tmp_path: Path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    assert modelstore.load(path) is None
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert modelstore.load(path) is None


def test_build_loads_instead_of_fitting_the_second_time(tmp_path: Path):
    ts = grid(START, 1800)
    vs = CONSUMPTION.noisy(ts)
    store = ModelStore(tmp_path, "energy_consumption")
    first = registry.build("prophet", {}, ts, vs, store=store)
    second = registry.build("prophet", {}, ts, vs, store=store)
    assert isinstance(first, ProfileBand) and isinstance(second, ProfileBand)
    assert (first.loaded, second.loaded) == (False, True)
    assert len(list(tmp_path.glob("energy_consumption-*.json"))) == 1
    probe = ts[-1] + grid(0, 300)
    zeros = np.zeros(probe.size)
    a, b = first.score_many(zeros, probe), second.score_many(zeros, probe)
    np.testing.assert_allclose(a.expected, b.expected)


def test_a_model_save_that_fails_is_one_error_line_and_the_model_stays_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def disk_full(path: object, text: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(modelstore, "atomic_write_text", disk_full)
    ts = grid(START, 1800)
    failures: list[str] = []
    store = ModelStore(tmp_path, "energy_consumption", on_save_error=lambda: failures.append("x"))
    with caplog.at_level(logging.ERROR, logger="monitor"):
        det = registry.build("prophet", {}, ts, CONSUMPTION.noisy(ts), store=store)
    assert failures == ["x"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "in memory" in errors[0]
    assert list(tmp_path.iterdir()) == []
    probe = ts[-1] + grid(0, 60)
    assert not det.update_many(CONSUMPTION.clean(probe), probe).anomalous.any()


def test_the_monitors_prophet_band_honours_direction_and_min_deviation(tmp_path: Path):
    ts = grid(START, 1800)
    vs = CONSUMPTION.noisy(ts)
    store = ModelStore(tmp_path, "energy_consumption")
    both = registry.build("prophet", {}, ts, vs, store=store)
    above = registry.build("prophet", registry.parse_params(["direction=above"]), ts, vs, store=store)
    assert isinstance(both, ProfileBand)
    probe = ts[-1] + grid(0, 60)
    expected = both.score_many(np.zeros(probe.size), probe).expected
    drop = expected - 200.0  # far below the band: only a both-sides band flags it
    assert np.all(both.score_many(drop, probe).score > 1)
    assert np.all(above.score_many(drop, probe).score == 0)
    assert np.all(above.score_many(expected + 200.0, probe).score > 1)
    # A floor wider than the deviation silences it.
    quiet = registry.build("prophet", {"min_deviation": "300"}, ts, vs, store=store)
    assert np.all(quiet.score_many(drop, probe).score < 1)


def test_prophet_parameters_from_the_command_line_are_checked():
    def from_cli(*pairs: str) -> object:
        return registry.make_params("prophet", registry.parse_params(pairs))

    assert from_cli("direction=below", "min_deviation=2.5", "k=5") == ProphetParams(
        direction="below", min_deviation=2.5, k=5.0
    )
    assert (
        ProphetParams().k == MonitorConfig().k
        and ProphetParams().fourier_order == MonitorConfig().fourier_order
    )
    with pytest.raises(ConfigError, match="unknown key 'window'"):
        from_cli("window=10")
    with pytest.raises(ConfigError, match="'direction' must be one of"):
        from_cli("direction=up")
    with pytest.raises(ConfigError, match="'fourier_order' must be an integer"):
        from_cli("fourier_order=many")
    with pytest.raises(ConfigError, match="fourier_order must be between 1 and 100"):
        from_cli("fourier_order=100000")


@pytest.mark.parametrize("given", ["tiny", "one step", "just short", "just long", "huge"])
def test_a_given_period_must_fit_the_training_data(tmp_path: Path, given: str):
    ts = grid(START, 400)
    lo, hi = 2 * sampling_step(ts), (ts[-1] - ts[0]) / 2  # two steps .. half the span
    period = {
        "tiny": 0.001,
        "one step": lo / 2,
        "just short": lo - 0.01,
        "just long": hi + 0.01,
        "huge": 1e12,
    }
    with pytest.raises(PeriodError, match=rf"from {lo:g} s \(two sampling steps\) to {hi:g} s \(half"):
        registry.build("prophet", {"period": period[given]}, ts, PRICE.noisy(ts))


def test_a_given_period_at_either_end_of_the_range_is_accepted():
    from monitor.period import check_period

    ts = grid(START, 400)
    for period in (2 * sampling_step(ts), (ts[-1] - ts[0]) / 2):
        check_period(period, ts)


@pytest.mark.parametrize("name", ["energy_consumption", "energy_price"])
def test_calibration_on_the_simulator_wave(name):
    """Under 1% flagged on clean data; a quarter-range shift, up or down, always flagged (3 h span)."""
    spec = SPECS[name]
    train_ts = grid(START, 3600)
    det = registry.build("prophet", {}, train_ts, wave.values(spec, train_ts))
    ts = grid(START + 3600, 3 * 3600, 1.0) + 0.25  # scraped at another rate and phase than the training
    clean = wave.values(spec, ts, seed=7)
    assert det.update_many(clean, ts).anomalous.mean() < 0.01
    quarter = (spec.max - spec.min) / 4
    assert det.update_many(clean + quarter, ts).anomalous.all()
    assert det.update_many(clean - quarter, ts).anomalous.all()


@pytest.mark.parametrize("name", ["energy_consumption", "energy_price"])
def test_the_shipped_training_file_still_fits_the_live_wave_today(name):
    """datasets/*.json were made months ago; an exact period keeps the model in phase with today."""
    import time

    from monitor.loader import load_training

    root = Path(__file__).resolve().parent.parent
    training = load_training(root / "datasets" / f"{name}_train.json")
    det = registry.build("prophet", {}, training.timestamps, training.values)
    ts = grid(math.floor(time.time()), 1800, 1.0)
    assert det.update_many(wave.values(SPECS[name], ts), ts).anomalous.mean() < 0.01

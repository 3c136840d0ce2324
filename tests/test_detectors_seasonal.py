"""The seasonal baseline: its learner on hand-computed cases, its warm-up, and the simulator's waves."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from monitor.detectors.registry import create
from monitor.detectors.seasonal import SeasonalDetector, SeasonalParams
from simulator import anomalies, wave
from simulator.config import default_metrics
from streamwatch.errors import ConfigError

T0 = 1_767_225_600.0


def test_first_period_gives_level_and_offsets_by_hand() -> None:
    # A 4 s period at 1 s steps; the warm-up's 8 samples (two periods) are replayed once the step is known.
    ts = np.arange(48.0)
    xs = 5.0 + np.tile([0.0, 10.0, 0.0, -10.0], 12)
    d = SeasonalDetector(SeasonalParams(period=4.0, warmup=8))
    s = d.update_many(xs, ts)
    st = d.state
    assert st["bins"][0] == 4 and st["anchor"][0] == 0.0
    # First period: each bin the mean of its one sample; then level 5 and offsets 0, 10, 0, -10.
    assert st["level"][0] == 5.0 and st["profile"][0, :4].tolist() == [0.0, 10.0, 0.0, -10.0]
    # A perfect fit leaves no residual: the spread is the floor, and every value is as expected.
    assert st["spread"][0] < 1e-8 and s.expected[-4:].tolist() == [5.0, 15.0, 5.0, -5.0]
    # It scores once it has the warm-up, two periods and 30 residuals (from the second period on).
    assert np.isnan(s.expected[:33]).all() and not np.isnan(s.expected[34:]).any()
    assert s.score.tolist() == [0.0] * 48 and not d.warming()[0]
    assert SeasonalDetector(SeasonalParams(period=4.0, warmup=8), rows=2).warming().tolist() == [True, True]


def test_between_bins_the_profile_is_interpolated_and_both_bins_learn() -> None:
    d = SeasonalDetector(SeasonalParams(period=4.0, warmup=8, max_bins=2))
    ts = np.arange(1000.0)
    xs = np.tile([1.0, 2.0, 3.0, 2.0], 250)  # bins at phases 0 and 2 (1 and 3); phases 1 and 3 between
    s = d.update_many(xs, ts)
    assert d.state["bins"][0] == 2
    # Phases 1 and 3 sit half-way between the bins, and learn into both: the wave is met exactly.
    assert d.state["profile"][0, :2] == pytest.approx([-1.0, 1.0], abs=0.01)
    assert d.state["level"][0] == pytest.approx(2.0, abs=0.01)
    assert s.expected[-4:] == pytest.approx([1.0, 2.0, 3.0, 2.0], abs=0.02)


def noisy_seasonal(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + 2.0 * np.arange(n)
    xs = 50 + 0.002 * np.arange(n) + 20 * np.sin(2 * np.pi * ts / 60.0) + rng.normal(0, 2, n)
    xs[rng.choice(n, 20, replace=False)] += 40.0
    return ts, xs


@pytest.mark.parametrize(
    "params",
    [
        SeasonalParams(warmup=300, memory=700),  # period detected
        SeasonalParams(period=60.0, warmup=100, memory=333, direction="above"),
        SeasonalParams(warmup=100, max_bins=7, profile_memory=2),
    ],
)
def test_streaming_batches_and_rows_agree(params: SeasonalParams) -> None:
    ts, xs = noisy_seasonal(2500)
    xs[[1000, 2400]] = np.nan
    xs[2000] = np.inf
    whole = SeasonalDetector(params).update_many(xs, ts)
    one = SeasonalDetector(params)
    each = [one.update_one(float(x), float(t)) for x, t in zip(xs, ts, strict=True)]
    assert np.allclose([e.expected for e in each], whole.expected, rtol=1e-12, equal_nan=True)
    assert np.allclose([e.score for e in each], whole.score, rtol=1e-9, equal_nan=True)
    assert whole.anomalous.sum() > 0 and np.isinf(whole.score[2000])
    split = SeasonalDetector(params)
    cuts = (0, 1, 99, 100, 101, 1777, 2499, 2500)
    parts = [split.update_many(xs[a:b], ts[a:b]) for a, b in itertools.pairwise(cuts)]
    assert np.allclose(np.concatenate([p.score for p in parts]), whole.score, rtol=1e-9, equal_nan=True)
    # Beside another series that starts later, in one matrix: the same scores.
    rows = SeasonalDetector(params, rows=2)
    x2 = np.vstack([xs, np.concatenate([np.full(500, np.nan), xs[:-500]])])
    t2 = np.vstack([ts, ts])
    assert np.allclose(rows.update(x2, t2).score[0], whole.score, rtol=1e-9, equal_nan=True)


def test_period_is_found_once_and_kept() -> None:
    ts, xs = noisy_seasonal(3000)
    d = SeasonalDetector(SeasonalParams(warmup=300))
    d.update_many(xs, ts)
    assert d.state["period"][0] == pytest.approx(60.0, abs=0.5) and d.state["bins"][0] == 30


def test_no_season_gives_a_flat_model_then_finds_one() -> None:
    ts = T0 + np.arange(2000.0)
    ramp = 100 + 0.01 * np.arange(1000.0)  # nothing left once detrended: monitor.period finds no period
    seasonal = 110 + 5 * np.sin(2 * np.pi * ts[1000:] / 50.0)
    d = SeasonalDetector(SeasonalParams(warmup=200))
    d.update_many(ramp, ts[:1000])
    assert d.state["period"][0] == 0.0  # flat: the warm-up's median, then a slow level
    assert d.state["level"][0] == pytest.approx(np.median(ramp[:200]), abs=5.0)
    d.update_many(seasonal, ts[1000:])  # detection is tried again every `warmup` samples
    assert d.state["period"][0] == pytest.approx(50.0, abs=1.0)


def test_registry_builds_it_from_strings() -> None:
    d = create("seasonal", {"period": "100", "k": "5"}, rows=3)
    assert isinstance(d, SeasonalDetector) and d.p.period == 100.0 and d.p.k == 5.0 and d.rows == 3
    with pytest.raises(ConfigError):
        create("seasonal", {"warmup": "4"})
    with pytest.raises(ConfigError):
        create("seasonal", {"refit_every": "100"})  # the refitting design's parameter is gone


def inject(spec: wave.MetricSpec, ts: np.ndarray, clean: np.ndarray, a: anomalies.Anomaly) -> np.ndarray:
    return np.array(
        [anomalies.apply_all(float(v), float(t), [a], spec) for v, t in zip(clean, ts, strict=True)]
    )


@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("kind", "size", "duration"),
    [
        ("spike", 3.0, 10.0),
        ("shift", 0.3, 200.0),
        ("shift", -0.3, 200.0),
        ("drop", 0.0, 60.0),
        ("drift", 0.5, 900.0),
    ],
)
def test_catches_each_injection_kind_on_the_waves(
    spec: wave.MetricSpec, kind: str, size: float, duration: float
) -> None:
    """Default settings, the simulator's own waves and sizes (simulator.labelled's plans)."""
    ts = T0 + 2.0 * np.arange(5400)  # three hours at the 2 s tick
    clean = wave.values(spec, ts, seed=1)
    magnitude = size * (spec.max - spec.min) if kind in ("shift", "drift") else size
    a = anomalies.Anomaly("a", spec.name, kind, magnitude, float(ts[3000]), duration)
    s = SeasonalDetector().update_many(inject(spec, ts, clean, a), ts)
    during = (ts >= a.start) & (ts <= a.end + 30.0)
    assert s.anomalous[during].any()
    assert not s.anomalous[ts < a.start].any()


@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
def test_clean_six_hours_raise_no_alarm(spec: wave.MetricSpec) -> None:
    ts = T0 + 2.0 * np.arange(10_800)
    s = SeasonalDetector().update_many(wave.values(spec, ts, seed=1), ts)
    assert not s.anomalous.any()
    assert s.score[700:].max() > 0.3  # scored all along, not silent

"""The adaptive detector: its parts on hand-computed examples, the simulator's anomalies, and NAB."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from monitor.detectors import adaptive
from monitor.detectors.adaptive import Adaptive, AdaptiveParams
from monitor.evaluate import evaluate
from simulator import anomalies, wave
from simulator.config import default_metrics

T0 = 1_767_225_600.0
# NAB standard scores on the shared part, as reported in docs/adaptive-detector.md (minus one point below).
NAB_BEST = 64.8
NAB_LIVE = 61.4


def nab_root() -> Path | None:
    """The shared NAB part: ``shared/datasets/nab`` beside the checkout or beside one of its parents."""
    for parent in Path(__file__).resolve().parents[1:]:
        cand = parent / "shared" / "datasets" / "nab"
        if (cand / "data").is_dir():
            return cand
    return None


# -- components ---------------------------------------------------------------------------------------


def test_shape_days_must_cover_a_period() -> None:
    with pytest.raises(ValueError, match="shape_days"):
        AdaptiveParams(shape_days=0)
    d = Adaptive(AdaptiveParams(bins=4, shape_days=3))
    assert len(d.shape) == 12 and len(d.bin_peak) == 4  # the shape's bins, the time of day's peaks


def test_phase_bin() -> None:
    assert adaptive.phase_bin(3600.0, 86400.0, 48) == 2  # 01:00 is the third half hour
    assert adaptive.phase_bin(86400.0 + 1799.0, 86400.0, 48) == 0
    assert adaptive.phase_bin(-1.0, 86400.0, 48) == 47  # the last second before midnight


def test_scale_is_a_mean_then_an_exponential_average() -> None:
    assert adaptive._scale_series(np.array([2.0, 4.0, 6.0]), 0, 0.0).tolist() == [2.0, 3.0, 4.0]
    # The 100th error still has weight 1/100 (a mean of 100), the 101st the fixed 0.01.
    out = adaptive._scale_series(np.array([101.0, 2.0]), 99, 1.0)
    assert out[0] == pytest.approx(2.0)
    assert out[1] == pytest.approx(2.0)
    assert adaptive._scale_series(np.array([202.0]), 100, 2.0)[0] == pytest.approx(2.0 + 0.01 * 200)


def test_ema() -> None:
    assert adaptive._ema(np.array([1.0, 1.0]), 0.5, 0.0).tolist() == pytest.approx([0.5, 0.75])


def test_decaying_max() -> None:
    z = np.array([1.0, 0.0, 3.0, 0.0])
    every = np.ones(4, dtype=bool)
    assert adaptive._decaying_max_all(z, every, 0.0, 0.5).tolist() == pytest.approx([1.0, 0.5, 3.0, 1.5])
    assert adaptive._decaying_max_all(z, every, 4.0, 0.5).tolist() == pytest.approx([2.0, 1.0, 3.0, 1.5])
    late = np.array([False, True, True, True])  # unchanged until the first eligible point
    assert adaptive._decaying_max_all(z, late, 4.0, 0.5).tolist() == pytest.approx([4.0, 2.0, 3.0, 1.5])


def test_find_period() -> None:
    tri = np.tile(np.concatenate((np.arange(10.0), np.arange(10.0, 0.0, -1.0))), 15)  # period 20
    assert adaptive.find_period(tri) == 20
    assert adaptive.find_period(np.arange(300.0)) == 0  # a trend's autocorrelation only falls
    assert adaptive.find_period(np.ones(300)) == 0
    noise = np.random.default_rng(0).normal(0.0, 1.0, 300)
    assert adaptive.find_period(noise) == 0
    assert adaptive.find_period(tri[:50]) == 0  # fewer than three repeats


def test_period_profile_by_hand() -> None:
    profile, errs = adaptive.period_profile([1.0, 2.0, 3.0, 4.0, 1.0, 4.0], 2, 0.5)
    # Phase 0 sees 1, 3, 1: means 1 -> 2 -> 1.5; phase 1 sees 2, 4, 4: 2 -> 3 -> 3.5.
    assert profile == [1.5, 3.5]
    assert errs.tolist() == [2.0, 2.0, 1.0, 1.0]


def test_range_score() -> None:
    p = AdaptiveParams(range_margin=0.1)
    assert adaptive.range_score(p, 12.0, 0.0, 10.0) == pytest.approx(2.0)  # 2 past, margin 1
    assert adaptive.range_score(p, -0.5, 0.0, 10.0) == pytest.approx(0.5)
    assert adaptive.range_score(p, 5.0, 0.0, 10.0) == 0.0
    assert adaptive.range_score(p, 12.0, 3.0, 3.0) == 0.0  # no range yet
    assert adaptive.range_score(AdaptiveParams(range_margin=0.1, direction="below"), 12.0, 0.0, 10.0) == 0.0
    assert adaptive.range_score(AdaptiveParams(range_margin=0.0), 99.0, 0.0, 10.0) == 0.0
    vec = adaptive.range_scores(p, np.array([12.0, -0.5, 5.0]), np.zeros(3), np.full(3, 10.0))
    assert vec.tolist() == pytest.approx([2.0, 0.5, 0.0])


def test_drift_score_keeps_the_allowed_side() -> None:
    both = AdaptiveParams(margin=2.0)
    assert adaptive.drift_score(both, 6.0, -1.0, 1.5) == pytest.approx(2.0)  # 6 / (2 * 1.5)
    assert adaptive.drift_score(both, 6.0, 1.0, 0.0) == 0.0  # no peak yet
    assert adaptive.drift_score(AdaptiveParams(direction="above"), 6.0, -1.0, 1.5) == 0.0
    assert adaptive.drift_score(AdaptiveParams(direction="below"), 6.0, -1.0, 1.5) > 0


def test_step_surprise_and_band_by_hand() -> None:
    """Steps of exactly 1 (scale 1, peak 1 by the end of the warm-up): a step of 3 scores 3 / 1.3."""
    x = np.arange(150, dtype=np.float64)
    d = Adaptive(AdaptiveParams(warmup=150, period_s=1e9, min_surprise=0.0, range_margin=0.0))
    d.update_many(x, np.arange(150.0))
    assert d.step_scale == pytest.approx(1.0) and d.peak == pytest.approx(1.0)
    s = d.score_one(149.0 + 3.0, 150.0)
    assert s.expected == 149.0 and s.upper == pytest.approx(149.0 + 1.3)
    assert s.score == pytest.approx(3.0 / 1.3)
    # The threshold is never below min_surprise typical errors: the band is 4 steps wide, not 1.3.
    d = Adaptive(AdaptiveParams(warmup=150, period_s=1e9, min_surprise=4.0, range_margin=0.0))
    d.update_many(x, np.arange(150.0))
    s = d.score_one(149.0 + 3.0, 150.0)
    assert s.upper == pytest.approx(149.0 + 4.0) and s.score == pytest.approx(3.0 / 4.0)


def test_seasonal_profile_explains_a_daily_jump() -> None:
    """A square wave (10 by day, 20 by night) with noise: its jumps are large steps but on the profile;
    the same jump at the wrong time of day is an anomaly."""
    rng = np.random.default_rng(5)
    ts = T0 + 1800.0 * np.arange(48 * 8)
    x = np.where((ts % 86400) < 43200, 10.0, 20.0) + rng.normal(0.0, 0.1, ts.size)
    x[48 * 6 + 6 : 48 * 6 + 12] += 10.0  # 03:00 to 06:00 on day 7, at the night's level
    s = Adaptive(AdaptiveParams(warmup=150, margin=3.0)).update_many(x, ts)
    assert np.flatnonzero(s.anomalous).tolist() == [48 * 6 + 6]
    assert s.expected[48 * 7] == pytest.approx(10.0, abs=0.5)  # the profile's value at midnight


def test_season_score_by_hand() -> None:
    p = AdaptiveParams(season_margin=2.0, min_surprise=4.0)
    assert adaptive.season_score(p, 12.0, -1.0, 3.0) == pytest.approx(2.0)  # 12 / (2 * 3)
    assert adaptive.season_score(p, 12.0, 1.0, 1.0) == pytest.approx(3.0)  # 12 / 4: min_surprise
    assert adaptive.season_score(p, 12.0, 1.0, 0.0) == 0.0  # no peak yet
    assert adaptive.season_score(AdaptiveParams(direction="above"), 12.0, -1.0, 3.0) == 0.0
    vec = adaptive.season_scores(
        p, np.array([12.0, 12.0]), np.array([-1.0, 1.0]), np.array([3.0, 1.0]), np.zeros(2, dtype=bool)
    )
    assert vec.tolist() == pytest.approx([2.0, 3.0])


@pytest.mark.parametrize(("shape_days", "day"), [(7, 8), (1, 6)])
def test_a_missing_daily_jump_is_caught(shape_days: int, day: int) -> None:
    """10 by day and 20 by night; one night stays at 10: every step is ordinary, the day is not. The
    shape's profile (a week by default, or one day) alarms once it has seen its whole length."""
    rng = np.random.default_rng(6)
    ts = T0 + 1800.0 * np.arange(48 * (day + 3))
    x = np.where((ts % 86400) < 43200, 10.0, 20.0) + rng.normal(0.0, 0.2, ts.size)
    night = slice(48 * day + 24, 48 * (day + 1))
    x[night] -= 10.0
    params = AdaptiveParams(shape_days=shape_days)
    s = Adaptive(params).update_many(x, ts)
    hits = np.flatnonzero(s.anomalous)
    assert hits.size and hits[0] == 48 * day + 24  # at the jump that did not happen
    assert not s.anomalous[: 48 * day + 24].any()
    # The step and range signals alone do not see it.
    alone = Adaptive(dataclasses.replace(params, season_margin=1e9)).update_many(x, ts)
    assert not alone.anomalous[night].any()


def test_a_surprise_that_recurs_at_the_same_time_of_day_is_normal() -> None:
    """5-minute data, 10 by night and 20 by day, the evening jump at 20:10 inside the 20:00 bin (so the
    profile only half explains it, every day): the largest surprise seen at that time of day is its normal
    worst, so the jump never alarms, while the same jump at another time does."""
    rng = np.random.default_rng(3)
    ts = T0 + 300.0 * np.arange(288 * 12)
    tod = ts % 86400
    day = (tod >= 8 * 3600 + 600) & (tod < 20 * 3600 + 600)
    x = np.where(day, 20.0, 10.0) + rng.normal(0.0, 0.3, ts.size)
    x[288 * 10 + 100] += 10.0  # 08:20 on day 11
    d = Adaptive()
    hits = np.flatnonzero(d.update_many(x, ts).anomalous)
    assert 288 * 10 + 100 in hits.tolist()
    assert not [i for i in hits.tolist() if 240 <= i % 288 <= 244]  # never at the evening jump (242)
    evening = adaptive.phase_bin(20 * 3600.0, 86400.0, 48)
    assert d.bin_peak[evening] > -math.inf  # that bin has its own worst


def test_warm_up_and_suppression() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(100.0, 1.0, 1200)
    x[50] += 50  # inside the warm-up: never an alarm
    x[[600, 650]] += 30
    ts = 60.0 * np.arange(x.size)
    s = Adaptive(AdaptiveParams(suppress=100, margin=3.0)).update_many(x, ts)
    assert np.flatnonzero(s.anomalous).tolist() == [600]  # 650 falls in 600's quiet period
    # Without suppression the return from each spike is a second alarm; alarms are not learnt as normal,
    # so the second spike still alarms.
    s = Adaptive(AdaptiveParams(suppress=0, margin=3.0)).update_many(x, ts)
    assert np.flatnonzero(s.anomalous).tolist() == [600, 601, 650, 651]


def test_an_alarm_is_not_learnt_as_normal() -> None:
    rng = np.random.default_rng(1)
    d = Adaptive(AdaptiveParams(margin=3.0, range_margin=0.0))  # the range's alarms are another test's
    x = rng.normal(100.0, 1.0, 700)
    d.update_many(x, 60.0 * np.arange(700))
    before = d.peak
    assert d.update_one(160.0, 60.0 * 700).anomalous
    assert d.peak == before  # capped at the peak, and not decayed either


def test_streaming_matches_vectorised_with_alarms() -> None:
    rng = np.random.default_rng(4)
    x = 50 + 10 * np.sin(np.arange(5000) / 30.0) + rng.normal(0, 1, 5000)
    x[rng.choice(np.arange(400, 5000), 20, replace=False)] += 25
    ts = 300.0 * np.arange(5000)
    p = AdaptiveParams(suppress=50)
    vec = Adaptive(p).update_many(x, ts).score
    d = Adaptive(p)
    one = np.array([d.update_one(float(a), float(b)).score for a, b in zip(x, ts, strict=True)])
    assert (vec > 1).sum() >= 8
    np.testing.assert_allclose(vec, one, rtol=1e-9, atol=1e-9)


def test_streaming_matches_vectorised_with_a_period() -> None:
    """A period of 20 samples found at the warm-up's end, in one batch, in odd batches and point by point."""
    rng = np.random.default_rng(7)
    tri = np.tile(np.concatenate((np.arange(10.0), np.arange(10.0, 0.0, -1.0))), 150)
    x = 10 * tri + rng.normal(0, 1, tri.size)
    x[rng.choice(np.arange(400, x.size), 12, replace=False)] += 40
    ts = 2.0 * np.arange(x.size)
    p = AdaptiveParams(suppress=50)
    d = Adaptive(p)
    vec = d.update_many(x, ts).score
    assert d.period == 20
    parts = Adaptive(p)
    cuts = [0, 7, 299, 301, 1000, 1777, x.size]
    chunks = [parts.update_many(x[a:b], ts[a:b]).score for a, b in itertools.pairwise(cuts)]
    one = Adaptive(p)
    single = np.array([one.update_one(float(a), float(b)).score for a, b in zip(x, ts, strict=True)])
    assert (vec > 1).sum() >= 8
    np.testing.assert_allclose(np.concatenate(chunks), vec, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(single, vec, rtol=1e-9, atol=1e-9)


# -- the simulator's anomalies -----------------------------------------------------------------------

KINDS = {
    "spike": (3.0, 12.0),
    "shift": (0.3, 180.0),
    "drop": (0.0, 60.0),
    "drift": (0.5, 900.0),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
def test_each_simulator_kind_is_caught(kind: str, spec: wave.MetricSpec) -> None:
    ts = T0 + 2.0 * np.arange(3600)  # two hours at the simulator's 2 s tick
    clean = wave.values(spec, ts, seed=0)
    size, duration = KINDS[kind]
    magnitude = size if kind in ("spike", "drop") else size * (spec.max - spec.min)
    a = anomalies.Anomaly("a", spec.name, kind, magnitude, float(ts[2000]) + 1.0, duration)
    x = np.array([anomalies.apply_all(float(v), float(t), [a], spec) for v, t in zip(clean, ts, strict=True)])
    s = Adaptive().update_many(x, ts)
    window = (ts >= a.start) & (ts <= a.end + 30.0)  # the labelled set's window
    assert s.anomalous[window].any(), kind


def test_no_alarm_before_an_injection() -> None:
    spec = default_metrics()[0]
    ts = T0 + 2.0 * np.arange(3600)
    s = Adaptive().update_many(wave.values(spec, ts, seed=0), ts)
    assert not s.anomalous.any()


@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
def test_six_clean_hours_raise_no_alarm(spec: wave.MetricSpec) -> None:
    ts = T0 + 2.0 * np.arange(6 * 1800)
    s = Adaptive().update_many(wave.values(spec, ts, seed=0), ts)
    assert not s.anomalous.any()


# -- NAB ----------------------------------------------------------------------------------------------


def test_nab_score_at_both_thresholds(tmp_path: Path) -> None:
    root = nab_root()
    if root is None:
        pytest.skip("the shared NAB part (shared/datasets/nab) is not beside this checkout")
    with contextlib.redirect_stdout(io.StringIO()):
        summary = evaluate(
            "adaptive", {}, root / "data", root / "labels" / "combined_windows.json", tmp_path, "adaptive"
        )
    o = summary["overall"]
    assert o["nab_standard_swept"] >= NAB_BEST - 1.0  # type: ignore[index]
    assert o["nab_standard_fixed"] >= NAB_LIVE - 1.0  # type: ignore[index]

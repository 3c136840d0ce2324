"""Detectors against hand-computed examples, their options, the ensemble's rule and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.detectors.base import Detector
from monitor.detectors.ema import EMAParams, EMAZScore
from monitor.detectors.ensemble import Ensemble, EnsembleParams, combine
from monitor.detectors.iqr import IQRParams, RollingIQR
from monitor.detectors.learning import LEARN_REACH
from monitor.detectors.options import DetectorOptions
from monitor.detectors.prophet import PROFILE_POINTS, Profile, ProfileBand
from monitor.detectors.registry import DETECTORS, create, from_cli
from monitor.detectors.scores import Direction
from monitor.detectors.sma import SMAParams, SMAZScore
from monitor.detectors.trend import TrendDetector, TrendParams
from streamwatch.errors import ConfigError


def feed(d: Detector, xs: list[float]) -> None:
    for i, x in enumerate(xs):
        d.update_one(x, float(i))


def test_sma_hand_example() -> None:
    d = SMAZScore(SMAParams(window=3, threshold=2.0))
    scores = [d.update_one(x, float(i)).score for i, x in enumerate([1.0, 2.0, 3.0])]
    assert scores == [0.0, 0.0, 0.0]  # warm-up: no full window yet
    s = d.score_one(5.0, 3.0)
    # mean 2, sample sd 1, band 2 +/- 2: (5 - 2) / 2 = 1.5
    assert (s.expected, s.lower, s.upper) == pytest.approx((2.0, 0.0, 4.0))
    assert s.score == pytest.approx(1.5) and s.anomalous
    assert d.score_one(1.0, 3.0).score == pytest.approx(0.5)
    d.learn_one(5.0, 3.0)  # window now 2, 3, 5: mean 10/3
    assert d.score_one(10 / 3, 4.0).score == pytest.approx(0.0, abs=1e-12)


def test_ema_hand_example() -> None:
    d = EMAZScore(EMAParams(alpha=0.5, threshold=2.0, warmup=2))
    assert d.update_one(0.0, 0.0).score == 0.0  # seeds the mean
    assert d.update_one(2.0, 1.0).score == 0.0  # still warming up (1 value learnt)
    # after 0, 2: mean 0 + 0.5 * 2 = 1; var = 0.5 * (0 + 0.5 * 4) = 1
    s = d.score_one(4.0, 2.0)
    assert (s.expected, s.lower, s.upper) == pytest.approx((1.0, -1.0, 3.0))
    assert s.score == pytest.approx(1.5)


def test_iqr_hand_example() -> None:
    d = RollingIQR(IQRParams(window=4, multiplier=1.5))
    feed(d, [4.0, 1.0, 3.0, 2.0])
    s = d.score_one(8.0, 4.0)
    # sorted 1 2 3 4: Q1 1.75, median 2.5, Q3 3.25, IQR 1.5; fences -0.5 and 5.5
    assert (s.expected, s.lower, s.upper) == pytest.approx((2.5, -0.5, 5.5))
    assert s.score == pytest.approx(5.5 / 3.0)
    assert d.score_one(1.0, 4.0).score == pytest.approx(1.5 / 3.0)
    d.learn_one(8.0, 4.0)  # drops 4: window 1 3 2 8
    assert d.score_one(2.5, 5.0).expected == pytest.approx(2.5)


def test_trend_hand_example() -> None:
    d = TrendDetector(TrendParams(window=3, smooth=1, min_rise=0.0, r2_threshold=0.5))
    d.learn_one(0.0, 0.0)
    d.learn_one(2.0, 1.0)
    s = d.score_one(1.0, 2.0)
    # t 0 1 2, x 0 2 1: Stx = 1, Stt = 2, Sxx = 2 -> slope 0.5/s, r2 = 1 / (2 * 2) = 0.25
    assert s.slope_per_hour == pytest.approx(1800.0)
    assert s.r2 == pytest.approx(0.25)
    assert s.direction == 1 and s.score == pytest.approx(0.5)
    assert s.expected == pytest.approx(1.0 + 0.5 * (2 - 1))
    line = d.score_one(4.0, 2.0)  # 0 2 4: a perfect line
    assert line.r2 == pytest.approx(1.0) and line.score == pytest.approx(2.0)


def test_warm_up_scores_zero_for_every_detector() -> None:
    rng = np.random.default_rng(3)
    for name in DETECTORS:
        d = create(name)
        first = [d.update_one(float(x), float(i)).score for i, x in enumerate(rng.normal(0, 1, 5))]
        assert first == [0.0] * 5, name


@pytest.mark.parametrize("name", ["sma", "ema", "iqr"])
def test_direction_keeps_one_side(name: str) -> None:
    rng = np.random.default_rng(7)
    base = list(rng.normal(100.0, 1.0, 200))
    for direction, flagged_up, flagged_down in (
        ("both", True, True),
        ("above", True, False),
        ("below", False, True),
    ):
        d = create(name, {"direction": direction})
        feed(d, base)
        assert d.score_one(130.0, 200.0).anomalous is flagged_up, direction
        assert d.score_one(70.0, 200.0).anomalous is flagged_down, direction


@pytest.mark.parametrize("name", ["sma", "ema", "iqr"])
def test_min_deviation_silences_tiny_wiggles(name: str) -> None:
    wiggle = [5.0 + 1e-4 * ((i * 7) % 3 - 1) for i in range(200)]
    loud = create(name)
    feed(loud, wiggle)
    assert loud.score_one(5.01, 200.0).anomalous  # 0.01 is huge next to a 1e-4 spread
    quiet = create(name, {"min_deviation": 0.5})
    feed(quiet, wiggle)
    s = quiet.score_one(5.01, 200.0)
    assert not s.anomalous and s.upper >= s.expected + 0.5
    assert quiet.score_one(6.0, 200.0).anomalous  # beyond the floor it still alerts


def test_trend_direction_and_min_deviation() -> None:
    t = np.arange(600, dtype=float)
    rising = 0.01 * t + np.random.default_rng(1).normal(0, 0.05, t.size)
    for direction, expect in (("both", True), ("above", True), ("below", False)):
        s = TrendDetector(TrendParams(window=100, smooth=10, direction=direction)).update_many(rising, t)
        assert bool(s.anomalous[-1]) is expect, direction
    # The rise over 100 points is about 1.0: a floor of 5 keeps it quiet.
    s = TrendDetector(TrendParams(window=100, smooth=10, min_deviation=5.0)).update_many(rising, t)
    assert not s.anomalous.any()


def test_ensemble_agreement_rule() -> None:
    p = EnsembleParams(k=2, min_confidence=0.7)
    cols = np.array(
        [
            [2.0, 2.0, 0.5],  # two flag, confidence (1 + 1 + 0.5) / 3 = 0.83 -> flagged
            [5.0, 0.1, 0.1],  # one flags: not enough agreement
            [2.0, 2.0, 0.0],  # two flag but confidence 0.67 <= 0.7 -> not flagged
            [3.0, 3.0, 3.0],  # all agree: confidence 1
        ]
    ).T
    out = combine(p, cols, np.zeros_like(cols))
    assert list(out.anomalous) == [True, False, False, True]
    assert out.confidence == pytest.approx([2.5 / 3, 1.2 / 3, 2 / 3, 1.0])
    assert list(out.agreeing) == [2, 1, 2, 3]
    assert out.score[0] == pytest.approx(min(2.0, (2.5 / 3) / 0.7))
    assert out.score[3] == pytest.approx(1 / 0.7)
    one = combine(EnsembleParams(k=1, min_confidence=0.3), cols, np.zeros_like(cols))
    assert list(one.anomalous) == [True, True, True, True]
    weighted = combine(EnsembleParams(weights="4,1,1", k=1, min_confidence=0.6), cols, np.zeros_like(cols))
    assert list(weighted.anomalous) == [True, True, True, True]  # the heavy member flags each time


def test_ensemble_flags_only_where_members_agree() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 3000)
    x[rng.choice(3000, 40, replace=False)] += rng.choice([-8.0, 8.0], 40)
    t = np.arange(x.size, dtype=float)
    ens = create("ensemble").update_many(x, t)
    members = [create(n).update_many(x, t) for n in ("sma", "ema", "iqr")]
    agree = sum(m.anomalous.astype(int) for m in members)
    assert ens.anomalous.sum() > 10
    assert np.all(agree[ens.anomalous] >= 2)
    assert np.array_equal(ens.agreeing, agree)


def test_registry_types_params_and_rejects_bad_ones() -> None:
    d = from_cli("sma", ["window=20", "threshold=3.5", "direction=above"])
    assert isinstance(d, SMAZScore) and d.p == SMAParams(window=20, threshold=3.5, direction="above")
    ens = from_cli("ensemble", ["k=3", "sma.window=7", "min_deviation=0.5"])
    assert isinstance(ens, Ensemble) and ens.members[0].p.window == 7  # type: ignore[attr-defined]
    assert ens.members[1].p.min_deviation == 0.5  # type: ignore[attr-defined]
    for bad in (["window=ten"], ["windo=3"], ["window=1"], ["direction=up"], ["window"]):
        with pytest.raises(ConfigError):
            from_cli("sma", bad)
    with pytest.raises(ConfigError):
        create("nope")
    with pytest.raises(ConfigError):
        from_cli("ensemble", ["k=4"])


def test_flat_series_band_of_zero_width() -> None:
    d = SMAZScore()
    feed(d, [3.0] * 20)
    assert d.score_one(3.0, 20.0).score == 0.0
    assert math.isinf(d.score_one(3.1, 20.0).score)


def test_build_learns_the_training_data() -> None:
    from monitor.detectors.registry import build

    rng = np.random.default_rng(2)
    x = rng.normal(50.0, 1.0, 100)
    t = np.arange(100.0)
    d = build("sma", {"window": "5"}, t, x)
    fresh = SMAZScore(SMAParams(window=5))
    feed(fresh, list(x))
    assert d.score_one(60.0, 100.0).score == pytest.approx(fresh.score_one(60.0, 100.0).score, rel=1e-9)
    assert d.score_one(60.0, 100.0).anomalous  # no warm-up left: it scores the first live value


def flat_band_detector(
    level: float, half_width: float, direction: Direction = "both", min_deviation: float = 0.0
) -> ProfileBand:
    """The Prophet band detector over a flat forecast: its real lookup and scoring, without a fit."""
    profile = Profile(0.0, 0.0, np.array([level]), half_width)
    return ProfileBand.of(profile, DetectorOptions(direction, min_deviation))


def test_prophet_band_at_is_the_band_update_many_scores_against() -> None:
    grid = np.arange(PROFILE_POINTS) * (60.0 / PROFILE_POINTS)  # a 60 s period, sampled every 2 s
    profile = Profile(60.0, 0.0, 100.0 + 10.0 * np.sin(grid / 7.0), 3.0, step=2.0)
    d = ProfileBand.of(profile, rows=2)
    ts = np.array([0.0, 1.0, 2.0, 3.9, 100.0, 101.5, 397.0, -5.0])
    scores = d.take([0]).update_many(np.zeros(ts.size), ts)
    for i, t in enumerate(ts):
        expected, lower, upper = d.band_at(np.full(2, t))  # one value per row
        assert (lower[1], expected[1], upper[1]) == (scores.lower[i], scores.expected[i], scores.upper[i]), t
    # Held at the training step's sample at or before each time, every period on: 3.9 s is 2 s.
    assert scores.expected[3] == profile.expected(np.array([2.0]))[0] == scores.expected[2]
    assert scores.expected[6] == pytest.approx(profile.expected(np.array([36.0]))[0])
    d.resize(3)  # a row without a profile yet has no band, and scores 0
    assert np.isnan(d.band_at(np.zeros(3))[0][2]) and d.warming().tolist() == [False, False, True]
    assert d.update(np.full(3, 500.0), np.zeros(3)).score.tolist()[2] == 0.0


def test_prophet_band_direction_keeps_one_side() -> None:
    cases: tuple[tuple[Direction, bool, bool], ...] = (
        ("both", True, True),
        ("above", True, False),
        ("below", False, True),
    )
    for direction, flagged_up, flagged_down in cases:
        d = flat_band_detector(100.0, 3.0, direction)
        assert d.score_one(130.0, 200.0).anomalous is flagged_up, direction
        assert d.score_one(70.0, 200.0).anomalous is flagged_down, direction
        many = d.update_many(np.array([130.0, 70.0, 100.5]), np.array([200.0, 201.0, 202.0]))
        assert list(many.anomalous) == [flagged_up, flagged_down, False], direction


def test_prophet_band_min_deviation_silences_tiny_wiggles() -> None:
    loud = flat_band_detector(5.0, 1e-4)
    assert loud.score_one(5.01, 200.0).anomalous  # 0.01 is huge next to a 1e-4 band
    quiet = flat_band_detector(5.0, 1e-4, min_deviation=0.5)
    s = quiet.score_one(5.01, 200.0)
    assert not s.anomalous and s.upper >= s.expected + 0.5 and s.lower <= s.expected - 0.5
    assert quiet.score_one(6.0, 200.0).anomalous  # beyond the floor it still alerts
    xs, ts = np.array([5.01, 4.99, 6.0, 4.0]), np.array([200.0, 201.0, 202.0, 203.0])
    many = quiet.update_many(xs, ts)
    one = [quiet.update_one(float(x), float(t)).score for x, t in zip(xs, ts, strict=True)]
    assert list(many.anomalous) == [False, False, True, True]
    assert many.score == pytest.approx(one, rel=1e-12)


def test_a_point_far_outside_the_band_is_learnt_as_a_point_at_learn_reach_half_widths() -> None:
    """The learning rule (monitor.detectors.learning): EMA learns a 1e9 spike as expected + reach * half."""
    d = EMAZScore(EMAParams(alpha=0.5, threshold=2.0, warmup=2))
    d.update_one(0.0, 0.0)
    d.update_one(2.0, 1.0)  # mean 1, variance 1: band 1 +/- 2
    s = d.update_one(1e9, 2.0)
    assert s.anomalous and s.score == pytest.approx((1e9 - 1.0) / 2.0)
    learnt = 1.0 + LEARN_REACH * 2.0  # capped at LEARN_REACH half-widths above expected
    assert learnt < 1e9
    assert d.state["mean"][0] == pytest.approx(1.0 + 0.5 * (learnt - 1.0))
    assert d.state["var"][0] == pytest.approx(0.5 * (1.0 + 0.5 * (learnt - 1.0) ** 2))


@pytest.mark.filterwarnings("error")  # float32 overflow in the trees is a warning, then inf
@pytest.mark.parametrize("huge", [1e39, -1e60, 1e99])
def test_iforest_scores_a_value_beyond_float32_instead_of_raising(huge: float) -> None:
    """scikit-learn's trees hold float32 (at most 3.4e38): a larger finite step is clipped to the largest,
    in training and in scoring, instead of a ValueError from the monitor's scoring call."""
    rng = np.random.default_rng(3)
    d = create("iforest", {"history": 64, "refit": 32, "trees": 10})
    xs = np.concatenate([100.0 + rng.normal(0.0, 1.0, 100), [huge], 100.0 + rng.normal(0.0, 1.0, 100)])
    s = d.update_many(xs, np.arange(xs.size, dtype=float))  # refits twice after the huge point
    assert np.isfinite(s.score).all()  # its scores are ranks in trees: no value makes them overflow

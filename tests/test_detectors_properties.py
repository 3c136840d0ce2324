"""Property tests (hypothesis): any data, any batch split, streaming and vectorised agree to 1e-9
(beyond what the rounding of the data themselves decides)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.detectors.registry import create
from monitor.detectors.rolling import RollingMoments, window_sums

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)

PARAMS = {
    "sma": st.fixed_dictionaries({"window": st.integers(2, 30), "threshold": st.floats(0.5, 5.0)}),
    "ema": st.fixed_dictionaries({"alpha": st.floats(0.01, 1.0), "threshold": st.floats(0.5, 5.0)}),
    "iqr": st.fixed_dictionaries({"window": st.integers(4, 40), "multiplier": st.floats(0.5, 4.0)}),
    "trend": st.fixed_dictionaries(
        {"window": st.integers(3, 40), "smooth": st.integers(1, 3), "min_rise": st.floats(0.0, 2.0)}
    ),
}
OPTIONS = st.fixed_dictionaries(
    {
        "direction": st.sampled_from(["above", "below", "both"]),
        "min_deviation": st.sampled_from([0.0, 0.5, 10.0]),
    }
)


# The trend's r squared is fitted to a moving average, whose last bit depends on the order of summation;
# when the averaged window varies by less than ~1e-4 of its level (0, -7e-5 and 1022 smoothed over 3
# points) r squared itself is only known to ~1e-8, so no two summation orders can agree to 1e-9. Whole
# numbers sum exactly: the trend's draws are those; every other detector gets any finite floats.
WHOLE = st.integers(-1_000_000, 1_000_000).map(float)


@given(
    name=st.sampled_from(sorted(PARAMS)),
    data=st.data(),
    cuts=st.lists(st.integers(0, 150), max_size=5),
)
def test_any_split_agrees_with_streaming(name: str, data: st.DataObject, cuts: list[int]) -> None:
    params = {**data.draw(PARAMS[name]), **data.draw(OPTIONS)}
    xs = data.draw(st.lists(WHOLE if name == "trend" else finite, min_size=1, max_size=150))
    x = np.array(xs)
    t = 10.0 * np.arange(x.size)
    one = create(name, params)
    streamed = [one.update_one(float(a), float(b)) for a, b in zip(x, t, strict=True)]
    s1 = np.array([r.score for r in streamed])
    bounds = sorted({0, x.size, *(c for c in cuts if c < x.size)})
    many = create(name, params)
    s2 = np.concatenate([many.update_many(x[a:b], t[a:b]).score for a, b in itertools.pairwise(bounds)])
    assert np.array_equal(np.isinf(s1), np.isinf(s2))
    fin = np.isfinite(s1)
    # A score is (x - expected) / half-width: where the band is narrower than the last bits of x (1e-8
    # wide around 1.0), the rounding of x alone moves the score by eps * |x| / half-width, whichever path
    # computes it. That much, and 1e-9 beyond it, is allowed; everywhere else it is 1e-9.
    half = np.array([(r.upper - r.lower) / 2 for r in streamed])
    level = np.maximum(np.abs(x), np.abs(np.array([r.expected for r in streamed])))
    with np.errstate(divide="ignore", invalid="ignore"):
        rounding = np.where(half > 0, 8 * np.finfo(float).eps * level / half, 0.0)
    rounding = np.nan_to_num(rounding, nan=0.0)
    allowed = 1e-9 + 1e-9 * np.abs(s1[fin]) + rounding[fin]
    assert np.all(np.abs(s1[fin] - s2[fin]) <= allowed), (s1, s2)


def exact_moments(xs: list[float]) -> tuple[Fraction, Fraction]:
    """Mean and centred sum of squares in exact rational arithmetic."""
    q = [Fraction(x) for x in xs]
    mean = sum(q, Fraction(0)) / len(q)
    return mean, sum(((x - mean) ** 2 for x in q), Fraction(0))


def spiky(draw: st.DrawFn) -> list[float]:
    """Calm values with a few huge spikes among them: the data that breaks naive running sums."""
    calm = draw(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=2, max_size=80))
    for _ in range(draw(st.integers(0, 3))):
        calm.insert(draw(st.integers(0, len(calm))), draw(st.sampled_from([1e6, -3e5, 741456.091796875])))
    return calm


@given(data=st.data(), w=st.integers(2, 12))
def test_rolling_moments_stay_exact_after_a_spike_leaves(data: st.DataObject, w: int) -> None:
    xs = data.draw(st.composite(spiky)())
    stream = RollingMoments(w)
    got_stream = []
    for x in xs:
        stream.push(x)
        if stream.full:
            got_stream.append(stream.mean_var())
    vec = window_sums({"x": np.array(xs)}, w, (("x", "x"),))
    assert len(got_stream) == len(vec["Sxx"]) == max(len(xs) - w + 1, 0)
    for j, (mean_s, sxx_s) in enumerate(got_stream):
        mean, sxx = exact_moments(xs[j : j + w])
        # Within 1e-9 of the window's own spread, not of the spike that passed through it.
        scale = float(sxx) ** 0.5 + 1e-300
        assert abs(mean_s - float(mean)) <= 1e-9 * scale + 1e-15, (j, xs[j : j + w])
        assert abs(vec["mean_x"][j] - float(mean)) <= 1e-9 * scale + 1e-15, (j, xs[j : j + w])
        assert abs(sxx_s - float(sxx)) <= 1e-9 * float(sxx) + 1e-30, (j, xs[j : j + w])
        assert abs(vec["Sxx"][j] - float(sxx)) <= 1e-9 * float(sxx) + 1e-30, (j, xs[j : j + w])


def test_the_spike_hypothesis_found_in_ci() -> None:
    # Once the spike left the 2-point window, the batch path's running sums cancelled the calm
    # window's spread to 0 (an infinite score) or kept more rounding error than it (104 for 180).
    for spike, calm in ((741456.091796875, 0.0078125), (370728.0, 0.00390625)):
        x = np.array([0.0, spike, 0.0, calm, 1.0])
        t = 10.0 * np.arange(x.size)
        params = {"window": 2, "threshold": 1.0, "direction": "above"}
        one = create("sma", params)
        s1 = [one.update_one(float(a), float(b)).score for a, b in zip(x, t, strict=True)]
        s2 = create("sma", params).update_many(x, t).score
        sd = float(np.std([0.0, calm], ddof=1))
        assert s1[-1] == pytest.approx((1.0 - calm / 2) / sd, rel=1e-12)
        assert s2[-1] == pytest.approx(s1[-1], rel=1e-12)

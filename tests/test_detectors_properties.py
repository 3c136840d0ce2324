"""Property tests (hypothesis): any data, any batch split, streaming and vectorised agree to 1e-9."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detectors.registry import create

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


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(sorted(PARAMS)),
    data=st.data(),
    xs=st.lists(finite, min_size=1, max_size=150),
    cuts=st.lists(st.integers(0, 150), max_size=5),
)
def test_any_split_agrees_with_streaming(
    name: str, data: st.DataObject, xs: list[float], cuts: list[int]
) -> None:
    params = {**data.draw(PARAMS[name]), **data.draw(OPTIONS)}
    x = np.array(xs)
    t = 10.0 * np.arange(x.size)
    one = create(name, params)
    s1 = np.array([one.update_one(float(a), float(b)).score for a, b in zip(x, t, strict=True)])
    bounds = sorted({0, x.size, *(c for c in cuts if c < x.size)})
    many = create(name, params)
    s2 = np.concatenate([many.update_many(x[a:b], t[a:b]).score for a, b in itertools.pairwise(bounds)])
    assert np.array_equal(np.isinf(s1), np.isinf(s2))
    fin = np.isfinite(s1)
    assert np.allclose(s1[fin], s2[fin], rtol=1e-9, atol=1e-9)

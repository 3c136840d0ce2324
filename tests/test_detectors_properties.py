"""Property tests (hypothesis, the suite's repeatable draws), for every registered detector:

- streaming (point by point), per-series batches and the columnar form (many rows, ragged, with rows
  added, reset and moved between) give the same scores to 1e-9;
- a snapshot (``arrays`` -> ``np.savez`` -> ``np.load(allow_pickle=False)`` -> ``restore``) continues
  exactly as the detector it was taken from, and a damaged or foreign one is a ``ValueError``;
- absurd values (+/-1e100 to 1e308) and infinities score +inf and never enter any state, and huge
  finite ones (1e6 to 1e99) are learnt capped by the band: every state stays finite and the detector
  scores normal values normally again.

The rolling windows (``monitor.detectors.rolling``) are checked against exact arithmetic too.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detectors import registry
from monitor.detectors.base import Detector
from monitor.detectors.normalise import Normalised, NormaliseParams
from monitor.detectors.prophet import PROFILE_POINTS, Profile, ProfileBand
from monitor.detectors.rolling import Maximum, Moments, Sorted

OPTIONS = st.fixed_dictionaries(
    {
        "direction": st.sampled_from(["above", "below", "both"]),
        "min_deviation": st.sampled_from([0.0, 0.5, 10.0]),
    }
)
# Small windows and warm-ups, so a few dozen points exercise every phase of every detector.
PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "sma": st.fixed_dictionaries({"window": st.integers(2, 12), "threshold": st.floats(0.5, 5.0)}),
    "ema": st.fixed_dictionaries(
        {"alpha": st.floats(0.01, 1.0), "threshold": st.floats(0.5, 5.0), "warmup": st.integers(0, 6)}
    ),
    "iqr": st.fixed_dictionaries({"window": st.integers(4, 12), "multiplier": st.floats(0.5, 4.0)}),
    "trend": st.fixed_dictionaries(
        {"window": st.integers(3, 20), "smooth": st.integers(1, 4), "min_rise": st.floats(0.0, 2.0)}
    ),
    "ensemble": st.sampled_from(["sma,ema,iqr", "sma,trend", "ema,iqr,trend"]).flatmap(
        lambda members: st.fixed_dictionaries(
            {
                "members": st.just(members),
                "k": st.integers(1, 2),
                "min_confidence": st.floats(0.2, 1.0),
                **{
                    k: v
                    for k, v in {
                        "sma.window": st.integers(2, 8),
                        "iqr.window": st.integers(4, 8),
                        "trend.window": st.integers(3, 10),
                        "trend.smooth": st.integers(1, 3),
                    }.items()
                    if k.split(".")[0] in members
                },
            }
        )
    ),
    "seasonal": st.fixed_dictionaries(
        {
            "period": st.sampled_from([0.0, 12.0, 20.0]),
            "warmup": st.integers(8, 40),
            "max_bins": st.integers(1, 12),
            "memory": st.integers(2, 50),
            "profile_memory": st.integers(1, 4),
        }
    ),
    "adaptive": st.fixed_dictionaries(
        {
            "warmup": st.integers(2, 30),
            "memory": st.integers(2, 50),
            "period_s": st.sampled_from([40.0, 100.0]),
            "bins": st.integers(2, 6),
            "jitter": st.integers(0, 1),
            "shape_days": st.integers(1, 2),
        }
    ),
    "iforest": st.fixed_dictionaries(
        {
            "window": st.integers(1, 3),
            "history": st.integers(16, 24),
            "refit": st.integers(5, 20),
            "trees": st.integers(2, 4),
        }
    ),
}


def prophet_factory(data: st.DataObject, opts: dict[str, Any]) -> Callable[[int], Detector]:
    """Prophet's band needs a fit: a random fitted profile (or a flat one), the same for every row.
    (A row added or reset has none, until the monitor installs one: ``blank``.)"""
    period = data.draw(st.sampled_from([0.0, 20.0, 60.0]), label="period")
    shape = np.array(data.draw(st.lists(st.floats(-100, 100), min_size=1, max_size=30), label="shape"))
    values = shape[:1] if period == 0 else np.resize(shape, PROFILE_POINTS)
    step = data.draw(st.sampled_from([0.0, 2.0]), label="step")
    anchor = data.draw(st.floats(0, 100), label="anchor")
    profile = Profile(period, anchor, values, data.draw(st.floats(0, 10)), step=step)
    p = registry.make_params("prophet", opts)
    return lambda rows: ProfileBand.of(profile, p, rows)


def factory(name: str, data: st.DataObject) -> Callable[[int], Detector]:
    """A way to make detector ``name`` with drawn parameters, for any number of rows (fitted, for
    Prophet's band)."""
    opts = data.draw(OPTIONS, label="options")
    if name == "prophet":
        return prophet_factory(data, opts)
    if name == "normalised":  # the band's NAB post-processing, a wrapper around any columnar detector
        inner = prophet_factory(data, opts)
        params = NormaliseParams(
            window=data.draw(st.integers(4, 10)),
            peak_window=data.draw(st.integers(0, 20)),
            quiet=data.draw(st.integers(0, 5)),
        )
        return lambda rows: Normalised(inner(rows), params)
    params = {**data.draw(PARAMS[name], label="params"), **opts}
    return lambda rows: registry.create(name, params, rows)


NAMES = sorted([*registry.NAMES, "normalised"])
SNAPSHOT_NAMES = [n for n in NAMES if n not in registry.PER_SERIES]  # per-series objects have none

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def series(data: st.DataObject, n: int) -> np.ndarray:
    """Values with now and then a gap (NaN: no sample), a spike, and a run of equal values."""
    xs = np.array(data.draw(st.lists(finite, min_size=n, max_size=n), label="xs"))
    if n and data.draw(st.booleans(), label="spiky"):
        xs[data.draw(st.integers(0, n - 1))] = data.draw(st.sampled_from([1e6, -3e5]))
    if n > 4 and data.draw(st.booleans(), label="flat"):
        a = data.draw(st.integers(0, n - 4))
        xs[a : a + 4] = xs[a]
    gaps = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=3), label="gaps") if n else []
    xs[gaps] = np.nan
    return xs


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to 1e-9 (relative and absolute), NaN and infinities alike."""
    return bool(
        np.array_equal(np.isnan(a), np.isnan(b))
        and np.array_equal(np.isinf(a), np.isinf(b))
        and np.array_equal(a[np.isinf(a)], b[np.isinf(b)])
        and np.allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-9, atol=1e-9)
    )


def snapshot_round_trip(d: Detector) -> Detector:
    """``d`` saved as a plain npz and restored into a new detector of the same kind."""
    buf = io.BytesIO()
    np.savez(buf, **d.arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as saved:
        arrays = {k: saved[k] for k in saved.files}
    out = d.copy_empty()
    out.restore(arrays)
    return out


@given(name=st.sampled_from(NAMES), data=st.data())
def test_streaming_batches_and_rows_agree(name: str, data: st.DataObject) -> None:
    make = factory(name, data)

    def blank() -> Detector:
        """What a slot grown or reset holds: a fresh row (Prophet's band: without a profile yet)."""
        d = make(1)
        d.reset([0])
        return d

    rows = data.draw(st.integers(1, 3), label="rows")
    T = data.draw(st.integers(1, 60), label="T")
    t = 2.0 * np.arange(T) + 1.7e9
    # Each row's own length (ragged: NaN padding at the end), and its own values.
    x = np.full((rows, T), np.nan)
    for r in range(rows):
        n = data.draw(st.integers(0, T), label="length")
        x[r, :n] = series(data, n)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(T - 1, 1)), max_size=4), label="cuts")))
    bounds = [0, *[c for c in cuts if c < T], T]
    d = make(rows)
    # Each slot's series: the row of x it reads and the column it (re)started at; a grown slot reads row
    # 0's values from then on, a reset slot starts its series afresh, a swap moves series between slots.
    lives = [[r, 0, T] for r in range(rows)]  # [row of x, first column, end column]
    slots = list(range(rows))  # slot -> index into lives
    got: list[np.ndarray] = [np.full(T, np.nan) for _ in lives]
    for a, b in itertools.pairwise(bounds):
        src = [lives[i][0] for i in slots]
        out = d.update(x[src, a:b], np.broadcast_to(t[a:b], (d.rows, b - a))).score
        for slot, i in enumerate(slots):
            got[i][a:b] = out[slot]
        op = data.draw(st.sampled_from(["none", "grow", "reset", "swap", "snapshot"]), label="op")
        if op == "grow":
            d.resize(d.rows + 1)
            lives.append([0, b, T])
            got.append(np.full(T, np.nan))
            slots.append(len(lives) - 1)
        elif op == "reset":
            k = data.draw(st.integers(0, d.rows - 1), label="slot")
            d.reset([k])
            lives[slots[k]][2] = b
            lives.append([lives[slots[k]][0], b, T])
            got.append(np.full(T, np.nan))
            slots[k] = len(lives) - 1
        elif op == "swap" and d.rows > 1:
            i, j = data.draw(st.permutations(range(d.rows)), label="swap")[:2]
            d.put([j, i], d.take([i, j]))
            slots[i], slots[j] = slots[j], slots[i]
        elif op == "snapshot" and name in SNAPSHOT_NAMES:
            d = snapshot_round_trip(d)
    # Every series, however it moved, scored point by point what a one-series detector streamed, and
    # what one-series batches split at the same columns gave.
    for (src, start, end), columnar in zip(lives, got, strict=True):
        xs, ts = x[src, start:end], t[start:end]
        one = make(1) if start == 0 else blank()
        streamed = np.array([one.update_one(float(v), float(u)).score for v, u in zip(xs, ts, strict=True)])
        batch = make(1) if start == 0 else blank()
        parts = [
            (max(a, start) - start, min(b, end) - start)
            for a, b in itertools.pairwise(bounds)
            if b > start and a < end
        ]
        batched = np.concatenate(
            [batch.update_many(xs[a:b], ts[a:b]).score for a, b in parts] or [np.empty(0)]
        )
        assert close(streamed, batched), (streamed, batched)
        assert close(streamed, columnar[start:end]), (streamed, columnar[start:end])


@given(name=st.sampled_from(SNAPSHOT_NAMES), data=st.data())
def test_a_snapshot_continues_exactly(name: str, data: st.DataObject) -> None:
    make = factory(name, data)
    T = data.draw(st.integers(2, 80), label="T")
    x = np.vstack([series(data, T), series(data, T)])
    t = np.broadcast_to(2.0 * np.arange(T), x.shape)
    k = data.draw(st.integers(1, T - 1), label="cut")
    d = make(2)
    d.update(x[:, :k], t[:, :k])
    restored = snapshot_round_trip(d)
    a, b = d.update(x[:, k:], t[:, k:]), restored.update(x[:, k:], t[:, k:])
    assert all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in ("score", "expected"))
    assert d.arrays().keys() == restored.arrays().keys()
    for key, v in d.arrays().items():
        assert np.array_equal(v, restored.arrays()[key], equal_nan=True), key


FIXED: dict[str, dict[str, Any]] = {
    "sma": {"window": 5},
    "iqr": {"window": 6},
    "trend": {"window": 8, "smooth": 3},
    "ensemble": {"sma.window": 5, "iqr.window": 6},
    "seasonal": {"period": 20.0, "warmup": 12},
}


def fixed(name: str, rows: int) -> Detector:
    """Detector ``name`` with small fixed parameters (a fixed profile for Prophet's band)."""
    if name in ("prophet", "normalised"):
        band = ProfileBand.of(Profile(20.0, 0.0, np.arange(float(PROFILE_POINTS)), 2.0, step=2.0), rows=rows)
        return band if name == "prophet" else Normalised(band, NormaliseParams(window=5, peak_window=7))
    return registry.create(name, FIXED.get(name, {}), rows)


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_a_damaged_or_foreign_snapshot_is_a_value_error(name: str) -> None:
    d = fixed(name, 3)
    d.update(np.tile(np.arange(40.0), (3, 1)), np.tile(2.0 * np.arange(40), (3, 1)))
    good = d.arrays()
    other = "ema" if name != "ema" else "sma"
    damaged: list[dict[str, np.ndarray]] = [
        registry.create(other, {}, 3).arrays(),  # another detector's
        {k: v for k, v in list(good.items())[:-1]},  # an array missing
        {**good, "extra": np.zeros(3)},  # one too many
        {**good, "n": good["n"][:2]},  # rows disagree
        {**good, "n": good["n"].astype(np.float64)},  # a count turned into floats
        {**good, "n": np.array(3)},  # not an array of rows
    ]
    wide = [k for k, v in good.items() if v.ndim == 2]
    if wide:  # a window or profile of another size (other parameters)
        k = wide[0]
        damaged.append({**good, k: np.zeros((3, good[k].shape[1] + 1), dtype=good[k].dtype)})
    for bad in damaged:
        with pytest.raises(ValueError):
            d.copy_empty().restore(bad)
    fresh = d.copy_empty()
    fresh.restore(good)  # the real one is taken
    assert fresh.rows == 3


absurd = st.builds(
    lambda m, e, s: s * m * 10.0**e,
    st.floats(1.0, 9.99),
    st.integers(100, 307),
    st.sampled_from([-1.0, 1.0]),
) | st.sampled_from([np.inf, -np.inf, 1.7976931348623157e308, -1.7976931348623157e308])


@given(name=st.sampled_from(NAMES), data=st.data())
def test_absurd_values_score_inf_and_never_enter_any_state(name: str, data: st.DataObject) -> None:
    make = factory(name, data)
    n = data.draw(st.integers(10, 80), label="n")
    rng = np.random.default_rng(data.draw(st.integers(0, 1000), label="seed"))
    normal = 100.0 + rng.normal(0.0, 5.0, n)
    t = 2.0 * np.arange(n)
    where = sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6), label="where")))
    x = normal.copy()
    x[where] = [data.draw(absurd, label="absurd") for _ in where]
    d, twin = make(1), make(1)
    s = d.update_many(x, t)
    clean = np.ones(n, dtype=bool)
    clean[where] = False
    s_twin = twin.update_many(normal[clean], t[clean])
    assert np.all(s.score[where] == np.inf)  # as anomalous as a score can be
    assert close(s.score[clean], s_twin.score)  # nothing of them was learnt: the rest scores as without
    if name not in registry.PER_SERIES:
        for key, v in d.state.items():
            assert np.array_equal(v, twin.state[key], equal_nan=True), key
    # And the detector goes on: the next normal values score as the twin's do.
    more_t = 2.0 * np.arange(n, n + 20)
    more = 100.0 + rng.normal(0.0, 5.0, 20)
    assert close(d.update_many(more, more_t).score, twin.update_many(more, more_t).score)


huge = st.builds(
    lambda m, e, s: s * m * 10.0**e,
    st.floats(1.0, 9.99),
    st.integers(6, 99),
    st.sampled_from([-1.0, 1.0]),
)


# 30 examples (not the profile's 100): each warms a detector up point by point, about 0.4 s of CPU.
@settings(max_examples=30)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_huge_values_are_learnt_capped_and_the_detector_recovers(name: str, data: st.DataObject) -> None:
    d, twin = fixed(name, 1), fixed(name, 1)
    rng = np.random.default_rng(data.draw(st.integers(0, 1000), label="seed"))
    t = 0.0
    while d.warming()[0] or t < 200.0:  # warmed up: the cap needs a band
        x = 100.0 + rng.normal(0.0, 5.0)
        d.update_one(x, t)
        twin.update_one(x, t)
        t += 2.0
    values = data.draw(st.lists(huge, min_size=1, max_size=5), label="huge")
    for v in values:
        d.update_one(v, t)
        t += 2.0
    # Finite wherever a fresh detector is: NaN and +/-inf only as placeholders (no profile, no window yet).
    for key, v in d.state.items():
        if v.dtype.kind == "f":
            assert np.all(np.isfinite(v) | ~np.isfinite(fixed(name, 1).state[key])), key
    # Then 300 normal points: the last 100 are flagged about as often as on the twin that never saw them.
    normal = 100.0 + rng.normal(0.0, 5.0, 300)
    ts = t + 2.0 * np.arange(300)
    after = d.update_many(normal, ts)
    calm = twin.update_many(normal, ts)  # the same times: the twin saw a gap where the huge points were
    assert after.anomalous[-100:].mean() <= calm.anomalous[-100:].mean() + 0.05
    if not np.isnan(after.expected[-1]) and not np.isnan(calm.expected[-1]):
        assert abs(after.expected[-1] - calm.expected[-1]) < 5 * 5.0  # within a few noise sds


# --- the rolling windows against exact arithmetic ----------------------------------------------------


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
    m, state = Moments(w, "m."), {}
    state.update(m.fresh(2))  # a second row that never learns: rows do not disturb each other
    for i, x in enumerate(xs):
        m.push(state, np.array([x, np.nan]), np.array([True, False]))
        count, mean, sxx = (float(v[0]) for v in m.moments(state))
        window = xs[max(0, i + 1 - w) : i + 1]
        exact_mean, exact_sxx = exact_moments(window)
        assert count == len(window)
        # Within 1e-9 of the window's own spread, not of the spike that passed through it.
        scale = float(exact_sxx) ** 0.5 + 1e-300
        assert abs(mean - float(exact_mean)) <= 1e-9 * scale + 1e-15, (i, window)
        assert abs(sxx - float(exact_sxx)) <= 1e-9 * float(exact_sxx) + 1e-30, (i, window)
    assert m.count(state)[1] == 0


@given(data=st.data(), w=st.integers(1, 15))
def test_sorted_window_and_maximum_match_numpy(data: st.DataObject, w: int) -> None:
    xs = data.draw(st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=60))  # many ties
    q, mx, state = Sorted(w, "q."), Maximum(w, "x."), {}
    state.update(q.fresh(1))
    state.update(mx.fresh(1))
    for i, x in enumerate(xs):
        q.push(state, np.array([x]), np.array([True]))
        mx.push(state, np.array([x]), np.array([True]))
        window = np.array(xs[max(0, i + 1 - w) : i + 1])
        assert state["q.sorted"][0, : window.size].tolist() == sorted(window.tolist())
        assert mx.value(state)[0] == window.max()
        if window.size == w:
            got = [float(v[0]) for v in q.quantiles(state, (0.25, 0.5, 0.75))]
            assert got == pytest.approx(np.quantile(window, [0.25, 0.5, 0.75]).tolist(), rel=1e-12, abs=1e-12)

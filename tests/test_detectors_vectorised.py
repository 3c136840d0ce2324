"""The vectorised ``update_many`` and the streaming ``update_one`` agree to 1e-9, in any batch split."""

from __future__ import annotations

import itertools
import tracemalloc
import zlib

import numpy as np
import pytest

from monitor.detectors.registry import create

CASES = [
    ("sma", {}),
    ("sma", {"window": 37, "threshold": 3.0, "direction": "above", "min_deviation": 0.5}),
    ("ema", {}),
    ("ema", {"alpha": 0.3, "threshold": 2.0, "direction": "below", "warmup": 3}),
    ("ema", {"alpha": 1.0}),
    ("iqr", {}),
    ("iqr", {"window": 21, "multiplier": 3.0, "min_deviation": 1.0}),
    ("trend", {}),
    ("trend", {"window": 60, "smooth": 7, "min_deviation": 2.0, "direction": "above"}),
    ("trend", {"window": 40, "smooth": 1, "min_rise": 0.0}),
    ("ensemble", {}),
    ("ensemble", {"members": "sma,iqr,trend", "k": 1, "min_confidence": 0.3, "sma.window": 5}),
    ("adaptive", {}),
    ("adaptive", {"warmup": 120, "period_s": 300.0, "bins": 10, "jitter": 2, "direction": "above"}),
    (
        "adaptive",
        {"margin": 1.0, "memory": 50, "min_surprise": 0.0, "min_deviation": 2.0, "direction": "below"},
    ),
    ("iforest", {"history": 64, "refit": 40, "trees": 10, "threshold": 0.6}),
]


def series(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        return rng.normal(50.0, 3.0, n)
    if kind == "walk":  # a level far from zero that wanders: the hard case for running sums
        return 3e4 + rng.normal(1.0, 5.0, n).cumsum()
    return rng.standard_cauchy(n)  # heavy tails: huge outliers


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("kind", ["noise", "walk", "cauchy"])
def test_streaming_and_vectorised_agree(name: str, params: dict[str, object], kind: str) -> None:
    # crc32, not hash(): str hashes change per process (PYTHONHASHSEED), so a failure would not replay.
    rng = np.random.default_rng(zlib.crc32(f"{name}/{kind}/{sorted(params.items())}".encode()))
    n = 1500
    x = series(kind, n, rng)
    t = 1.7e9 + np.cumsum(rng.choice([1.0, 2.0, 2.0, 0.0], n))  # irregular, with repeated timestamps
    streaming = create(name, params)
    one = [streaming.update_one(float(a), float(b)) for a, b in zip(x, t, strict=True)]
    s1 = np.array([s.score for s in one])
    e1 = np.array([s.expected for s in one])
    cuts = np.unique(np.concatenate(([0, 1, 2, n], rng.integers(0, n, 6))))
    batched = create(name, params)
    parts = [batched.update_many(x[a:b], t[a:b]) for a, b in itertools.pairwise(cuts)]
    s2 = np.concatenate([p.score for p in parts])
    e2 = np.concatenate([p.expected for p in parts])
    assert np.array_equal(np.isinf(s1), np.isinf(s2))
    fin = np.isfinite(s1)
    assert np.allclose(s1[fin], s2[fin], rtol=1e-9, atol=1e-9)
    assert np.array_equal(np.isnan(e1), np.isnan(e2))
    ok = ~np.isnan(e1)
    # Expected values are in the data's unit: agree to 1e-9 of its scale (Cauchy outliers reach 1e4).
    scale = max(1.0, float(np.percentile(np.abs(x), 99)))
    assert np.allclose(e1[ok], e2[ok], rtol=1e-9, atol=1e-9 * scale)
    # Both end in the same state: the next value scores the same either way.
    assert streaming.score_one(float(x[0]), float(t[-1]) + 1).score == pytest.approx(
        batched.score_one(float(x[0]), float(t[-1]) + 1).score, rel=1e-9, abs=1e-9
    )
    assert (s1 > 1).any() or name == "trend" or kind == "noise"


@pytest.mark.parametrize(("name", "params"), CASES)
def test_scores_never_depend_on_later_values(name: str, params: dict[str, object]) -> None:
    """Streaming order: changing the future leaves every earlier score as it was."""
    rng = np.random.default_rng(11)
    x = rng.normal(10.0, 2.0, 1200)
    t = 2.0 * np.arange(x.size)
    before = create(name, params).update_many(x, t).score
    y = x.copy()
    y[700:] = rng.normal(500.0, 50.0, 500)  # a wildly different future from row 700 on
    after = create(name, params).update_many(y, t).score
    assert np.array_equal(before[:700], after[:700])


def test_iqr_vectorised_large_window_agrees_and_never_copies_every_window() -> None:
    """A 2,000-point window on 6,000 points: the same as streaming, and the batch keeps O(n + w) memory.

    Copying each window (what a per-point sort or partition needs) holds n * w values at once, or a
    chunk of them: far more than the series itself.
    """
    rng = np.random.default_rng(zlib.crc32(b"iqr-large-window"))
    w, n = 2000, 6000
    x = np.round(rng.normal(100.0, 5.0, n), 1)  # rounded: many ties in the sorted window
    x[rng.integers(w, n, 20)] += 60.0
    t = np.arange(n, dtype=float)
    streaming = create("iqr", {"window": w})
    s1 = np.array([streaming.update_one(float(a), float(b)).score for a, b in zip(x, t, strict=True)])
    batched = create("iqr", {"window": w})
    tracemalloc.start()
    try:
        first = batched.update_many(x[:3500], t[:3500])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    s2 = np.concatenate((first.score, batched.update_many(x[3500:], t[3500:]).score))
    assert np.allclose(s1, s2, rtol=1e-9, atol=1e-9)
    assert (s1 > 1).any()
    assert peak < 40 * (3500 + w) * 8, peak  # a few arrays of the batch's length, not 1,500 windows


@pytest.mark.parametrize(("name", "params"), CASES)
def test_score_many_scores_as_score_one_and_learns_nothing(name: str, params: dict[str, object]) -> None:
    rng = np.random.default_rng(zlib.crc32(f"score_many/{name}/{sorted(params.items())}".encode()))
    x = series("walk", 1500, rng)
    t = 2.0 * np.arange(x.size)
    d = create(name, params)
    d.update_many(x[:1000], t[:1000])
    batch = d.score_many(x[1000:], t[1000:])
    one = np.array([d.score_one(float(a), float(b)).score for a, b in zip(x[1000:], t[1000:], strict=True)])
    assert np.allclose(batch.score, one, rtol=1e-9, atol=1e-9, equal_nan=True)
    # Nothing was learnt: the rest scores exactly as on a twin that never saw score_many.
    twin = create(name, params)
    twin.update_many(x[:1000], t[:1000])
    assert np.array_equal(d.update_many(x[1000:], t[1000:]).score, twin.update_many(x[1000:], t[1000:]).score)


def test_a_detector_with_only_score_one_and_learn_one_gets_correct_batches() -> None:
    """The base class's loops: what a new detector gets before it has a vectorised path, checked
    against a detector that has one (SMA), by writing SMA's streaming half alone."""
    from monitor.detectors.base import OnlineDetector
    from monitor.detectors.scores import Score
    from monitor.detectors.sma import SMAZScore

    class LoopSMA(OnlineDetector):
        def __init__(self) -> None:
            self.inner = SMAZScore()

        def score_one(self, x: float, t: float) -> Score:
            return self.inner.score_one(x, t)

        def learn_one(self, x: float, t: float) -> None:
            self.inner.learn_one(x, t)

    rng = np.random.default_rng(3)
    x, t = rng.normal(5.0, 1.0, 500), np.arange(500.0)
    x[[100, 300]] += 20.0
    loop, fast = LoopSMA(), SMAZScore()
    a, b = loop.update_many(x, t), fast.update_many(x, t)
    assert np.allclose(a.score, b.score, rtol=1e-9, atol=1e-9)
    assert np.allclose(a.expected, b.expected, rtol=1e-9, equal_nan=True)
    assert a.anomalous[[100, 300]].all()
    probe = np.array([5.0, 50.0])
    assert np.allclose(loop.score_many(probe, t[:2]).score, fast.score_many(probe, t[:2]).score)

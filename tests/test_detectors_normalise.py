"""The residual normaliser (Prophet's NAB post-processing): hand-computed cases and path agreement."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from monitor.detectors import registry
from monitor.detectors.ema import EMAZScore
from monitor.detectors.normalise import Normalised, NormaliseParams
from monitor.detectors.prophet import Profile, ProfileBand
from monitor.evaluate import evaluate
from monitor.evaluation.table import NAB_DIR
from monitor.prophet_profile import fit_profile
from simulator import wave
from simulator.config import default_metrics


def flat_band(level: float = 100.0) -> ProfileBand:
    """A fitted band that always expects ``level`` (+/- 1), as a Prophet band on a flat series would."""
    return ProfileBand.of(Profile(0.0, 0.0, np.array([level]), 1.0))


def test_hand_computed_median_iqr_and_peak() -> None:
    # Residuals 1, 2, 3, 4 (window 4): median 2.5, quartiles 1.75 and 3.25, so sigma = 1.5 / 1.349.
    d = Normalised(flat_band(), NormaliseParams(window=4, threshold=2.0, peak_window=0, quiet=0))
    ts = np.arange(5, dtype=float)
    s = d.update_many(np.array([101.0, 102.0, 103.0, 104.0, 105.0]), ts)
    assert s.score[:4].tolist() == [0.0] * 4  # warming up: fewer than `window` residuals
    half = 2.0 * 1.5 / 1.349
    assert s.expected[4] == pytest.approx(102.5)
    assert s.upper[4] - s.expected[4] == pytest.approx(half)
    assert s.score[4] == pytest.approx(2.5 / half)  # |5 - 2.5| over the half-width


def test_peak_raises_the_bar_to_the_largest_recent_deviation() -> None:
    p = NormaliseParams(window=4, threshold=1.0, peak_window=3, peak_margin=1.0, quiet=0)
    d = Normalised(flat_band(), p)
    xs = 100.0 + np.array([0.0, 0.0, 1.0, -1.0, 9.0, 0.0, 0.0, 5.0])
    s = d.update_many(xs, np.arange(xs.size, dtype=float))
    # Row 4: residual 9, window [0, 0, 1, -1] (median 0, IQR 0.5), no peak yet: 9 / (0.5 / 1.349).
    assert s.score[4] == pytest.approx(9.0 / (0.5 / 1.349))
    # Row 7: residual 5, window [-1, 9, 0, 0] has median 0 and IQR 2.5; the peak of the previous 3 devs
    # (9, 0.5, 0.5) is row 4's 9, so 5 / 9 < 1: a smaller repeat of a recent deviation is not news.
    assert s.score[7] == pytest.approx(5.0 / 9.0)


def test_quiet_period_after_an_alarm() -> None:
    p = NormaliseParams(window=4, threshold=1.0, peak_window=0, quiet=3)
    d = Normalised(flat_band(), p)
    xs = 100.0 + np.array([0.0, 1.0, 0.0, 1.0, 50.0, 50.0, 50.0, 50.0, 500.0])
    s = d.update_many(xs, np.arange(xs.size, dtype=float))
    assert s.anomalous.tolist() == [False] * 4 + [True, False, False, False, True]
    assert np.isfinite(s.expected[5:8]).all()  # the band is still reported while quiet


def test_inner_warm_up_is_skipped_and_direction_is_the_inner_detectors() -> None:
    inner = EMAZScore(EMAZScore.Params(alpha=0.5, direction="above"))
    d = Normalised(inner, NormaliseParams(window=4, threshold=1.0, peak_window=0, quiet=0))
    assert d.p == inner.p
    rng = np.random.default_rng(1)
    xs = np.concatenate([rng.normal(0, 1, 40), [-50.0, 0.0, 0.0, 0.0, 50.0]])
    s = d.update_many(xs, np.arange(xs.size, dtype=float))
    assert s.score[:5].tolist() == [0.0] * 5  # the EMA's warm-up gives no residual, then ours
    assert not s.anomalous[40]  # below: ignored, as the inner detector's direction says
    assert s.anomalous[-1]


@pytest.mark.parametrize("params", [NormaliseParams(), NormaliseParams(window=8, peak_window=0, quiet=5)])
def test_streaming_and_vectorised_agree(params: NormaliseParams) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    ts = np.arange(n, dtype=float)
    xs = 100.0 + np.cumsum(rng.normal(0, 1, n)) * 0.1 + rng.standard_t(3, n)
    xs[rng.choice(n, 15, replace=False)] += 40.0
    xs[1500:1510] = 100.0  # a flat run: zero spread must agree too
    whole = Normalised(flat_band(), params).update_many(xs, ts)
    one = Normalised(flat_band(), params)
    each = [one.update_one(float(x), float(t)) for x, t in zip(xs, ts, strict=True)]
    assert np.allclose([e.score for e in each], whole.score, rtol=1e-9, atol=1e-12)
    assert np.allclose([e.upper for e in each], whole.upper, rtol=1e-9, equal_nan=True)
    assert whole.anomalous.sum() > 0  # the case exercises alarms and quiet periods
    # Batches split anywhere give the same results as one batch.
    split = Normalised(flat_band(), params)
    parts = [split.update_many(xs[a:b], ts[a:b]).score for a, b in ((0, 77), (77, 1505), (1505, n))]
    assert np.allclose(np.concatenate(parts), whole.score, rtol=1e-9, atol=1e-12)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        NormaliseParams(window=2)
    with pytest.raises(ValueError, match="quiet"):
        NormaliseParams(quiet=-1)
    assert Normalised(flat_band()).p == ProfileBand.Params()


@pytest.mark.skipif(not (NAB_DIR / "data").is_dir(), reason="the shared NAB part is not beside the checkout")
def test_prophet_band_normalised_scores_on_nab(tmp_path: Path) -> None:
    """The reported NAB standard figures (docs/seasonal-baseline.md) minus one point, at both thresholds;
    the plain band scores 0 at best there (never firing is its best)."""
    labels = NAB_DIR / "labels" / "combined_windows.json"
    with contextlib.redirect_stdout(io.StringIO()):
        o = evaluate("prophet", {"normalise": "true"}, NAB_DIR / "data", labels, tmp_path, "p")["overall"]
    assert o["nab_standard_fixed"] >= 50.3 - 1.0  # type: ignore[index]
    assert o["nab_standard_swept"] >= 53.2 - 1.0  # type: ignore[index]


def test_prophet_normalise_is_applied_where_the_band_is_built() -> None:
    """Both ways a band is fitted, ProfileBand.fit (the evaluation, registry.build) and a worker's profile
    made a series' model (the monitor), wrap it when ``normalise=true``; columnar either way."""
    spec = default_metrics()[0]
    ts = 1_767_225_600.0 + 2.0 * np.arange(1800)
    vs = wave.values(spec, ts, seed=0)
    d = registry.build("prophet", {"normalise": "true", "period": "100"}, ts, vs)
    assert isinstance(d, Normalised) and isinstance(d.inner, ProfileBand)
    assert d.fit_seconds is not None and d.fit_seconds > 0
    assert d.p.period == 100.0 and d.p.normalise  # what a refit with the detector's parameters keeps
    profile = fit_profile(ts, vs, registry.make_params("prophet", {"period": "100"}))
    wrapped = registry.from_profile("prophet", {"normalise": "true"}, profile, rows=3)
    assert isinstance(wrapped, Normalised) and isinstance(wrapped.inner, ProfileBand) and wrapped.rows == 3
    plain = registry.build("prophet", {"period": "100"}, ts, vs)
    assert isinstance(plain, ProfileBand)
    # The wrapper scores without learning too, as the monitor's retrain asks of every detector.
    live = ts[-1] + 2.0 * np.arange(1, 201)
    s = d.update_many(wave.values(spec, live, seed=0), live)
    assert s.score[:100].tolist() == [0.0] * 100  # its own warm-up: 100 residuals
    assert len(d.score_many(vs[:5], live[:5])) == 5

"""The evaluation's alarm onsets, leave-one-category-out scores and prolonged-anomaly fraction, by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.evaluate import main as evaluate_main
from monitor.evaluation import nabscore
from monitor.evaluation.crossval import leave_one_category_out
from monitor.evaluation.metrics import flagged_fraction
from monitor.evaluation.onsets import onsets
from simulator.labelled import build


def test_an_alarm_silences_the_quiet_period_unless_a_larger_one_comes() -> None:
    s = np.array([0.0, 2.0, 1.5, 2.5, 0.0, 1.0, 0.0, 0.0, 0.0, 1.2, 0.0])
    # Row 1 opens a quiet period of 3 rows; row 3 is larger (a new onset, the new reference);
    # rows 5 (1.0 < 2.5, within 3 rows of row 3) is silenced; row 9 is 6 rows after row 3: an onset.
    assert onsets(s, quiet=3).tolist() == [0, 2.0, 0, 2.5, 0, 0, 0, 0, 0, 1.2, 0]
    assert onsets(s, quiet=0).tolist() == s.tolist()
    assert onsets(np.array([np.nan, 3.0]), quiet=5).tolist() == [0.0, 3.0]


def test_a_lasting_score_costs_one_onset_per_quiet_period() -> None:
    """A detector that keeps its score above 1 while a series stays out (the adaptive detector's state)
    is charged by NAB once per quiet period, not once per row: a jump to 5, then 1.2 for 1,000 rows."""
    s = np.concatenate((np.zeros(10), [5.0], np.full(1000, 1.2), np.zeros(10)))
    o = onsets(s, quiet=200)
    assert np.flatnonzero(o > 1).tolist() == [10, 211, 412, 613, 814]
    # A score that keeps rising beats every onset before it, so each rise is one (a drift read as new).
    assert (onsets(np.linspace(1.0, 2.0, 50), quiet=200) > 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_onsets_do_not_depend_on_the_threshold(seed: int) -> None:
    """Sweeping a threshold over the onset scores is the rule applied at each threshold."""
    rng = np.random.default_rng(seed)
    s = rng.exponential(1.0, 400) * (rng.random(400) < 0.3)
    o = onsets(s, quiet=7)
    for th in (0.5, 1.0, 1.5, 2.5):
        alarms, last, ref = [], -100, 0.0
        for i, v in enumerate(s.tolist()):
            if v >= th and (i - last > 7 or v > ref):
                alarms.append(i)
                last, ref = i, v
        assert np.flatnonzero(o >= th).tolist() == alarms


def test_each_category_is_scored_at_the_threshold_chosen_on_the_others() -> None:
    n = 100
    quiet = np.zeros(n)
    a = np.zeros(n)
    a[50] = 0.9  # caught at its window's first row
    b = np.zeros(n)
    b[60] = 0.7
    files = [
        ("a", a, nabscore.row_weights(n, [(50, 59)])),
        ("b", b, nabscore.row_weights(n, [(60, 69)])),
        ("none", quiet.copy(), nabscore.row_weights(n, [])),
    ]
    files[2][1][30] = 0.95  # a false alarm where nothing is labelled
    cv = leave_one_category_out(files)
    assert cv is not None
    folds = {f.category: f for f in cv.folds}
    # Held out a: tuned on b and none, catching b (threshold 0.7) also fires at none's 0.95, and
    # 1 - 0.11 beats missing b (-1): the threshold is 0.7, and a's 0.9 is caught at its window's start.
    assert folds["a"].threshold == pytest.approx(0.7)
    assert folds["a"].score == pytest.approx(100.0)
    assert folds["b"].threshold == pytest.approx(0.9)  # tuned on a (0.9) and none
    assert folds["b"].score == pytest.approx(0.0)  # 0.7 < 0.9: missed, as the null detector
    # none: threshold from a and b is 0.7; its false alarm costs 0.11 against D = 2 * 2 windows.
    assert folds["none"].threshold == pytest.approx(0.7)
    assert folds["none"].score == pytest.approx(100.0 * (4 - 0.11) / 4)
    assert cv.mean == pytest.approx(np.mean([f.score for f in cv.folds]))
    # Pooled: raw a 1.0, b -1.0, none -0.11 over the two windows: 100 * (-0.11 + 2) / 4.
    assert cv.pooled == pytest.approx(100.0 * (1.0 - 1.0 - 0.11 + 2.0) / 4.0)


def test_one_category_has_no_cross_validation() -> None:
    files = [("a", np.zeros(10), nabscore.row_weights(10, [(5, 6)]))]
    assert leave_one_category_out(files) is None


def test_flagged_fraction() -> None:
    flags = np.array([0, 1, 1, 0, 1, 1, 1, 0], dtype=bool)
    assert flagged_fraction(flags, [(1, 3), (5, 6)]) == (4, 5)
    assert flagged_fraction(flags, []) == (0, 0)


def test_prolonged_rows_and_the_evaluation_report(tmp_path: Path) -> None:
    build(tmp_path / "set", hours=2.0, seed=3)
    labels = tmp_path / "set" / "labels"
    prolonged = json.loads((labels / "prolonged.json").read_text())
    injected = json.loads((labels / "anomalies.json").read_text())
    for key, runs in prolonged.items():
        long = [a for a in injected[key] if a["duration_s"] >= 60.0]
        assert runs, key
        for start, end in runs:  # every run lies inside a prolonged anomaly
            assert start <= end
            assert any(a["window"][0] <= start and end <= a["window"][1] for a in long)
    out = tmp_path / "results"
    args = [str(tmp_path / "set" / "data"), str(labels / "combined_windows.json"), "--out", str(out)]
    assert evaluate_main(["--detector", "ema", *args, "--prolonged", str(labels / "prolonged.json")]) == 0
    o = json.loads((out / "ema" / "summary.json").read_text())["overall"]
    assert 0.0 <= o["prolonged_flagged"] <= 1.0
    assert o["nab_standard_cv_mean"] is None  # one category: nothing to hold out
    assert evaluate_main(["--detector", "ema", "--name", "on", "--onsets", "50", *args]) == 0
    o2 = json.loads((out / "on" / "summary.json").read_text())["overall"]
    assert o2["onsets_quiet_rows"] == 50
    assert o2["fp"] <= o["fp"]  # onsets only remove flags

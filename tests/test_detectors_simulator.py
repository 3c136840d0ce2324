"""Detectors on the simulator's own waves, and the labelled data set the simulator writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.detectors.trend import TrendDetector
from monitor.evaluate import main as evaluate_main
from simulator import anomalies, wave
from simulator.config import default_metrics
from simulator.labelled import build

T0 = 1_767_225_600.0


@pytest.mark.parametrize("spec", default_metrics(), ids=lambda s: s.name)
def test_trend_trips_on_drift_but_not_on_the_waves(spec: wave.MetricSpec) -> None:
    ts = T0 + 2.0 * np.arange(3600)  # two hours at the simulator's 2 s tick
    clean = wave.values(spec, ts, seed=0)
    quiet = TrendDetector().update_many(clean, ts)
    assert quiet.score.max() < 0.5  # the 80 s / 100 s triangles alone stay far from the threshold
    for sign in (1.0, -1.0):
        drift = anomalies.Anomaly(
            "d", spec.name, "drift", sign * 0.5 * (spec.max - spec.min), ts[1500], 900.0
        )
        values = np.array(
            [anomalies.apply_all(float(v), float(t), [drift], spec) for v, t in zip(clean, ts, strict=True)]
        )
        s = TrendDetector().update_many(values, ts)
        during = (ts >= drift.start) & (ts < drift.end)
        assert s.anomalous[during].any()
        assert set(s.direction[during & s.anomalous]) == {int(sign)}
        assert np.all(np.sign(s.slope_per_hour[during & s.anomalous]) == sign)
        assert not s.anomalous[ts < drift.start].any()


def test_labelled_set_has_every_kind_and_evaluates(tmp_path: Path) -> None:
    counts = build(tmp_path / "set", hours=2.0, seed=3)
    labels = json.loads((tmp_path / "set" / "labels" / "combined_windows.json").read_text())
    injected = json.loads((tmp_path / "set" / "labels" / "anomalies.json").read_text())
    assert set(labels) == {"simulator/energy_consumption.csv", "simulator/energy_price.csv"}
    kinds = {a["kind"] for doc in injected.values() for a in doc}
    assert kinds == {"spike", "shift", "drop", "drift"}
    for key, windows in labels.items():
        assert len(windows) == len(injected[key]) == counts[key.split("/")[1][:-4]]
        rows = (tmp_path / "set" / "data" / key).read_text().splitlines()
        assert rows[0] == "timestamp,value" and len(rows) == 3601
        stamps = {r.split(",")[0] for r in rows[1:]}
        probation = min(int(0.15 * 3600), 750)
        first_scored = rows[1 + probation].split(",")[0]
        for start, end in windows:
            assert start[:19] in stamps and end[:19] in stamps  # windows sit on rows, as NAB's do
            assert start[:19] >= first_scored
    out = tmp_path / "results"
    data, lab = str(tmp_path / "set" / "data"), str(tmp_path / "set" / "labels" / "combined_windows.json")
    assert evaluate_main(["--detector", "ema", data, lab, "--out", str(out)]) == 0
    summary = json.loads((out / "ema" / "summary.json").read_text())
    assert summary["overall"]["windows"] == sum(counts.values())


def test_prophet_band_evaluates_causally(tmp_path: Path) -> None:
    """The monitor's Prophet band, fitted on each file's probationary prefix only, catches the anomalies."""
    build(tmp_path / "set", hours=1.0, seed=2)
    out = tmp_path / "results"
    data, lab = str(tmp_path / "set" / "data"), str(tmp_path / "set" / "labels" / "combined_windows.json")
    assert evaluate_main(["--detector", "prophet", data, lab, "--out", str(out)]) == 0
    summary = json.loads((out / "prophet" / "summary.json").read_text())
    overall = summary["overall"]
    assert overall["windows"] > 0 and overall["recall"] >= 0.5
    rows = (out / "prophet" / "simulator" / "prophet_energy_price.csv").read_text().splitlines()
    probation = min(int(0.15 * 1800), 750)
    assert all(r.split(",")[2] == "0.0" for r in rows[1 : 1 + probation])  # the prefix it was fitted on

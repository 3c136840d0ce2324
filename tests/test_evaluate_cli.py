"""``python -m monitor.evaluate`` on a tiny labelled directory, NAB scoring by hand, and bad input."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.cli import assert_one_line_error, run_python
from monitor.evaluate import main, unit_score
from monitor.evaluation import nabscore
from monitor.evaluation.metrics import count, probation_rows

SPIKES = [5, 40, 60, 61, 70]  # 5: probationary; 40: inside window 1; 60-61 and 70: outside (2 episodes)
WINDOWS = [(38, 45), (80, 85)]  # window 2 gets no flag


def stamp(i: int) -> str:
    return f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00"


def make_dataset(root: Path, final_newline: bool = True) -> tuple[Path, Path]:
    values = [0.0] * 100
    for i in SPIKES:
        values[i] = 10.0
    values[61] = 30.0  # far enough above the 0, 0, 10 before it to be flagged too
    text = "timestamp,value\n" + "\n".join(f"{stamp(i)},{v:g}" for i, v in enumerate(values))
    (root / "data" / "cat").mkdir(parents=True)
    (root / "data" / "cat" / "tiny.csv").write_text(text + ("\n" if final_newline else ""))
    (root / "data" / "quiet").mkdir()
    (root / "data" / "quiet" / "flat.csv").write_text(
        "timestamp,value\n" + "\n".join(f"{stamp(i)},1" for i in range(100)) + "\n"
    )
    labels = {
        "cat/tiny.csv": [[f"{stamp(s)}.000000", f"{stamp(e)}.000000"] for s, e in WINDOWS],
        "quiet/flat.csv": [],
    }
    (root / "labels.json").write_text(json.dumps(labels))
    return root / "data", root / "labels.json"


def test_evaluate_tiny_directory_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, labels = make_dataset(tmp_path, final_newline=False)
    out = tmp_path / "results"
    assert main(["--detector", "sma", "--param", "window=3", str(data), str(labels), "--out", str(out)]) == 0
    summary = json.loads((out / "sma" / "summary.json").read_text())
    tiny = next(r for r in summary["files"] if r["file"] == "cat/tiny.csv")
    # A window-3 SMA on zeros flags exactly the spikes (zero spread: any deviation is infinite).
    # Probation = 15 rows, so row 5 is ignored; TP = window 1 (row 40), FN = window 2,
    # FP = 2 episodes (rows 60-61, row 70): P = 1/3, R = 1/2, F1 = 2PR/(P+R) = 0.4.
    assert (tiny["tp"], tiny["fp"], tiny["fn"]) == (1, 2, 1)
    assert tiny["precision"] == pytest.approx(1 / 3)
    assert tiny["recall"] == pytest.approx(0.5)
    assert tiny["f1"] == pytest.approx(0.4)
    assert tiny["mean_delay_s"] == pytest.approx(120.0)  # row 38 -> row 40, one minute apart
    overall = summary["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 2, 1)
    assert overall["f1"] == pytest.approx(0.4)
    # NAB by hand: the TP at row 40 of window 38..45 (width 8): position -(45 - 40 + 1) / 8 = -0.75.
    tp = (2 / (1 + math.exp(-5 * 0.75)) - 1) / (2 / (1 + math.exp(-5)) - 1)

    # FPs after window 1 (right edge 45, width 8): 0.11 * sigmoid(|45 - i| / 7), or -0.11 from 3 widths on.
    def fp_weight(i: int) -> float:
        past = abs(45 - i) / 7
        return -0.11 if past >= 3 else 0.11 * (2 / (1 + math.exp(5 * past)) - 1)

    fp = fp_weight(60) + fp_weight(61) + fp_weight(70)
    assert tiny["nab_raw"] == pytest.approx(tp + fp - 1.0)
    assert overall["nab_standard_fixed"] == pytest.approx(100 * (tp + fp - 1 + 2) / (2 + 2))
    # The other profiles: low-FP charges each FP twice (0.22); low-FN charges a missed window 2, so the
    # null score of the two windows is -4 and the span from it to a perfect 2 is 6.
    assert overall["nab_low_fp_fixed"] == pytest.approx(100 * (tp + 2 * fp - 1 + 2) / (2 + 2))
    assert overall["nab_low_fn_fixed"] == pytest.approx(100 * (tp + fp - 2 + 4) / (2 + 4))

    rows = list(csv.reader((out / "sma" / "cat" / "sma_tiny.csv").open()))
    assert rows[0] == ["timestamp", "value", "anomaly_score", "label"]
    assert [r[0] for r in rows[1:]] == [stamp(i) for i in range(100)]
    scores = np.array([float(r[2]) for r in rows[1:]])
    assert np.all((scores >= 0) & (scores <= 1))
    assert set(np.flatnonzero(scores > 0.5)) == set(SPIKES)
    label = [int(r[3]) for r in rows[1:]]
    assert label == [int(any(s <= i <= e for s, e in WINDOWS)) for i in range(100)]
    assert (out / "sma" / "quiet" / "sma_flat.csv").exists()
    assert "overall" in capsys.readouterr().out


def test_results_name_keeps_letters_and_digits(tmp_path: Path) -> None:
    data, labels = make_dataset(tmp_path)
    out = tmp_path / "r"
    main(["--detector", "ema", "--name", "ema-fast_2", str(data), str(labels), "--out", str(out)])
    assert (out / "emafast2" / "cat" / "emafast2_tiny.csv").exists()


def test_unit_score_is_monotone_into_unit_interval() -> None:
    raw = np.array([0.0, 0.5, 1.0, 3.0, np.inf, np.nan])
    assert list(unit_score(raw)) == pytest.approx([0.0, 1 / 3, 0.5, 0.75, 1.0, 0.0])


def test_counting_rules() -> None:
    ts = np.arange(200.0)
    flags = np.zeros(200, bool)
    flags[[10, 50, 51, 52, 100, 150, 151]] = True  # 10 is probationary (30 rows)
    c = count(flags, [(48, 60), (140, 160), (170, 180)], ts)
    assert probation_rows(200) == 30
    assert (c.tp, c.fp, c.fn) == (2, 1, 1) and c.delays_s == (2.0, 10.0)


def test_nab_weights_and_swept_threshold_match_brute_force() -> None:
    rw = nabscore.row_weights(100, [(20, 29)])
    assert rw.weight[20] == pytest.approx(1.0)  # the window's first row earns the full tpWeight
    assert rw.weight[:20] == pytest.approx(-0.11)  # before any window: -fpWeight
    assert rw.weight[60] == pytest.approx(-0.11)  # past 3 window widths: -fpWeight
    det = np.zeros(100, bool)
    det[20] = True
    assert nabscore.normalised(nabscore.raw_score(det, rw), 1) == pytest.approx(100.0)
    assert nabscore.normalised(nabscore.raw_score(np.zeros(100, bool), rw), 1) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    files = [
        (np.round(rng.random(120), 2), nabscore.row_weights(120, [(30, 40), (70, 75)])) for _ in range(3)
    ]
    threshold, best = nabscore.best_threshold(files)
    candidates = [*np.unique(np.concatenate([s for s, _ in files])), 1.1]
    brute = max(sum(nabscore.raw_score(s >= th, w) for s, w in files) for th in candidates)
    assert best == pytest.approx(brute)
    assert sum(nabscore.raw_score(s >= threshold, w) for s, w in files) == pytest.approx(best)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "monitor.evaluate", *args)


@pytest.mark.parametrize(
    ("labels_text", "csv_text", "needle"),
    [
        ("{not json", None, "not valid JSON"),
        ('{"cat/tiny.csv": [["2024-01-01 00:38:00"]]}', None, "[start, end]"),
        ('{"cat/missing.csv": []}', None, "does not exist"),
        (None, "timestamp,value\n2024-01-01 00:00:00,abc\n", "line 2: value is not a number"),
        (None, "time,val\n2024-01-01 00:00:00,1\n", "expected the header"),
        (None, "timestamp,value\nyesterday,1\n", "not a timestamp"),
        # numpy reads "NaT" and "" as not-a-time: they must not become the year -290,308.
        (None, "timestamp,value\n2024-01-01 00:00:00,1\nNaT,2\n", "line 3: not a timestamp: 'NaT'"),
        (None, "timestamp,value\n2024-01-01 00:00:00,1\n,2\n", "line 3: not a timestamp"),
        ('{"cat/tiny.csv": [["NaT", "2024-01-01 00:45:00"]]}', None, "not a timestamp like"),
        ('{"cat/tiny.csv": [["2024-01-01 00:38:00", ""]]}', None, "not a timestamp like"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, labels_text: str | None, csv_text: str | None, needle: str
) -> None:
    data, labels = make_dataset(tmp_path)
    if labels_text is not None:
        labels.write_text(labels_text)
    if csv_text is not None:
        (data / "cat" / "tiny.csv").write_text(csv_text)
    res = run_cli("--detector", "sma", str(data), str(labels), "--out", str(tmp_path / "out"))
    assert_one_line_error(res, "error:", needle)


def test_bad_param_is_one_line_and_exit_2(tmp_path: Path) -> None:
    data, labels = make_dataset(tmp_path)
    res = run_cli("--detector", "sma", "--param", "window=x", str(data), str(labels), "--out", str(tmp_path))
    assert_one_line_error(res, "window")


@pytest.mark.parametrize(
    ("csv_text", "rows"),
    [
        ("timestamp,value\n2024-01-01 00:00:00,1\n", "first 1 row)"),
        # All 30 rows at one time: the prefix Prophet would fit on is NAB's probationary share of them.
        ("timestamp,value\n" + "2024-01-01 00:00:00,1\n" * 30, f"first {probation_rows(30)} rows)"),
    ],
)
def test_prophet_on_a_prefix_without_two_timestamps_is_one_line(
    tmp_path: Path, csv_text: str, rows: str
) -> None:
    data, labels = make_dataset(tmp_path)
    # The second file: Prophet has been imported and fitted once (its chatter must not add lines).
    (data / "quiet" / "flat.csv").write_text(csv_text)
    res = run_cli("--detector", "prophet", str(data), str(labels), "--out", str(tmp_path / "out"))
    assert_one_line_error(res, "flat.csv", rows, "two distinct timestamps")


def test_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    data, labels = make_dataset(tmp_path)
    (tmp_path / "taken").write_text("not a directory\n")
    for out in (tmp_path / "taken", tmp_path / "taken" / "below"):
        res = run_cli("--detector", "sma", str(data), str(labels), "--out", str(out))
        assert_one_line_error(res, "--out", "is a file, not a directory")
    assert (tmp_path / "taken").read_text() == "not a directory\n"


@pytest.mark.parametrize("order", ["0", "101", "100000"])
def test_prophet_fourier_order_out_of_range_is_one_line(tmp_path: Path, order: str) -> None:
    data, labels = make_dataset(tmp_path)
    res = run_cli(
        "--detector",
        "prophet",
        "--param",
        f"fourier_order={order}",
        str(data),
        str(labels),
        "--out",
        str(tmp_path),
    )
    assert_one_line_error(res, "fourier_order must be between 1 and 100")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """A BOM (Windows editors write one) reads as utf-8-sig does: the same results as without it."""
    data, labels = make_dataset(tmp_path)
    plain = tmp_path / "plain"
    assert (
        main(["--detector", "sma", "--param", "window=3", str(data), str(labels), "--out", str(plain)]) == 0
    )
    for path in (data / "cat" / "tiny.csv", data / "quiet" / "flat.csv", labels):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    bom = tmp_path / "bom"
    assert main(["--detector", "sma", "--param", "window=3", str(data), str(labels), "--out", str(bom)]) == 0
    for name in ("summary.json", "cat/sma_tiny.csv", "quiet/sma_flat.csv"):
        assert (bom / "sma" / name).read_text() == (plain / "sma" / name).read_text(), name


def wave_dataset(root: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A noisy 60-point wave at one-minute steps with spikes up and down after the probationary prefix
    (300 rows: five periods for Prophet to fit)."""
    rng = np.random.default_rng(4)
    n = 2000
    values = 10 * np.sin(2 * np.pi * np.arange(n) / 60) + rng.normal(0, 0.5, n)
    up, down = np.arange(350, n, 50), np.arange(375, n, 50)
    values[up] += 15.0
    values[down] -= 15.0
    (root / "data" / "w").mkdir(parents=True)
    lines = [
        f"2024-01-{1 + i // 1440:02d} {i // 60 % 24:02d}:{i % 60:02d}:00,{v!r}"
        for i, v in enumerate(values.tolist())
    ]
    (root / "data" / "w" / "wave.csv").write_text("timestamp,value\n" + "\n".join(lines) + "\n")
    (root / "labels.json").write_text(json.dumps({"w/wave.csv": []}))
    return root / "data", root / "labels.json", up, down


def test_prophet_honours_direction_and_min_deviation(tmp_path: Path) -> None:
    data, labels, up, down = wave_dataset(tmp_path)

    def flagged(*params: str) -> set[int]:
        name = "p" + "".join(c for p in params for c in p if c.isalnum())
        argv = ["--detector", "prophet", "--name", name, str(data), str(labels), "--out", str(tmp_path / "o")]
        for p in params:
            argv[2:2] = ["--param", p]
        assert main(argv) == 0
        rows = list(csv.reader((tmp_path / "o" / name / "w" / f"{name}_wave.csv").open()))[1:]
        return {i for i, r in enumerate(rows) if float(r[2]) > 0.5}

    both = flagged()
    above, below = flagged("direction=above"), flagged("direction=below")
    assert set(up) <= both and set(down) <= both  # the spikes are caught at all
    assert set(up) <= above and not set(up) & below
    assert set(down) <= below and not set(down) & above
    assert above | below == both and not above & below
    assert flagged("min_deviation=1000") == set()  # a floor wider than the whole wave


def test_table_without_nab_data_is_one_line_before_any_run(tmp_path: Path) -> None:
    res = run_python(
        "-m", "monitor.evaluation.table", "--nab", str(tmp_path / "none"), "--out", str(tmp_path)
    )
    assert_one_line_error(res, "--nab", "no data/ folder")
    assert not (tmp_path / "simset").exists()  # refused before the simulator set was written

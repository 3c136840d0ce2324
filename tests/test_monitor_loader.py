"""Training data: every accepted format loads; every rejected one ends `python monitor.py` with one line."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from harness import ROOT
from harness.cli import assert_one_line_error, run_python
from harness.net import busy_port
from harness.procs import ManagedProcess, python_argv
from harness.waves import PRICE, grid
from monitor.loader import load_training
from monitor.period import sampling_step
from streamwatch.errors import DataError
from streamwatch.net import free_port
from streamwatch.promapi import matrix_response
from streamwatch.series import Series

START = 1_763_900_000.0
TS = grid(START, 400)
VS = PRICE.noisy(TS)
LABELS = {"__name__": "energy_price_metric", "job": "flask_app", "instance": "127.0.0.1:5000"}


def matrix_doc(series: list[Series]) -> dict:
    return matrix_response(series)


def vector_doc(n: int) -> dict:
    # An instant query returns one sample per series; a vector file holds several such documents' worth
    # of series only in theory, so a usable vector file is one series with one sample per entry.
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": LABELS, "value": [START, "1.5"]}] * n,
        },
    }


# --- accepted ------------------------------------------------------------------------------------------


def test_matrix_json_as_prometheus_writes_it(tmp_path: Path):
    f = tmp_path / "train.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    s = load_training(f)
    assert s.name == "energy_price_metric"
    np.testing.assert_allclose(s.timestamps, TS)
    np.testing.assert_allclose(s.values, VS)


def test_vector_json_loads_its_single_sample(tmp_path: Path):
    f = tmp_path / "train.json"
    f.write_text(json.dumps(vector_doc(1)))
    s = load_training(f, min_points=1)
    assert (list(s.timestamps), list(s.values)) == ([START], [1.5])


def test_csv_with_and_without_header_and_iso_timestamps(tmp_path: Path):
    lines = [f"{t:.0f},{float(v)!r}" for t, v in zip(TS, VS, strict=True)]
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(lines) + "\n")
    header = tmp_path / "header.csv"
    header.write_text("timestamp,value\n" + "\n".join(reversed(lines)) + "\n")  # any order
    iso = tmp_path / "iso.txt"
    stamps = [f"{np.datetime_as_string(np.datetime64(int(t), 's'))}Z" for t in TS]
    iso.write_text("\n".join(f"{t},{float(v)!r}" for t, v in zip(stamps, VS, strict=True)))
    for f in (plain, header, iso):
        s = load_training(f)
        assert s.name is None
        np.testing.assert_allclose(s.timestamps, TS)
        np.testing.assert_allclose(s.values, VS)


def test_nan_samples_and_duplicate_timestamps_are_dropped(tmp_path: Path):
    vs = VS.copy()
    vs[3] = np.nan
    f = tmp_path / "train.json"
    f.write_text(
        json.dumps(matrix_doc([Series(LABELS, np.concatenate([TS, TS[:5]]), np.concatenate([vs, vs[:5]]))]))
    )
    s = load_training(f)
    assert len(s) == TS.size - 1
    assert np.all(np.diff(s.timestamps) > 0)


def test_a_timestamp_with_two_different_values_is_refused(tmp_path: Path):
    vs = VS.copy()
    f = tmp_path / "train.json"
    ts = np.concatenate([TS, TS[7:8]])
    f.write_text(json.dumps(matrix_doc([Series(LABELS, ts, np.concatenate([vs, vs[7:8] + 1.0]))])))
    with pytest.raises(DataError, match=rf"train\.json: timestamp {TS[7]:.3f} has two different values"):
        load_training(f)


def test_more_points_than_max_train_points_is_refused(tmp_path: Path):
    f = tmp_path / "train.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    assert len(load_training(f, max_points=TS.size)) == TS.size
    with pytest.raises(DataError, match=rf"too many points to train on \({TS.size}, at most 150"):
        load_training(f, max_points=150)
    with pytest.raises(
        DataError, match=r"training file is 7,\d{3} bytes, more than 50 points can take \(5,000 bytes"
    ):
        load_training(f, max_points=50)  # refused from its size, unread


def test_rejections_are_data_errors_naming_the_file(tmp_path: Path):
    f = tmp_path / "few.csv"
    f.write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match=r"few\.csv: too few points"):
        load_training(f)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_millisecond_timestamps_are_rejected_not_learnt_as_seconds(tmp_path: Path, suffix: str):
    f = tmp_path / f"millis{suffix}"
    if suffix == ".csv":
        f.write_text(
            "timestamp,value\n"
            + "".join(f"{t * 1000:.0f},{float(v)!r}\n" for t, v in zip(TS, VS, strict=True))
        )
    else:
        f.write_text(json.dumps(matrix_doc([Series(LABELS, TS * 1000, VS)])))
    with pytest.raises(
        DataError, match=r"millis\.(csv|json)(: line 2)?: timestamp \d+ looks like milliseconds"
    ):
        load_training(f)
    # The same samples in seconds are fine.
    f.write_text("".join(f"{t:.0f},{float(v)!r}\n" for t, v in zip(TS, VS, strict=True)))
    assert load_training(f).timestamps[0] == TS[0]


# --- rejected: through the real command -----------------------------------------------------------------


def run_monitor(*args: str) -> subprocess.CompletedProcess[str]:
    """``python monitor.py`` with ``PORT`` replaced by a free port, and a model folder of its own unless
    the test names one (the default, var/models, is the checkout's: tests run in parallel beside it)."""
    argv = [str(free_port()) if a == "PORT" else a for a in args]
    if "--model-dir" in argv:
        return run_python("monitor.py", *argv)
    with tempfile.TemporaryDirectory(prefix="monitor-models-") as models:
        return run_python("monitor.py", *argv, "--model-dir", models)


def _series_doc(n_series: int) -> str:
    return json.dumps(matrix_doc([Series({**LABELS, "instance": f"h{i}"}, TS, VS) for i in range(n_series)]))


BAD_FILES = {
    "not_json.json": ("{this is not json", "not valid JSON"),
    "failed.json": (
        json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}),
        "failed query",
    ),
    "empty.json": (_series_doc(0), "no series"),
    "several.json": (_series_doc(2), "holds 2 series"),
    "nonnumeric.json": (
        json.dumps(
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": LABELS, "values": [[START, "lots"]]}]},
            }
        ),
        "is not a number",
    ),
    "nonnumeric.csv": ("timestamp,value\n1700000000,12\n1700000002,twelve\n", "'twelve' is not a number"),
    "few.json": (
        json.dumps(matrix_doc([Series(LABELS, TS[:5], VS[:5])])),
        "too few points",
    ),
    "binary.json": (b"\xff\xfe\x00\x81".decode("latin-1"), "is not UTF-8 text"),
    "control.json": ('{"status": "\x01"}', "not valid JSON (Invalid control character at line 1)"),
    "millis.csv": (
        "".join(f"{t * 1000:.0f},{float(v)!r}\n" for t, v in zip(TS, VS, strict=True)),
        "line 1: timestamp 1763900000000 looks like milliseconds",
    ),
    "millis.json": (json.dumps(matrix_doc([Series(LABELS, TS * 1000, VS)])), "looks like milliseconds"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_rejected_training_file(tmp_path: Path, name: str):
    text, problem = BAD_FILES[name]
    f = tmp_path / name
    if name == "binary.json":
        f.write_bytes(b"\xff\xfe\x00\x81")
    else:
        f.write_text(text)
    assert_one_line_error(run_monitor("energy_price", str(f), "PORT"), str(f), problem)


@pytest.mark.e2e
def test_deeply_nested_json_is_one_line(tmp_path: Path):
    f = tmp_path / "nested.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(run_monitor("energy_price", str(f), "PORT"), str(f), "nested too deeply")


@pytest.mark.e2e
def test_a_huge_training_file_is_refused_before_it_is_read(tmp_path: Path):
    f = tmp_path / "huge.json"
    with f.open("wb") as fh:  # sparse: 2 GB that take no disk, and would take seconds and GiBs to read
        fh.truncate(2_000_000_000)
    done = run_monitor("energy_price", str(f), "PORT")
    assert_one_line_error(done, str(f), "2,000,000,000 bytes", "1000000 points", "max_train_points")
    cfg = tmp_path / "monitor.toml"
    cfg.write_text("[monitor]\nmax_train_points = 1000\n")
    assert_one_line_error(
        run_monitor("energy_price", str(f), "PORT", "--config", str(cfg)), "max_train_points"
    )


@pytest.mark.e2e
def test_missing_file_and_directory(tmp_path: Path):
    assert_one_line_error(
        run_monitor("energy_price", str(tmp_path / "nope.json"), "PORT"), "no such training file"
    )
    assert_one_line_error(run_monitor("energy_price", str(tmp_path), "PORT"), "is a directory")


@pytest.mark.e2e
def test_unknown_metric_is_a_training_file_about_another_metric(tmp_path: Path):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    assert_one_line_error(
        run_monitor("energy_consumption", str(f), "PORT"), "energy_price_metric", "energy_consumption"
    )


@pytest.mark.e2e
def test_busy_port(tmp_path: Path):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    with busy_port() as port:
        line = assert_one_line_error(run_monitor("energy_price", str(f), str(port)), prog="monitor.py")
    # The program's name once, at the front: not "monitor.py: error: monitor: port ...".
    assert line == f"monitor.py: error: port {port} for the monitor on 127.0.0.1 is already in use"


@pytest.mark.e2e
@pytest.mark.parametrize("host", ["nosuchhost.invalid", "999.1.1.1"])
def test_bad_host_is_not_a_busy_port(tmp_path: Path, host: str):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    line = assert_one_line_error(
        run_monitor("energy_price", str(f), "PORT", "--host", host), f"cannot listen on {host}:"
    )
    assert "in use" not in line


@pytest.mark.e2e
def test_a_model_folder_that_cannot_be_one_is_refused_before_the_fit(tmp_path: Path):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    a_file = tmp_path / "models"
    a_file.write_text("")
    for model_dir, problem in ((a_file, "is not a folder"), (a_file / "sub", "cannot create")):
        done = run_monitor("energy_price", str(f), "PORT", "--model-dir", str(model_dir))
        assert_one_line_error(done, str(model_dir), problem)


@pytest.mark.e2e
def test_a_period_the_data_cannot_support_is_one_line_naming_the_range(tmp_path: Path):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    lo, hi = 2 * sampling_step(TS), (TS[-1] - TS[0]) / 2
    done = run_monitor("energy_price", str(f), "PORT", "--period", "3e7", "--model-dir", str(tmp_path))
    assert_one_line_error(done, str(f), f"{lo:g} s", f"{hi:g} s")


@pytest.mark.e2e
def test_bad_flag_and_bad_config_value(tmp_path: Path):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    assert_one_line_error(run_monitor("energy_price", str(f), "notaport"), "port")
    cfg = tmp_path / "monitor.toml"
    cfg.write_text("[monitor]\ninterval = -5\n")
    assert_one_line_error(run_monitor("energy_price", str(f), "PORT", "--config", str(cfg)), "interval")


# --- validation at start --------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1:9090", "http://"])
def test_a_prometheus_url_that_is_not_http_is_refused(tmp_path: Path, url: str):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    done = run_monitor("energy_price", str(f), "PORT", "--prometheus-url", url)
    assert_one_line_error(done, "prometheus_url must be an http:// or https:// URL", repr(url))


@pytest.mark.e2e
def test_an_interval_below_a_tenth_of_a_second_is_refused(tmp_path: Path):
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    done = run_monitor("energy_price", str(f), "PORT", "--interval", "1e-9")
    assert_one_line_error(done, "interval must be 0.1 to 86,400 s")


@pytest.mark.e2e
def test_a_query_prometheus_refuses_is_one_line_at_start(start_prometheus, tmp_path: Path):
    prom = start_prometheus()
    f = tmp_path / "price.json"
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, VS)])))
    query = "rate(energy_price_metric)"  # balanced, but not PromQL: rate() takes a range vector
    done = run_monitor(
        "energy_price", str(f), "PORT", "--prometheus-url", prom.url, "--query", query, "--detector", "ema",
        "--model-dir", str(tmp_path / "models"),
    )  # fmt: skip
    assert_one_line_error(done, "Prometheus refuses", repr(query), "range vector")


@pytest.mark.e2e
def test_a_period_whose_band_can_never_flag_is_refused(tmp_path: Path):
    train = ROOT / "datasets" / "energy_price_train.json"
    done = run_monitor(
        "energy_price", str(train), "PORT", "--period", "7", "--model-dir", str(tmp_path / "models"),
        "--prometheus-url", f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    line = assert_one_line_error(done, "period 7 s", "could never flag anything", "leave out --period")
    half = float(line.split("+/- ")[1].split()[0])
    assert half > 990  # wider than the whole 10..1000 wave
    assert not list((tmp_path / "models").glob("*.json"))  # and never stored, to be loaded next time


@pytest.mark.e2e
def test_white_noise_is_not_given_an_invented_season_but_watched_with_a_flat_band(tmp_path: Path):
    """One behaviour in both forms for a series with no season: watched with the flat band, and said so."""
    f = tmp_path / "noise.json"
    noise = np.random.default_rng(4).normal(500.0, 50.0, TS.size)
    f.write_text(json.dumps(matrix_doc([Series(LABELS, TS, noise)])))
    port = free_port()
    argv = python_argv(
        "monitor.py", "energy_price", str(f), str(port), "--prometheus-url", f"http://127.0.0.1:{free_port()}",
        "--model-dir", str(tmp_path / "models"),
    )  # fmt: skip
    with ManagedProcess("monitor", argv, tmp_path / "monitor.log", cwd=ROOT) as mon:
        mon.wait_http(f"http://127.0.0.1:{port}/metrics", timeout_s=60)
    log = (tmp_path / "monitor.log").read_text()
    assert "no repeating shape" in log and "no significant season" in log and "flat band" in log, log
    assert "Traceback" not in log

"""The command line: generate writes Prometheus' API format; bad input is one line and exit 2."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness import ROOT
from harness.cli import assert_one_line_error, run_python
from harness.net import answering, busy_port
from simulator import wave
from simulator.cli import _parser, main
from simulator.config import default_metrics
from streamwatch.durations import parse_duration
from streamwatch.errors import UserError
from streamwatch.net import free_port
from streamwatch.promapi import parse_response

END = 1_700_003_600.0
PRICE = default_metrics()[1]


def test_generate_writes_one_hour_on_the_2s_grid(tmp_path: Path) -> None:
    out = tmp_path / "price.json"
    assert (
        main(
            [
                "generate",
                "--metric",
                "energy_price",
                "--duration",
                "1h",
                "--out",
                str(out),
                "--end",
                "1700003601.3",
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["status"] == "success" and doc["data"]["resultType"] == "matrix"
    [series] = parse_response(doc)
    assert dict(series.labels) == {
        "__name__": "energy_price_metric",
        "instance": "127.0.0.1:5000",
        "job": "flask_app",
    }
    assert len(series) == 1800
    assert series.timestamps[-1] == END and series.timestamps[0] == END - 3598.0
    assert np.all(np.diff(series.timestamps) == 2.0)
    assert np.array_equal(series.values, wave.values(PRICE, series.timestamps, seed=0))
    raw = doc["data"]["result"][0]["values"][0]
    assert isinstance(raw[0], int | float) and isinstance(raw[1], str)


def test_generate_is_reproducible_and_seeded(tmp_path: Path) -> None:
    args = ["generate", "--metric", "energy_consumption", "--duration", "10m", "--end", str(END)]
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    main([*args, "--out", str(a)])
    main([*args, "--out", str(b)])
    main([*args, "--out", str(c), "--seed", "1"])
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert len(parse_response(json.loads(a.read_text()))[0]) == 300


def test_generate_uses_custom_metrics_and_step(tmp_path: Path) -> None:
    cfg = tmp_path / "sim.toml"
    cfg.write_text('[[metrics]]\nname = "water_flow"\nmin = 0.0\nmax = 40.0\nstep = 4\n')
    out = tmp_path / "w.json"
    main(["generate", "--config", str(cfg), "--metric", "water_flow", "--duration", "2m", "--step", "10s",
          "--end", str(END), "--out", str(out)])  # fmt: skip
    [series] = parse_response(json.loads(out.read_text()))
    assert series.name == "water_flow_metric" and len(series) == 12
    assert series.values.min() >= 0.0 and series.values.max() <= 40.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("15m", 900.0), ("1h", 3600.0), ("2d", 172800.0), ("90", 90.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-5s", "0s", "h", "1.5.2h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UserError):
        parse_duration(text)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_python("simulator.py", *args)


def _bad_cases(tmp: Path) -> list[list[str]]:
    (tmp / "broken.toml").write_text("seed = [\n")
    (tmp / "inverted.toml").write_text('[[metrics]]\nname = "x"\nmin = 5.0\nmax = 1.0\nstep = 1\n')
    out = str(tmp / "o.json")
    return [
        ["generate", "--metric", "water", "--out", out],
        ["generate", "--metric", "energy_price", "--duration", "forever", "--out", out],
        ["generate", "--metric", "energy_price", "--out", str(tmp / "missing-dir" / "o.json" / "x")],
        ["generate", "--metric", "energy_price"],
        ["serve", "--config", str(tmp / "nope.toml")],
        ["--config", str(tmp / "broken.toml")],
        ["--config", str(tmp / "inverted.toml")],
        ["--port", "notaport"],
        ["--port", "70000"],
        ["--frobnicate"],
        [
            "capture",
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--query",
            "energy_price_metric[1h]",
            "--out",
            out,
        ],
    ]


@pytest.mark.e2e
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # (tmp / "missing-dir" / "o.json" / "x"): a file where a directory must be, so the write fails.
    (tmp_path / "missing-dir").mkdir()
    (tmp_path / "missing-dir" / "o.json").write_text("")
    for args in _bad_cases(tmp_path):
        done = run_cli(*args)
        assert_one_line_error(done, prog="simulator.py")
        assert done.stdout == "", args
    assert not (tmp_path / "o.json").exists()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[]", "not an API response"),
        ('{"status": "success", "data": {"resultType": "matrix", "result": 7}}', "must be a list"),
        # A timestamp that overflows to inf was written out as Infinity, which is not JSON.
        (
            '{"status": "success", "data": {"resultType": "matrix", "result": '
            '[{"metric": {"__name__": "x"}, "values": [[1e999, "1"]]}]}}',
            "NaN or infinite",
        ),
    ],
)
def test_capture_of_a_garbage_answer_is_one_line_and_exit_2(tmp_path: Path, body: str, needle: str) -> None:
    out = tmp_path / "o.json"
    with answering(body) as url:
        done = run_cli(
            "capture", "--prometheus-url", url, "--query", "energy_price_metric[1h]", "--out", str(out)
        )
    assert_one_line_error(done, needle, prog="simulator.py")
    assert not out.exists()


def test_top_level_help_shows_the_default_serve_flags(capsys: pytest.CaptureFixture[str]) -> None:
    (sub,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    serve_flags = [f for a in sub.choices["serve"]._actions for f in a.option_strings if f.startswith("--")]
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "serve --help" in text
    for flag in serve_flags:
        assert flag in text, flag


@pytest.mark.e2e
def test_bad_host_is_one_line_and_not_a_busy_port() -> None:
    port = free_port()
    done = run_cli("--host", "nosuchhost.invalid", "--port", str(port))
    line = assert_one_line_error(done, f"cannot listen on nosuchhost.invalid:{port}", prog="simulator.py")
    assert "in use" not in line


@pytest.mark.e2e
def test_busy_port_is_one_line_and_exit_2() -> None:
    with busy_port() as port:
        done = run_cli("--port", str(port))
    line = assert_one_line_error(done, prog="simulator.py")
    assert (
        line
        == f"simulator.py: error: port {port} on 127.0.0.1 is already in use (choose another with --port)"
    )


@pytest.mark.parametrize("metric", ["energy_consumption", "energy_price"])
def test_shipped_datasets_are_what_generate_makes(tmp_path: Path, metric: str) -> None:
    shipped = ROOT / "datasets" / f"{metric}_train.json"
    [series] = parse_response(json.loads(shipped.read_text()))
    assert series.name == f"{metric}_metric" and len(series) == 1800
    assert np.all(np.diff(series.timestamps) == 2.0)
    # The command datasets/README.md records reproduces the file byte for byte.
    out = tmp_path / "again.json"
    main(["generate", "--metric", metric, "--duration", "1h", "--step", "2s", "--end", "1767225600",
          "--seed", "0", "--out", str(out)])  # fmt: skip
    assert out.read_bytes() == shipped.read_bytes()

"""Config validation: good files load, bad ones end the detector with one line and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT
from harness.cli import assert_one_line_error
from harness.net import busy_port
from harness.services import PrometheusFactory
from incident.config import DEFAULT_METRICS, IncidentConfig
from streamwatch.config import load
from streamwatch.errors import ConfigError
from streamwatch.net import free_port


def test_defaults_are_the_documented_numbers() -> None:
    cfg = IncidentConfig()
    assert cfg.metrics == DEFAULT_METRICS == []  # every metric the monitors export
    assert (cfg.half_life_s, cfg.threshold, cfg.sev1_min_metrics, cfg.interval) == (60.0, 10.0, 2, 5.0)
    assert cfg.rules().clear_threshold == 5.0  # half the threshold unless set
    assert "streamwatch_monitor_anomalies_total" in cfg.query and cfg.port == 8110
    # Every series is read on its own: a sum per metric would add quiet series' false alarms together.
    assert "sum" not in cfg.query
    assert (cfg.top_series, cfg.forget_series_after_s, cfg.max_series) == (5, 900.0, 100_000)


def test_file_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "incident.toml"
    f.write_text('metrics = ["a", "b", "c"]\nhalf_life_s = 20\nthreshold = 6\ninterval = 2\n')
    cfg = load(IncidentConfig, f, overrides={"interval": 1.0, "port": None})
    assert cfg.metrics == ["a", "b", "c"] and cfg.half_life_s == 20.0 and cfg.interval == 1.0
    assert cfg.port == 8110 and cfg.rules().clear_threshold == 3.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("treshold = 5\n", "unknown key 'treshold'"),
        ("half_life_s = -1\n", "half_life_s must be 1 to 86,400 s, got -1"),
        # Issue 22: accepted, and every score held forever.
        ("half_life_s = 1e300\n", "half_life_s must be 1 to 86,400 s, got 1e[+]300"),
        ("prometheus_timeout_s = 1e-9\n", "prometheus_timeout_s must be 0.1 to 300 s"),
        ("catchup_max_s = 1e12\n", "catchup_max_s must be 1 to 86,400 s"),
        ("max_series = 1000000000\n", "max_series must be 1 to 1,000,000"),
        ('threshold = "high"\n', "'threshold' must be a number"),
        ("threshold = 4\nclear_threshold = 5\n", "clear_threshold must be above 0 and at most threshold"),
        # A decaying score never reaches 0: such an incident could never resolve.
        ("clear_threshold = 0\n", "clear_threshold must be above 0 to"),
        ('metrics = ["a"]\n', r"sev1_min_metrics \(2\) is more than the 1 watched metrics"),
        ("interval = nan\n", "'interval' must be a finite number"),
        ("half_life_s = inf\n", "'half_life_s' must be a finite number"),
        ("log_max_bytes = -5\n", "log_max_bytes must be 0 [(]off[)], or 1,024 to"),
        ('metrics = ["a", "a"]\n', "metrics has duplicates"),
        ("top_series = 0\n", "top_series must be 1 to 1,000"),
        ("forget_series_after_s = 0\n", "forget_series_after_s must be 1 to"),
        ("max_series = 0\n", "max_series must be 1 to"),
        ("sev1_min_metrics = 0\n", "sev1_min_metrics must be 1 to"),
        ('log_format = "xml"\n', "'log_format' must be one of"),
        ("interval = 0\n", "interval must be 0.1 to 86,400 s, got 0"),
        ("threshold = = 3\n", "not valid TOML"),
        # Each of these used to start and then look like an outage, or never alert.
        ('metric_label = ""\n', "metric_label must name the label"),
        ("interval = 1e-9\n", r"interval must be 0.1 to 86,400 s, got 1e-09"),
        ("interval = 1e12\n", r"interval must be 0.1 to 86,400 s, got 1e\+12"),
        ('prometheus_url = "not a url"\n', "prometheus_url must be an http:// or https:// URL"),
        ('prometheus_url = "ftp://127.0.0.1:9090"\n', "prometheus_url must be an http:// or https:// URL"),
        ('prometheus_url = "http://"\n', "with a host"),
        ('monitors_query = " "\n', "monitors_query must not be empty"),
    ],
)
def test_bad_config_is_one_config_error(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "incident.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(IncidentConfig, f)


def run_detector(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "incident_detector.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'red'\n", "unknown key 'colour'"),
        ("half_life_s = -30\n", "half_life_s must be 1 to 86,400 s, got -30"),
        ("threshold = 'ten'\n", "'threshold' must be a number"),
    ],
)
def test_cli_bad_config_one_line_exit_2(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    proc = run_detector("--config", str(f), "--log", str(tmp_path / "i.log"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("incident_detector.py: error:") and message in lines[0]
    assert not (tmp_path / "i.log").exists()  # nothing started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prometheus-url", "not a url"], "prometheus_url must be an http:// or https:// URL"),
        (["--prometheus-url", "ftp://127.0.0.1:9090"], "got 'ftp://127.0.0.1:9090'"),
        (["--interval", "1e-9"], "interval must be 0.1 to 86,400 s"),
    ],
)
def test_cli_bad_url_or_busy_interval_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_detector(*args, "--log", str(tmp_path / "i.log"), "--port", str(free_port()))
    assert_one_line_error(proc, message, prog="incident_detector.py")
    assert not (tmp_path / "i.log").exists()


@pytest.mark.e2e
def test_cli_query_prometheus_cannot_parse_is_one_line_exit_2(
    start_prometheus: PrometheusFactory, tmp_path: Path
) -> None:
    prom = start_prometheus()
    f = tmp_path / "incident.toml"
    f.write_text('query = "sum by (metric) (rate(streamwatch_monitor_anomalies_total[5m]"\n')
    args = ["--config", str(f), "--prometheus-url", prom.url, "--log", str(tmp_path / "i.log")]
    proc = run_detector(*args, "--port", str(free_port()))
    assert_one_line_error(
        proc, "query 'sum by (metric)", "is not valid PromQL", "HTTP 400", prog="incident_detector.py"
    )
    assert not (tmp_path / "i.log").exists()
    f.write_text('monitors_query = "max by (metric) (streamwatch_monitor_last_success_timestamp_seconds"\n')
    proc = run_detector(*args, "--port", str(free_port()))
    assert_one_line_error(proc, "monitors_query", "is not valid PromQL")


def test_cli_missing_config_file(tmp_path: Path) -> None:
    proc = run_detector("--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 and "no such config file" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_port_in_use(tmp_path: Path) -> None:
    with busy_port() as port:
        proc = run_detector("--port", str(port), "--log", str(tmp_path / "i.log"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"incident_detector.py: error: port {port} for the incident detector on 127.0.0.1 is already in use"
    ]
    assert not (tmp_path / "i.log").exists()  # refused before anything was written


def test_cli_unwritable_log(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    proc = run_detector("--log", str(tmp_path / "dir"), "--port", str(free_port()))
    assert (
        proc.returncode == 2 and "cannot open incident log" in proc.stderr and "Traceback" not in proc.stderr
    )


@pytest.mark.parametrize("args", [["--interval", "soon"], ["--log-format", "xml"], ["--bogus"]])
def test_cli_bad_flags_one_line_exit_2(args: list[str]) -> None:
    proc = run_detector(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "(see --help)" in proc.stderr


def test_cli_negative_interval_flag(tmp_path: Path) -> None:
    proc = run_detector("--interval", "-1", "--log", str(tmp_path / "i.log"))
    assert proc.returncode == 2 and "interval must be 0.1 to 86,400 s, got -1" in proc.stderr


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_cli_non_finite_interval_flag(tmp_path: Path, value: str) -> None:
    # float() takes both; they used to pass validation and crash the backoff with a traceback.
    proc = run_detector("--interval", value, "--log", str(tmp_path / "i.log"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"'interval' must be a finite number, got {value}" in proc.stderr

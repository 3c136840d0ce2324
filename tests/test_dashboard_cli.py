"""``python -m dashboard`` as users run it: one clear line and exit 2 on bad input, /healthz when up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from harness import ROOT
from harness import cli as cli_support
from harness.cli import run_python
from harness.net import busy_port
from harness.procs import ManagedProcess, python_argv
from streamwatch.net import free_port


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "dashboard", *args, timeout=30)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    cli_support.assert_one_line_error(proc, fragment, prog="dashboard")


@pytest.mark.e2e
def test_busy_port_is_one_line_and_exit_2() -> None:
    with busy_port() as port:
        proc = run_cli("--port", str(port))
    assert_one_line_error(proc, f"port {port} on 127.0.0.1 is already in use")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[dashboard]\nrefresh_s = 0\n", "refresh_s must be 0.5 to 3,600 s, got 0"),
        ("[dashboard]\nmetrics = ['bad name']\n", "is not a valid metric name"),
        ("[dashboard\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, toml: str, fragment: str) -> None:
    f = tmp_path / "stack.toml"
    f.write_text(toml)
    assert_one_line_error(run_cli("--config", str(f)), fragment)


@pytest.mark.e2e
def test_missing_config_and_bad_flag_values(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("--config", str(tmp_path / "nope.toml")), "no such config file")
    assert_one_line_error(run_cli("--prometheus-url", "localhost:9090"), "must be an http:// or https:// URL")


@pytest.mark.e2e
def test_serves_the_page_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    argv = python_argv(
        "-m",
        "dashboard",
        "--port",
        str(port),
        "--metric",
        "cpu",
        "--prometheus-url",
        f"http://127.0.0.1:{free_port()}",
    )
    proc = ManagedProcess("dashboard", argv, tmp_path / "dashboard.log", cwd=ROOT)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
        assert 'data-metric="cpu"' in requests.get(f"http://127.0.0.1:{port}/", timeout=5).text
        resp = requests.get(f"http://127.0.0.1:{port}/api/summary", timeout=10)
        assert resp.status_code == 503 and resp.json()["source"] == "prometheus"
    finally:
        code = proc.stop()
    assert code == 0, proc.log_tail()
    log = (tmp_path / "dashboard.log").read_text()
    # One warning when Prometheus is found down, not one per request; no traceback.
    assert log.count("Prometheus unavailable") == 1 and "Traceback" not in log

"""Two `monitor.py --config` monitors with the default model_dir keep their snapshots apart and each
restores its own series after a restart (issue 21). They run in a temporary working directory, so the
default `var/models/...` is the test's, never the checkout's."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import ROOT
from harness.procs import ManagedProcess, python_argv
from harness.services import ScrapeTarget
from monitor.config import model_dir_for
from streamwatch.net import free_port, wait_until

pytestmark = pytest.mark.e2e


def figure(url: str, name: str) -> float:
    for family in text_string_to_metric_families(requests.get(url, timeout=5).text):
        for s in family.samples:
            if s.name == name and s.labels.get("metric") == "price":
                return s.value
    return -1.0


def write_config(path: Path, port: int, prometheus_url: str, series: str) -> None:
    # The same query name in both files: with one shared folder they would write the same snapshot file.
    path.write_text(
        f'[monitor]\nport = {port}\nprometheus_url = "{prometheus_url}"\ninterval = 1\n\n'
        "[[monitor.queries]]\nname = 'price'\n"
        f"expr = 'energy_price_metric{{series=~\"{series}\"}}'\nstep = 1\nfit_window = 60\n"
    )


def test_two_monitors_with_the_default_model_dir_restore_their_own_state(
    start_simulator, start_prometheus, tmp_path: Path
):
    sim = start_simulator(None, "--series", "5")
    prom = start_prometheus([ScrapeTarget("simulator", sim.address)])
    assert wait_until(lambda: len(prom.client.query("energy_price_metric[5s]")) == 5, 30, 0.2)
    work = tmp_path / "run"  # the monitors' working directory: var/models/ is created here
    work.mkdir()
    monitors = {"a": ("0|1", 2, free_port()), "b": ("2|3|4", 3, free_port())}
    for name, (series, _, port) in monitors.items():
        write_config(work / f"{name}.toml", port, prom.url, series)

    def start(name: str) -> ManagedProcess:
        port = monitors[name][2]
        argv = python_argv(str(ROOT / "monitor.py"), "--config", f"{name}.toml")
        proc = ManagedProcess(f"monitor-{name}", argv, tmp_path / f"monitor-{name}.log", cwd=work)
        proc.wait_http(f"http://127.0.0.1:{port}/metrics", timeout_s=60)
        return proc

    snapshots = {
        name: work / model_dir_for(work / f"{name}.toml", port) / "snapshot-price.npz"
        for name, (_, _, port) in monitors.items()
    }
    assert snapshots["a"].parent != snapshots["b"].parent
    procs = {name: start(name) for name in monitors}
    for name, (_, n, port) in monitors.items():
        url = f"http://127.0.0.1:{port}/metrics"
        assert wait_until(lambda url=url, n=n: figure(url, "streamwatch_monitor_fits_total") >= n, 60, 0.3), (
            procs[name].log_tail()
        )
    for name, proc in procs.items():
        assert proc.stop() == 0, proc.log_tail()  # SIGTERM: a last snapshot, then exit 0
        assert snapshots[name].is_file(), (name, sorted(p.as_posix() for p in work.rglob("*")))
    assert not (ROOT / model_dir_for(work / "a.toml", monitors["a"][2])).exists()

    procs = {name: start(name) for name in monitors}
    for name, (_, n, port) in monitors.items():
        url = f"http://127.0.0.1:{port}/metrics"
        restored = lambda url=url: figure(url, "streamwatch_monitor_series_restored_total")  # noqa: E731
        assert wait_until(lambda r=restored, n=n: r() == n, 30, 0.3), (
            name,
            restored(),
            procs[name].log_tail(),
        )
        # Its own series, not trained again, and nothing of the other's restored or refused.
        assert figure(url, "streamwatch_monitor_fits_total") == 0, procs[name].log_tail()
        log = procs[name].log_path.read_text()
        assert f"{n} of {n} saved series restored" in log
        assert "other settings" not in log and "unreadable snapshot" not in log
    for proc in procs.values():
        proc.stop()

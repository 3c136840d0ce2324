"""Real services on free loopback ports for the tests: Prometheus, the simulator, node exporter and the
many-series monitor, each started as `make demo` starts it and stopped without leftovers.

Each factory keeps what it started in ``started``; the fixtures in tests/conftest.py stop them after the
test. ``assert_promtool_metrics_ok`` is the one check of a ``/metrics`` exposition.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from harness import ROOT
from harness.procs import ManagedProcess, prometheus_argv, python_argv
from streamwatch.net import free_port
from streamwatch.promapi import PrometheusClient


@dataclass
class PrometheusServer:
    url: str
    client: PrometheusClient
    process: ManagedProcess
    config_path: Path


@dataclass
class ScrapeTarget:
    job: str
    address: str  # host:port
    interval: str = "1s"
    metrics_path: str = "/metrics"


@dataclass
class Started:
    """What a factory started, each with its log in ``tmp_path``; ``stop_all`` stops every one."""

    tmp_path: Path
    started: list[ManagedProcess] = field(default_factory=list)

    def _start(
        self,
        name: str,
        argv: list[str],
        log: str,
        ready_url: str,
        timeout_s: float = 30,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.tmp_path / log, cwd=cwd)
        self.started.append(proc)
        proc.wait_http(ready_url, timeout_s=timeout_s)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


@dataclass
class PrometheusFactory(Started):
    def __call__(
        self,
        targets: Sequence[ScrapeTarget] = (),
        rule_files: Sequence[Path] = (),
        alertmanager: str | None = None,
        interval: str = "1s",
        alertmanager_password_file: Path | None = None,
        external_labels: Mapping[str, str] | None = None,
    ) -> PrometheusServer:
        if shutil.which("prometheus") is None:
            pytest.fail("prometheus is not installed: run `make setup` (installs Debian's prometheus)")
        port = free_port()
        workdir = self.tmp_path / f"prometheus-{port}"
        workdir.mkdir()
        config: dict = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [],
        }
        if external_labels:
            config["global"]["external_labels"] = dict(external_labels)
        jobs: dict[str, dict] = {}  # targets of one job (replicas) are one scrape config
        for t in targets:
            if t.job in jobs:
                jobs[t.job]["static_configs"][0]["targets"].append(t.address)
                continue
            jobs[t.job] = {
                "job_name": t.job,
                "scrape_interval": t.interval,
                "metrics_path": t.metrics_path,
                "static_configs": [{"targets": [t.address]}],
            }
            config["scrape_configs"].append(jobs[t.job])
        if rule_files:
            config["rule_files"] = [str(p) for p in rule_files]
        if alertmanager:
            am: dict = {"static_configs": [{"targets": [alertmanager]}]}
            if alertmanager_password_file is not None:  # the stack's Alertmanager requires its credential
                am["basic_auth"] = {
                    "username": "streamwatch",
                    "password_file": str(alertmanager_password_file),
                }
            config["alerting"] = {"alertmanagers": [am]}
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        url = f"http://127.0.0.1:{port}"
        log = f"{workdir.name}/prometheus.log"
        proc = self._start("prometheus", prometheus_argv(workdir, port), log, f"{url}/-/ready")
        return PrometheusServer(url, PrometheusClient(url), proc, config_path)


@dataclass
class SimulatorServer:
    url: str  # http://127.0.0.1:PORT
    port: int
    address: str  # 127.0.0.1:PORT, as a Prometheus scrape target
    process: ManagedProcess


@dataclass
class SimulatorFactory(Started):
    def __call__(
        self, config: Path | str | None = None, *extra_args: str, seed: int | None = None
    ) -> SimulatorServer:
        """Start ``python simulator.py serve`` from the repo root on a free port; wait for /healthz.

        ``config`` is a TOML file (e.g. with custom ``[[metrics]]``); ``extra_args`` go to ``serve``.
        """
        port = free_port()
        args = ["simulator.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if config is not None:
            args += ["--config", str(config)]
        if seed is not None:
            args += ["--seed", str(seed)]
        url = f"http://127.0.0.1:{port}"
        argv = python_argv(*args, *extra_args)
        proc = self._start("simulator", argv, f"simulator-{port}.log", f"{url}/healthz", cwd=ROOT)
        return SimulatorServer(url, port, f"127.0.0.1:{port}", proc)


def assert_promtool_metrics_ok(exposition: str) -> None:
    """Fail unless ``promtool check metrics`` accepts ``exposition`` (naming, HELP, types, units)."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed: run `make setup` (installs Debian's prometheus)")
    done = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@dataclass
class ExporterServer:
    address: str  # 127.0.0.1:PORT, as a Prometheus scrape target
    process: ManagedProcess


@dataclass
class NodeExporterFactory(Started):
    """Debian's prometheus-node-exporter on a free loopback port (a real exporter nobody here wrote)."""

    def __call__(self) -> ExporterServer:
        binary = shutil.which("prometheus-node-exporter")
        if binary is None:
            pytest.fail("prometheus-node-exporter is not installed: run `make setup`")
        port = free_port()
        argv = [binary, f"--web.listen-address=127.0.0.1:{port}"]
        url = f"http://127.0.0.1:{port}/metrics"
        proc = self._start("node-exporter", argv, f"node-exporter-{port}.log", url)
        return ExporterServer(f"127.0.0.1:{port}", proc)


@dataclass
class FleetMonitor:
    url: str  # http://127.0.0.1:PORT/metrics
    address: str
    process: ManagedProcess
    config_path: Path


@dataclass
class FleetMonitorFactory(Started):
    """``python monitor.py --config watch.toml`` with the given [[monitor.queries]] tables.

    ``start(prometheus_url, queries, interval=2.0)``: ``queries`` are dicts written as TOML tables.
    """

    def __call__(self, prometheus_url: str, queries: Sequence[dict], interval: float = 2.0) -> FleetMonitor:
        port = free_port()
        lines = [
            "[monitor]",
            f"port = {port}",
            f'prometheus_url = "{prometheus_url}"',
            f"interval = {interval}",
            # Its own folder: snapshots must not outlive the test (nor reach the next one's monitor).
            f'model_dir = "{self.tmp_path / f"models-{port}"}"',
        ]
        for q in queries:
            lines.append("\n[[monitor.queries]]")
            for key, value in q.items():
                if isinstance(value, dict):
                    inner = ", ".join(f"{k} = {v!r}" for k, v in value.items())
                    lines.append(f"{key} = {{ {inner} }}")
                elif isinstance(value, str):
                    lines.append(f"{key} = '{value}'")
                elif isinstance(value, bool):
                    lines.append(f"{key} = {str(value).lower()}")
                else:
                    lines.append(f"{key} = {value}")
        config_path = self.tmp_path / f"watch-{port}.toml"
        config_path.write_text("\n".join(lines) + "\n")
        url = f"http://127.0.0.1:{port}/metrics"
        argv = python_argv("monitor.py", "--config", str(config_path))
        proc = self._start("monitor", argv, f"monitor-{port}.log", url, timeout_s=60, cwd=ROOT)
        return FleetMonitor(url, f"127.0.0.1:{port}", proc, config_path)

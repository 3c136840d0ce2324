"""Fixtures shared by the whole suite: real Prometheus (and Alertmanager) processes on loopback."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

from streamwatch.net import free_port
from streamwatch.promapi import PrometheusClient
from tests.procs import ManagedProcess, prometheus_argv, python_argv

ROOT = Path(__file__).resolve().parent.parent

# The suite's property tests draw the same examples on every run, so CI never goes red on a draw it
# has not seen before; hunt for new failures with `pytest --hypothesis-profile=thorough` (random, 20x).
settings.register_profile("repeatable", derandomize=True, max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile("repeatable")


# A test must keep its files in tmp paths: the checkout's var/ is `make demo`'s (models, read positions,
# the incident log), and tests running in parallel beside it would share and overwrite them. When var/ is
# absent at the start (a clean clone, CI), the run fails if any test, or a process it started, made it.
_VAR = ROOT / "var"
_VAR_EXISTED = _VAR.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # pytest-xdist: the controller checks once for all
        return
    if not _VAR_EXISTED and _VAR.exists():
        made = sorted(str(p.relative_to(ROOT)) for p in _VAR.rglob("*"))[:10]
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(
            f"error: the tests wrote into the checkout's var/ (use tmp paths): {made or ['var/']}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook turns them into node ids)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, tests sharing a module-scoped fixture run on one worker, in file order.

    Such a fixture is one expensive thing (a whole stack) that the module's tests use in turn, some
    building on what the ones before them did; spread over workers, each worker would start its own
    copy and the later tests would find it fresh. ``--dist loadgroup`` (set in addopts) keeps every
    group on one worker; everything else is spread test by test.
    """
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = sorted(
            name
            for name, defs in info.name2fixturedefs.items()
            if defs and defs[-1].scope == "module" and defs[-1].baseid.endswith(".py")
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{'+'.join(shared)}"))


@pytest.fixture(autouse=True)
def _xdist_grouped(request: pytest.FixtureRequest) -> None:
    """Fail a grouped test whose group xdist ignored (it suffixes a grouped test's node id with "@group"):
    it would share its module's stack with tests on other workers."""
    node = request.node
    grouped = getattr(request.config.option, "loadgroup", False) and node.get_closest_marker("xdist_group")
    if grouped and "@" not in node.nodeid:
        pytest.fail(
            "pytest-xdist did not keep this test's group on one worker: this pytest and pytest-xdist do "
            "not work together (see the pin in pyproject.toml)",
            pytrace=False,
        )


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
class PrometheusFactory:
    tmp_path: Path
    started: list[ManagedProcess] = field(default_factory=list)

    def __call__(
        self,
        targets: Sequence[ScrapeTarget] = (),
        rule_files: Sequence[Path] = (),
        alertmanager: str | None = None,
        interval: str = "1s",
        alertmanager_password_file: Path | None = None,
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
        proc = ManagedProcess("prometheus", prometheus_argv(workdir, port), workdir / "prometheus.log")
        self.started.append(proc)
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(f"{url}/-/ready", timeout_s=30)
        return PrometheusServer(url, PrometheusClient(url), proc, config_path)


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start real Prometheus servers on free loopback ports; all are stopped after the test."""
    factory = PrometheusFactory(tmp_path)
    yield factory
    for proc in factory.started:
        proc.stop()


# --- simulator (issue #2) -------------------------------------------------------------------------


@dataclass
class SimulatorServer:
    url: str  # http://127.0.0.1:PORT
    port: int
    address: str  # 127.0.0.1:PORT, as a Prometheus scrape target
    process: ManagedProcess


@dataclass
class SimulatorFactory:
    tmp_path: Path
    started: list[ManagedProcess] = field(default_factory=list)

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
        proc = ManagedProcess(
            "simulator",
            python_argv(*args, *extra_args),
            self.tmp_path / f"simulator-{port}.log",
            cwd=ROOT,
        )
        self.started.append(proc)
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(f"{url}/healthz", timeout_s=30)
        return SimulatorServer(url, port, f"127.0.0.1:{port}", proc)


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[SimulatorFactory]:
    """Start real simulators (subprocesses) on free loopback ports; all are stopped after the test."""
    factory = SimulatorFactory(tmp_path)
    yield factory
    for proc in factory.started:
        proc.stop()


def assert_promtool_metrics_ok(exposition: str) -> None:
    """Fail unless ``promtool check metrics`` accepts ``exposition`` (naming, HELP, types, units)."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed: run `make setup` (installs Debian's prometheus)")
    done = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- many-series monitor (issue #13) ---------------------------------------------------------------


@dataclass
class ExporterServer:
    address: str  # 127.0.0.1:PORT, as a Prometheus scrape target
    process: ManagedProcess


@pytest.fixture
def start_node_exporter(tmp_path: Path) -> Iterator[Callable[[], ExporterServer]]:
    """Start Debian's prometheus-node-exporter on a free loopback port (a real exporter nobody here wrote)."""
    started: list[ManagedProcess] = []

    def start() -> ExporterServer:
        binary = shutil.which("prometheus-node-exporter")
        if binary is None:
            pytest.fail("prometheus-node-exporter is not installed: run `make setup`")
        port = free_port()
        argv = [binary, f"--web.listen-address=127.0.0.1:{port}"]
        proc = ManagedProcess("node-exporter", argv, tmp_path / f"node-exporter-{port}.log")
        started.append(proc)
        proc.wait_http(f"http://127.0.0.1:{port}/metrics", timeout_s=30)
        return ExporterServer(f"127.0.0.1:{port}", proc)

    yield start
    for proc in started:
        proc.stop()


@dataclass
class FleetMonitor:
    url: str  # http://127.0.0.1:PORT/metrics
    address: str
    process: ManagedProcess
    config_path: Path


@pytest.fixture
def start_fleet_monitor(tmp_path: Path) -> Iterator[Callable[..., FleetMonitor]]:
    """Start ``python monitor.py --config watch.toml`` with the given [[monitor.queries]] tables.

    ``start(prometheus_url, queries, interval=2.0)``: ``queries`` are dicts written as TOML tables.
    """
    started: list[ManagedProcess] = []

    def start(prometheus_url: str, queries: Sequence[dict], interval: float = 2.0) -> FleetMonitor:
        port = free_port()
        lines = [
            "[monitor]",
            f"port = {port}",
            f'prometheus_url = "{prometheus_url}"',
            f"interval = {interval}",
            # Its own folder: snapshots must not outlive the test (nor reach the next one's monitor).
            f'model_dir = "{tmp_path / f"models-{port}"}"',
        ]
        for q in queries:
            lines.append("\n[[monitor.queries]]")
            for key, value in q.items():
                if isinstance(value, dict):
                    inner = ", ".join(f"{k} = {v!r}" for k, v in value.items())
                    lines.append(f"{key} = {{ {inner} }}")
                elif isinstance(value, str):
                    lines.append(f"{key} = '{value}'")
                else:
                    lines.append(f"{key} = {value}")
        config_path = tmp_path / f"watch-{port}.toml"
        config_path.write_text("\n".join(lines) + "\n")
        proc = ManagedProcess(
            "monitor",
            python_argv("monitor.py", "--config", str(config_path)),
            tmp_path / f"monitor-{port}.log",
            cwd=ROOT,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}/metrics"
        proc.wait_http(url, timeout_s=60)
        return FleetMonitor(url, f"127.0.0.1:{port}", proc, config_path)

    yield start
    for proc in started:
        proc.stop()

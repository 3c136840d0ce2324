"""Fixtures shared by the whole suite: real services on loopback, started by the harness package.

The services themselves (what starts them, how they are configured) live in ``harness/``, which tests,
``bench/`` and ``scripts/`` import; here are only the fixtures that stop them after each test, and the
suite's own settings (hypothesis profile, xdist groups, the guard on the checkout's var/).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import settings

# The harness' helpers assert (assert_one_line_error, assert_promtool_metrics_ok): pytest explains their
# failures as it does a test's.
pytest.register_assert_rewrite("harness")

from harness import ROOT, quickstack  # noqa: E402
from harness.fake_monitors import FakeMonitors, start_fake_monitors  # noqa: E402
from harness.services import (  # noqa: E402
    FleetMonitorFactory,
    NodeExporterFactory,
    PrometheusFactory,
    SimulatorFactory,
    Started,
)

F = TypeVar("F", bound=Started)

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


def _stopped_after(factory: F) -> Iterator[F]:
    yield factory
    factory.stop_all()


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start real Prometheus servers on free loopback ports; all are stopped after the test."""
    yield from _stopped_after(PrometheusFactory(tmp_path))


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[SimulatorFactory]:
    """Start real simulators (subprocesses) on free loopback ports; all are stopped after the test."""
    yield from _stopped_after(SimulatorFactory(tmp_path))


@pytest.fixture
def start_node_exporter(tmp_path: Path) -> Iterator[NodeExporterFactory]:
    """Start Debian's prometheus-node-exporter on a free loopback port; stopped after the test."""
    yield from _stopped_after(NodeExporterFactory(tmp_path))


@pytest.fixture
def start_fleet_monitor(tmp_path: Path) -> Iterator[FleetMonitorFactory]:
    """Start ``python monitor.py --config watch.toml`` with the given [[monitor.queries]] tables."""
    yield from _stopped_after(FleetMonitorFactory(tmp_path))


@pytest.fixture
def monitors(start_prometheus: PrometheusFactory) -> Iterator[FakeMonitors]:
    """The monitors' anomaly counters and last-success gauges, served and scraped every second."""
    fm, server = start_fake_monitors(start_prometheus)
    yield fm
    server.shutdown()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser), closed after the test."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(quickstack.CHROMIUM).exists():
        pytest.fail(f"{quickstack.CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        b = quickstack.launch_chromium(p)
        yield b
        b.close()

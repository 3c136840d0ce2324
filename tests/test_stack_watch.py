"""The watch stack (`make watch`, issue 21): stack.toml's profiles, the monitor's --config, the banner."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ROOT
from harness.cli import assert_one_line_error, run_python
from monitor import presets
from monitor.config import load_file
from stack import render
from stack.config import load_stack
from stack.runner import service_commands
from streamwatch.errors import ConfigError

SHARED = {"prometheus", "alertmanager", "alert-receiver", "incident-detector"}


def test_each_stack_runs_its_own_services_and_shares_the_alerting_path() -> None:
    demo, watch = load_stack(), load_stack(profile="watch")
    assert demo.profile == "demo" and watch.profile == "watch"
    assert set(demo.enabled_services()) == SHARED | {
        "simulator", "monitor-energy-consumption", "monitor-energy-price", "dashboard",
    }  # fmt: skip
    assert set(watch.enabled_services()) == SHARED | {"node-exporter", "monitor-watch"}
    jobs = {svc.job for svc in watch.enabled_services().values()}
    assert {"node", "monitor_watch", "anomaly_detector", "prometheus"} <= jobs
    # Prometheus scrapes the exporter, the monitor and the detector, and loads the rules.
    prom = render.local_prometheus_config(watch, ROOT)
    assert {j["job_name"] for j in prom["scrape_configs"]} == jobs
    assert prom["rule_files"] == [str(ROOT / "prometheus" / "rules" / "*.yml")]
    assert "alerting" in prom


def test_the_watch_stack_keeps_its_data_apart() -> None:
    demo, watch = load_stack(), load_stack(profile="watch")
    assert watch.data_path(ROOT) == demo.data_path(ROOT) / "watch"


def test_the_monitor_runs_on_the_watch_file_with_the_stacks_port_and_prometheus(tmp_path: Path) -> None:
    watch = load_stack(profile="watch")
    argv = service_commands(watch, ROOT, "py", tmp_path / "w.toml")["monitor-watch"]
    assert argv[:4] == ["py", "monitor.py", "--config", str(tmp_path / "w.toml")]
    port = watch.services["monitor-watch"].port
    prom = watch.services["prometheus"].port
    text = " ".join(argv)
    assert f"--port {port}" in text and f"--prometheus-url http://127.0.0.1:{prom}" in text
    assert f"--model-dir {watch.data_path(ROOT)}/models" in text
    with pytest.raises(ConfigError, match="run python -m stack --watch FILE"):
        service_commands(watch, ROOT, "py")


def test_the_committed_watch_file_is_the_node_exporter_preset_at_the_stacks_scrape() -> None:
    cfg = load_file(ROOT / "watch.toml")
    assert cfg.queries == presets.expand("node_exporter", step=5.0)
    node = load_stack(profile="watch").services["node-exporter"]
    assert node.scrape_interval == "5s"  # the preset's step: one point per scrape


def test_the_watch_banner_says_how_long_learning_takes_and_how_to_make_trouble() -> None:
    text = render.banner(load_stack(profile="watch"), ROOT, cwd=ROOT)
    assert "Streamwatch is up." in text and "node-exporter" in text and "simulator" not in text
    assert "streamwatch_monitor_series_warming" in text
    assert "timeout 60 sh -c 'while :; do :; done'" in text
    assert "var/watch/incidents.log" in text and "var/watch/alerts.log" in text
    assert "topk%2810%2C%20streamwatch_monitor_anomaly_score%29" in text


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--watch", "no-such.toml"], "no such config file"),
        (["--watch", "README.md"], "not valid TOML"),
        (["render", "--watch", "watch.toml"], "--watch goes with run"),
    ],
)
def test_a_bad_watch_file_is_one_line_before_anything_starts(argv: list[str], needle: str) -> None:
    assert_one_line_error(run_python("-m", "stack", *argv), needle, prog="stack")


def test_a_watch_file_without_queries_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "w.toml"
    empty.write_text("[monitor]\ninterval = 10\n")
    assert_one_line_error(run_python("-m", "stack", "--watch", str(empty)), "no queries", prog="stack")

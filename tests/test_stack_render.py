"""Renderings of stack.toml: Prometheus configs (promtool-checked), commands, banner, log printer."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from honcho.printer import Message

from harness.stack_variant import write_fast_config
from stack import render
from stack.__main__ import committed_files
from stack.config import ROOT, Kind, ServiceConfig, load_stack
from stack.runner import LogPrinter, health_urls, prepare_data_dir, service_commands
from streamwatch.errors import ConfigError

CFG = load_stack()


def jobs(doc: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in doc["scrape_configs"]}


def test_committed_generated_files_match_stack_toml() -> None:
    # The local stack and the compose stack cannot drift apart: both come from stack.toml.
    for path, text in committed_files().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run python -m stack render"


def test_local_prometheus_config_has_the_original_job_names() -> None:
    doc = render.local_prometheus_config(CFG, ROOT)
    by_job = jobs(doc)
    assert set(by_job) == {
        "prometheus",
        "alertmanager",
        "flask_app",
        "monitor_energy_consumption",
        "monitor_energy_price",
        "anomaly_detector",
        "alert_receiver",
    }
    assert by_job["flask_app"]["scrape_interval"] == "2s"
    assert by_job["flask_app"]["static_configs"][0]["targets"] == ["127.0.0.1:5000"]
    assert by_job["monitor_energy_consumption"]["static_configs"][0]["targets"] == ["127.0.0.1:8099"]
    assert by_job["monitor_energy_price"]["static_configs"][0]["targets"] == ["127.0.0.1:8090"]
    assert by_job["anomaly_detector"]["static_configs"][0]["targets"] == ["127.0.0.1:8110"]
    assert doc["rule_files"] == [str(ROOT / "prometheus" / "rules" / "*.yml")]
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_alerts_link_the_live_page_locally_and_grafana_only_in_compose() -> None:
    local = render.local_prometheus_config(CFG, ROOT)["global"]["external_labels"]
    compose = render.compose_prometheus_config(CFG)["global"]["external_labels"]
    port = CFG.enabled_services()["dashboard"].port
    assert local == {"dashboard_url": f"http://127.0.0.1:{port}/"}
    assert compose["dashboard_url"] == local["dashboard_url"]
    uid = json.loads((ROOT / "grafana" / "dashboards" / "streamwatch-overview.json").read_text())["uid"]
    assert compose["grafana_url"] == f"http://127.0.0.1:{CFG.grafana_port}/d/{uid}"
    # A stack without the live page links nothing locally (the rules then name only what always runs).
    off = replace(CFG.services["dashboard"], enabled=False)
    without = replace(CFG, services={**CFG.services, "dashboard": off})
    assert "external_labels" not in render.local_prometheus_config(without, ROOT)["global"]


def test_compose_prometheus_config_reaches_services_by_name() -> None:
    local = jobs(render.local_prometheus_config(CFG, ROOT))
    compose = jobs(render.compose_prometheus_config(CFG))
    assert set(local) == set(compose)
    for name, job in compose.items():
        (target,) = job["static_configs"][0]["targets"]
        host, port = target.split(":")
        service = job["static_configs"][0]["labels"]["service"]
        # A service sharing another's network is reached at that service's name.
        assert host == (CFG.services[service].compose_network_of or service)
        assert local[name]["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]
        assert CFG.services[service].port == int(port)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by make setup")
def test_promtool_accepts_both_prometheus_configs(tmp_path: Path) -> None:
    data = prepare_data_dir(_with_data_dir(tmp_path), ROOT)
    for path in (data / "prometheus.yml", ROOT / "prometheus" / "prometheus.yml"):
        out = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        # The rules are found from the file's own folder, not only inside a container.
        assert "SUCCESS: 1 rule files found" in out.stdout, out.stdout
        assert f"{_rule_count()} rules found" in out.stdout, out.stdout


def _rule_count() -> int:
    doc = yaml.safe_load((ROOT / "prometheus" / "rules" / "streamwatch.rules.yml").read_text())
    return sum(len(g["rules"]) for g in doc["groups"])


def _with_data_dir(tmp_path: Path):
    cfg = load_stack()
    cfg.data_dir = tmp_path / "var"
    return cfg


def test_prepare_data_dir_creates_the_layout(tmp_path: Path) -> None:
    data = prepare_data_dir(_with_data_dir(tmp_path), ROOT)
    assert data == tmp_path / "var"
    for sub in ("logs", "models", "prometheus", "alertmanager"):
        assert (data / sub).is_dir()
    assert jobs(yaml.safe_load((data / "prometheus.yml").read_text()))["flask_app"]


def webhook_urls(doc: dict) -> list[str]:
    return [w["url"] for r in doc["receivers"] for w in r.get("webhook_configs", [])]


def test_runtime_alertmanager_config_sends_alerts_to_this_stacks_receiver(tmp_path: Path) -> None:
    committed = yaml.safe_load((ROOT / "prometheus" / "alertmanager.yml").read_text())
    # The repository's stack: the same as the committed file (compose reads that one).
    assert render.local_alertmanager_config(CFG, committed) == committed
    # A stack on other ports (the tests' fast copy): its own receiver, never the repository's 5001.
    fast = load_stack(write_fast_config(tmp_path / "fast"))
    port = fast.services["alert-receiver"].port
    assert port != CFG.services["alert-receiver"].port
    data = prepare_data_dir(fast, ROOT)
    runtime = yaml.safe_load((data / "alertmanager.yml").read_text())
    assert webhook_urls(runtime) == [f"http://127.0.0.1:{port}/"]
    assert runtime["route"] == committed["route"] and runtime["inhibit_rules"] == committed["inhibit_rules"]
    cmd = service_commands(fast, ROOT)["alertmanager"]
    assert f"--config.file={data / 'alertmanager.yml'}" in cmd
    if shutil.which("amtool"):
        out = subprocess.run(["amtool", "check-config", str(data / "alertmanager.yml")], capture_output=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_commands_are_filled_from_the_stack() -> None:
    cmds = service_commands(_with_data_dir(Path("/srv/x")), ROOT, "/venv/bin/python")
    assert cmds["simulator"] == [
        "/venv/bin/python",
        "simulator.py",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "5000",
        "--allowed-host",
        "127.0.0.1",
    ]
    assert "http://127.0.0.1:9090" in cmds["incident-detector"]
    assert "/srv/x/var/incidents.log" in cmds["incident-detector"]
    assert "--config.file=/srv/x/var/alertmanager.yml" in cmds["alertmanager"]


@pytest.mark.parametrize("kind", ["prometheus", "alertmanager"])
def test_a_standalone_prometheus_or_alertmanager_runs_the_stacks_own_command(kind: Kind) -> None:
    # The tests start these programs on their own; their command lines are stack.toml's, not a copy.
    cfg = _with_data_dir(Path("/srv/x"))
    found = cfg.service_of_kind(kind)
    assert found is not None
    name, svc = found
    same = render.standalone_command(cfg, kind, cfg.data_path(ROOT), svc.port, ROOT, "py")
    assert same == service_commands(cfg, ROOT, "py")[name]
    other = render.standalone_command(cfg, kind, Path("/t"), 4321, ROOT, "py")
    assert f"--config.file=/t/{kind}.yml" in other
    assert "--web.listen-address=127.0.0.1:4321" in other


def test_unknown_placeholder_names_the_service() -> None:
    svc = ServiceConfig(port=1234, command=["x", "{urls[nowhere]}"])
    with pytest.raises(ConfigError, match=r"service 'thing'.*nowhere"):
        render.render_command("thing", svc, render.local_context(CFG, ROOT, "python"))


def test_banner_lists_every_service_and_what_to_try() -> None:
    text = render.banner(CFG, ROOT, cwd=ROOT)
    for name, svc in CFG.enabled_services().items():
        assert name in text
        assert f"http://127.0.0.1:{svc.port}" in text
    assert "curl -s -X POST http://127.0.0.1:5000/anomalies" in text
    assert "tail -f var/incidents.log" in text
    assert "http://127.0.0.1:9090/graph?g0.expr=" in text
    assert "Ctrl-C" in text


def test_log_printer_splits_service_output_from_its_own_lines(tmp_path: Path) -> None:
    console = io.StringIO()
    stops: list[tuple[str, int]] = []
    printer = LogPrinter(tmp_path, console, echo=False, on_stop=lambda n, rc: stops.append((n, rc)))
    now = datetime.now()
    printer.write(Message("line", b"serving on 5000\n", now, "simulator", None))
    printer.write(Message("line", "simulator stopped (rc=1)\n", now, "system", None))
    printer.close()
    assert (tmp_path / "simulator.log").read_text() == "serving on 5000\n"
    assert "serving on 5000" not in console.getvalue()
    assert "stack: simulator stopped (rc=1)" in console.getvalue()
    assert stops == [("simulator", 1)]


def test_log_printer_gives_every_service_its_log_before_any_output(tmp_path: Path) -> None:
    # Prometheus and Alertmanager may print nothing for a long time; their logs must exist all the same.
    printer = LogPrinter(tmp_path, io.StringIO(), echo=False, on_stop=lambda n, rc: None, services=["a", "b"])
    printer.write(Message("line", b"hello\n", datetime.now(), "a", None))
    printer.close()
    assert (tmp_path / "a.log").read_text() == "hello\n"
    assert (tmp_path / "b.log").read_text() == ""


def test_prometheus_has_no_lifecycle_api_and_cors_only_for_the_dashboard(tmp_path: Path) -> None:
    # --web.enable-lifecycle let any web page POST /-/quit; Prometheus' default CORS origin is ".*".
    cmd = service_commands(CFG, ROOT)["prometheus"]
    assert not any("lifecycle" in arg for arg in cmd)
    [cors] = [a.removeprefix("--web.cors.origin=") for a in cmd if a.startswith("--web.cors.origin=")]
    dashboard = CFG.services["dashboard"].port
    for origin in (f"http://127.0.0.1:{dashboard}", f"http://localhost:{dashboard}"):
        assert re.fullmatch(cors, origin), origin
    for origin in (
        "http://evil.example",
        f"http://127.0.0.1:{dashboard + 1}",
        f"http://127a0b0c1:{dashboard}",
    ):
        assert not re.fullmatch(cors, origin), origin
    # A stack without the dashboard (the tests' fast copies may drop it) still renders.
    no_dash = load_stack(write_fast_config(tmp_path / "fast"))
    no_dash.services["dashboard"].enabled = False
    assert any(a.startswith("--web.cors.origin=") for a in service_commands(no_dash, ROOT)["prometheus"])


# --- replicas = N: one service as N shards ---------------------------------------------------------

REPLICATED = """
[services.prometheus]
kind = "prometheus"
port = 9090
job = "prometheus"
command = ["prometheus", "--web.listen-address={host}:{port}"]

[services.simulator]
port = 5000
job = "flask_app"
command = ["{python}", "simulator.py", "serve", "--port", "{port}"]

[services.monitor]
port = 8090
replicas = 3
job = "streamwatch_monitor"
description = "sharded monitor"
command = ["{python}", "monitor.py", "--port", "{port}", "--prometheus-url", "{urls[prometheus]}"]

[services.reader]
port = 8200
job = "reader"
command = ["{python}", "reader.py", "{urls[monitor]}"]
"""


def replicated(tmp_path: Path):
    path = tmp_path / "stack.toml"
    path.write_text(REPLICATED)
    return load_stack(path)


def test_replicas_start_as_shards_on_consecutive_ports(tmp_path: Path) -> None:
    cfg = replicated(tmp_path)
    cmds = service_commands(cfg, ROOT, "py")
    assert list(cmds) == ["prometheus", "simulator", "monitor-0", "monitor-1", "monitor-2", "reader"]
    for i in range(3):
        assert cmds[f"monitor-{i}"] == [
            "py",
            "monitor.py",
            "--port",
            str(8090 + i),
            "--prometheus-url",
            "http://127.0.0.1:9090",
            "--shard",
            f"{i}/3",
        ]
    assert cmds["simulator"][-2:] == ["--port", "5000"]  # a service without replicas is unchanged
    assert cmds["reader"][-1] == "http://127.0.0.1:8090"  # {urls[NAME]}: the first replica
    assert list(health_urls(cfg))[2:5] == ["monitor-0", "monitor-1", "monitor-2"]
    assert health_urls(cfg)["monitor-2"] == "http://127.0.0.1:8092/metrics"


def test_prometheus_scrapes_every_replica_under_one_job(tmp_path: Path) -> None:
    cfg = replicated(tmp_path)
    local = jobs(render.local_prometheus_config(cfg, ROOT))["streamwatch_monitor"]
    assert local["static_configs"] == [
        {
            "targets": ["127.0.0.1:8090", "127.0.0.1:8091", "127.0.0.1:8092"],
            "labels": {"service": "monitor"},
        }
    ]
    compose = jobs(render.compose_prometheus_config(cfg))["streamwatch_monitor"]
    assert compose["static_configs"][0]["targets"] == ["monitor-0:8090", "monitor-1:8091", "monitor-2:8092"]
    if shutil.which("promtool"):
        data = prepare_data_dir(_moved(cfg, tmp_path), ROOT)
        out = subprocess.run(
            ["promtool", "check", "config", "--syntax-only", str(data / "prometheus.yml")],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr


def _moved(cfg, tmp_path: Path):
    cfg.data_dir = tmp_path / "var"
    return cfg


def test_compose_runs_each_replica_as_a_service_of_its_own(tmp_path: Path) -> None:
    services = render.compose_file(replicated(tmp_path))["services"]
    for i in range(3):
        entry = services[f"monitor-{i}"]
        assert entry["command"][-2:] == ["--shard", f"{i}/3"]
        assert entry["ports"] == [f"127.0.0.1:{8090 + i}:{8090 + i}"]
    assert "monitor" not in services
    assert services["reader"]["depends_on"] == ["monitor-0", "monitor-1", "monitor-2"]


def test_banner_lists_every_replica(tmp_path: Path) -> None:
    text = render.banner(replicated(tmp_path), ROOT, cwd=ROOT)
    for i in range(3):
        assert f"monitor-{i}" in text and f"http://127.0.0.1:{8090 + i}/metrics" in text
        assert f"sharded monitor (shard {i}/3)" in text


def test_the_default_stack_has_no_replicas() -> None:
    # `make demo` stays as it was: one process per service, no --shard anywhere.
    assert list(CFG.processes()) == list(CFG.enabled_services())
    assert not any("--shard" in argv for argv in service_commands(CFG, ROOT).values())

"""stack.toml -> StackConfig: the real file loads, and every mistake is one ConfigError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.net import busy_port
from stack.config import DEFAULT_CONFIG, load_stack
from stack.runner import check_ports, prepare_data_dir
from streamwatch.errors import ConfigError, UserError
from streamwatch.net import free_port

MINIMAL = """
[services.prometheus]
kind = "prometheus"
port = {prom}
job = "prometheus"
command = ["prometheus"]

[services.simulator]
port = {sim}
job = "flask_app"
command = ["{{python}}", "simulator.py"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.toml"
    path.write_text(text)
    return path


def test_repository_stack_uses_the_contract_ports() -> None:
    cfg = load_stack(DEFAULT_CONFIG)
    ports = {name: svc.port for name, svc in cfg.enabled_services().items()}
    # docs/stack.md, "Ports".
    assert ports["simulator"] == 5000
    assert ports["prometheus"] == 9090
    assert ports["alertmanager"] == 9093
    assert ports["monitor-energy-consumption"] == 8099
    assert ports["monitor-energy-price"] == 8090
    assert ports["incident-detector"] == 8110
    assert cfg.host == "127.0.0.1"
    assert str(cfg.data_dir) == "var"


def test_minimal_stack_loads(tmp_path: Path) -> None:
    cfg = load_stack(write(tmp_path, MINIMAL.format(prom=9090, sim=5000)))
    assert list(cfg.services) == ["prometheus", "simulator"]
    assert cfg.services["simulator"].health_path == "/metrics"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (MINIMAL.format(prom=5000, sim=5000), "both use port 5000"),
        (MINIMAL.format(prom=9090, sim=70000), "port must be 1 to 65,535, got 70000"),
        (
            MINIMAL.format(prom=9090, sim=5000).replace('job = "flask_app"', 'jobb = "x"'),
            "unknown key 'jobb'",
        ),
        (MINIMAL.format(prom=9090, sim=5000).replace('kind = "prometheus"', 'kind = "nginx"'), "kind"),
        (MINIMAL.format(prom=9090, sim=5000) + '[stack]\nscrape_interval = "fast"\n', "scrape_interval"),
        (MINIMAL.format(prom=9090, sim=5000).replace("[services.simulator]", "[services.Sim_1]"), "Sim_1"),
        (MINIMAL.format(prom=9090, sim=5000) + "[extra]\nx = 1\n", "unknown table(s) extra"),
        ("[stack]\n", "at least one service"),
        (
            MINIMAL.format(prom=9090, sim=5000).replace('job = "flask_app"', "replicas = 0"),
            "replicas must be 1 to 64",
        ),
        (
            MINIMAL.format(prom=9090, sim=5000).replace('job = "prometheus"', "replicas = 2"),
            "replicas > 1 needs a Python service",
        ),
        (
            MINIMAL.format(prom=9090, sim=65535).replace('job = "flask_app"', "replicas = 2"),
            "past port 65535",
        ),
        (
            MINIMAL.format(prom=9091, sim=9090).replace('job = "flask_app"', "replicas = 2"),
            "'prometheus' and 'simulator-1' both use port 9091",
        ),
        (
            MINIMAL.format(prom=9090, sim=5000).replace('job = "flask_app"', "replicas = 2")
            + '[services.simulator-1]\nport = 6000\ncommand = ["x"]\n',
            "both called 'simulator-1'",
        ),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_stack_configs_are_one_line_errors(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_stack(write(tmp_path, text))
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_stack_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_stack(tmp_path / "nope.toml")


def test_busy_port_is_reported_by_service_name(tmp_path: Path) -> None:
    with busy_port() as port:
        cfg = load_stack(write(tmp_path, MINIMAL.format(prom=free_port(), sim=port)))
        with pytest.raises(UserError) as info:
            check_ports(cfg)
    assert f"port {port} for simulator on 127.0.0.1 is already in use" in str(info.value)
    check_ports(cfg)  # released: nothing to report any more


def test_a_data_dir_that_cannot_be_made_is_one_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    text = f'[stack]\ndata_dir = "{blocker / "var"}"\n' + MINIMAL.format(prom=free_port(), sim=free_port())
    cfg = load_stack(write(tmp_path, text))
    with pytest.raises(UserError, match=r"cannot prepare the data folder .*a-file/var"):
        prepare_data_dir(cfg)


def test_a_replicated_service_is_that_many_processes(tmp_path: Path) -> None:
    cfg = load_stack(
        write(tmp_path, MINIMAL.format(prom=9090, sim=5000).replace('job = "flask_app"', "replicas = 3"))
    )
    procs = cfg.processes()
    assert list(procs) == ["prometheus", "simulator-0", "simulator-1", "simulator-2"]
    assert [p.port for p in procs.values()] == [9090, 5000, 5001, 5002]
    assert [p.shard_args() for p in procs.values()] == [
        [],
        ["--shard", "0/3"],
        ["--shard", "1/3"],
        ["--shard", "2/3"],
    ]
    assert cfg.services["simulator"].port == 5000  # the service keeps its first port


def test_a_busy_replica_port_names_the_replica(tmp_path: Path) -> None:
    with busy_port() as port:
        text = MINIMAL.format(prom=free_port(), sim=port - 1).replace('job = "flask_app"', "replicas = 2")
        cfg = load_stack(write(tmp_path, text))
        with pytest.raises(UserError, match=f"port {port} for simulator-1 .*\\[services.simulator\\] port"):
            check_ports(cfg)

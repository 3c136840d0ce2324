"""docker-compose.yml: valid for docker-compose v1, and consistent with stack.toml (no Docker engine here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from stack import render
from stack.config import ROOT, load_stack

CFG = load_stack()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="make setup installs it")
def test_docker_compose_accepts_the_file_only_with_a_grafana_password(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    env["HOME"] = str(tmp_path)
    ok = compose_config({**env, "GRAFANA_ADMIN_PASSWORD": "s3cret-from-env"})
    assert ok.returncode == 0, ok.stderr
    # Without a password from .env, or with the example copied unedited, compose refuses: Grafana never
    # starts as admin/admin or with a password anyone can read in the repository.
    if not (ROOT / ".env").exists():
        example = (ROOT / "docker/.env.example").read_text()
        line = next(ln for ln in example.splitlines() if ln.startswith("GRAFANA_ADMIN_PASSWORD="))
        unedited = {**env, "GRAFANA_ADMIN_PASSWORD": line.split("=", 1)[1]}
        for refused in (compose_config(env), compose_config(unedited)):
            assert refused.returncode != 0
            assert "GRAFANA_ADMIN_PASSWORD" in refused.stderr


def test_v1_compatible_top_level() -> None:
    assert set(COMPOSE) == {"services", "volumes"}  # no `name:` (v1 rejects it), no obsolete `version:`


def test_every_stack_service_is_in_compose_with_its_port_published_on_loopback() -> None:
    assert set(SERVICES) == set(CFG.enabled_services()) | {"grafana", render.CREDENTIALS_SERVICE}
    for name, svc in CFG.enabled_services().items():
        published = f"127.0.0.1:{svc.port}:{svc.port}"
        if svc.compose_network_of:
            # It shares the other service's network, so that service publishes its port.
            assert SERVICES[name]["network_mode"] == f"service:{svc.compose_network_of}", name
            assert "ports" not in SERVICES[name]
            assert published in SERVICES[svc.compose_network_of]["ports"], name
        else:
            assert SERVICES[name]["ports"][0] == published, name
        assert "healthcheck" in SERVICES[name], name
        assert SERVICES[name]["restart"] == "unless-stopped"


def test_python_services_run_the_stack_commands_with_container_addresses() -> None:
    ctx = render.compose_context(CFG)
    for name, svc in CFG.enabled_services().items():
        if svc.kind != "python":
            continue
        command = SERVICES[name]["command"]
        assert command == render.render_command(name, svc, ctx)
        local = render.render_command(name, svc, render.local_context(CFG, ROOT, "python"))
        assert len(command) == len(local)  # the same flags; only addresses and paths differ
        assert command[0] == "python"
        assert "127.0.0.1" not in " ".join(command), f"{name} would be unreachable in its container"
        for url in re.findall(r"http://([a-z0-9-]+):(\d+)", " ".join(command)):
            assert url[0] in SERVICES and int(url[1]) == CFG.services[url[0]].port
            assert url[0] in SERVICES[name]["depends_on"]
        if "--allowed-host" in command:  # a guarded service takes requests by its compose name
            assert command[command.index("--allowed-host") + 1] == render.compose_hosts(CFG)[name] == name
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["volumes"] == ["streamwatch-data:/data"]
        probe = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{svc.port}{svc.health_path}" in probe


def test_alertmanagers_webhook_reaches_the_alert_receiver_in_compose_as_locally() -> None:
    am_config = yaml.safe_load((ROOT / "prometheus/alertmanager.yml").read_text())
    urls = [w["url"] for r in am_config["receivers"] for w in r.get("webhook_configs", [])]
    receiver = CFG.services["alert-receiver"]
    assert urls == [f"http://127.0.0.1:{receiver.port}/"]
    assert receiver.compose_network_of == "alertmanager"  # so 127.0.0.1 is the receiver in compose too


def test_prometheus_and_alertmanager_use_the_repository_configs() -> None:
    prom = SERVICES["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert f"--web.listen-address=0.0.0.0:{CFG.services['prometheus'].port}" in prom["command"]
    assert not any("lifecycle" in arg for arg in prom["command"])  # POST /-/quit stopped Prometheus
    assert f"--web.cors.origin={render.dashboard_origin(CFG, '127.0.0.1')}" in prom["command"]
    am = SERVICES["alertmanager"]
    assert "./prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in am["volumes"]
    for volume in ("prometheus-data", "alertmanager-data", "grafana-data", "streamwatch-data"):
        assert volume in COMPOSE["volumes"]
    for service in SERVICES.values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists() or source == "./prometheus/alertmanager.yml", source


def test_grafana_is_provisioned_and_never_admin_admin() -> None:
    graf = SERVICES["grafana"]
    env = graf["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in graf["volumes"]
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in graf["volumes"]
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/streamwatch.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana/dashboards" / home.rsplit("/", 1)[1]).is_file()
    example = (ROOT / "docker/.env.example").read_text()
    assert "GRAFANA_ADMIN_PASSWORD=" in example.splitlines()  # empty: the user must choose one


def test_dockerfile_runs_as_an_unprivileged_user() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(ln.startswith("FROM python:3.11") for ln in lines)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".venv", "var", ".git", ".env"):
        assert path in ignored


def test_alertmanager_requires_the_credential_the_one_shot_service_makes_in_compose() -> None:
    # Issue 22, item 6: the same credential as the local stack, made before Alertmanager starts.
    am, prom = SERVICES["alertmanager"], SERVICES["prometheus"]
    maker = SERVICES[render.CREDENTIALS_SERVICE]
    assert maker["command"][-3:] == ["credentials", "--data-dir", render.COMPOSE_SECRETS_DIR]
    assert am["depends_on"] == {render.CREDENTIALS_SERVICE: {"condition": "service_completed_successfully"}}
    assert f"--web.config.file={render.COMPOSE_SECRETS_DIR}/alertmanager-web.yml" in am["command"]
    for svc in (am, prom):
        assert f"alertmanager-secrets:{render.COMPOSE_SECRETS_DIR}:ro" in svc["volumes"]
    doc = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    auth = {"username": "streamwatch", "password_file": f"{render.COMPOSE_SECRETS_DIR}/alertmanager.password"}
    assert doc["alerting"]["alertmanagers"][0]["basic_auth"] == auth
    [am_job] = [j for j in doc["scrape_configs"] if j["job_name"] == "alertmanager"]
    assert am_job["basic_auth"] == auth
    assert "$$(cat /secrets/alertmanager.password)" in am["healthcheck"]["test"][1]

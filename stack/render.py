"""Pure renderings of the stack description: commands, Prometheus configs, docker-compose.yml, banner.

No processes, sockets or clocks here: every function maps a ``StackConfig`` to a value, so the local
stack, the committed ``prometheus/prometheus.yml`` and ``docker-compose.yml`` come from one place
and tests can compare them directly.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from stack import credentials
from stack.config import Kind, Process, ServiceConfig, StackConfig
from streamwatch.errors import ConfigError

GENERATED_HEADER = (
    "# Generated from stack.toml by `python -m stack render`; edit stack.toml, then re-run it.\n"
    "# tests/test_stack_render.py fails when this file and stack.toml disagree.\n"
)

# Inside containers: where the repository, the Python services' data and Prometheus' files live.
COMPOSE_ROOT = "/app"
COMPOSE_DATA_DIR = "/data"
COMPOSE_PROMETHEUS_DIR = "/etc/prometheus"
# The Alertmanager credential, made by a one-shot service and mounted read-only where it is needed.
COMPOSE_SECRETS_DIR = "/secrets"
CREDENTIALS_SERVICE = "alertmanager-credential"

PROMETHEUS_IMAGE = "prom/prometheus:v2.53.1"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.27.0"
GRAFANA_IMAGE = "grafana/grafana-oss:11.1.3"
VOLUMES = ("prometheus-data", "alertmanager-data", "grafana-data", "streamwatch-data", "alertmanager-secrets")


@dataclass(frozen=True)
class Context:
    """The values a service's command placeholders are filled with, in one environment."""

    python: str
    root: str
    host: str
    data_dir: str
    ports: dict[str, int]
    urls: dict[str, str]
    hostnames: dict[str, str]  # the name other services call each one by (its Host header)
    dashboard_origin: str  # a regex for Prometheus' --web.cors.origin
    watch_config: str = ""  # the --config file of the watch stack's monitor (python -m stack --watch FILE)


def local_context(cfg: StackConfig, root: Path, python: str, watch_config: Path | None = None) -> Context:
    services = cfg.enabled_services()
    return Context(
        python=python,
        root=str(root),
        host=cfg.host,
        data_dir=str(cfg.data_path(root)),
        ports={name: svc.port for name, svc in services.items()},
        urls={name: f"http://{cfg.host}:{svc.port}" for name, svc in services.items()},
        hostnames=dict.fromkeys(services, cfg.host),
        dashboard_origin=dashboard_origin(cfg, cfg.host),
        watch_config=str(watch_config or ""),
    )


def compose_context(cfg: StackConfig) -> Context:
    services = cfg.enabled_services()
    hosts = compose_hosts(cfg)
    # {urls[NAME]} of a replicated service is its first replica's.
    first = {name: cfg.replicas_of(name)[0] for name in services}
    return Context(
        python="python",
        root=COMPOSE_ROOT,
        host="0.0.0.0",  # inside its container a service must listen beyond loopback to be reachable
        data_dir=COMPOSE_DATA_DIR,
        ports={name: svc.port for name, svc in services.items()},
        urls={name: f"http://{hosts[p.name]}:{p.port}" for name, p in first.items()},
        hostnames={name: hosts[p.name] for name, p in first.items()},
        dashboard_origin=dashboard_origin(cfg, "127.0.0.1"),  # the browser reaches published ports
    )


def process_command(proc: Process, ctx: Context) -> list[str]:
    """A process's argv: its service's command, filled with its own port, plus its ``--shard`` if any."""
    return render_command(proc.service, proc.config, ctx) + proc.shard_args()


def dashboard_origin(cfg: StackConfig, host: str) -> str:
    """The dashboard's own origin as a fully anchored regex (``http://(127\\.0\\.0\\.1|localhost):8000``).

    Prometheus answers cross-origin reads from that page only; without a dashboard, from its own origin
    only (which needs no CORS at all), never ``.*``, Prometheus' default.
    """
    services = cfg.enabled_services()
    port = services["dashboard"].port if "dashboard" in services else prometheus_service(cfg)[1].port
    names = sorted({"localhost", "127.0.0.1", host} - {"0.0.0.0", "::", ""})
    return f"http://({'|'.join(re.escape(n) for n in names)}):{port}"


def render_command(name: str, svc: ServiceConfig, ctx: Context) -> list[str]:
    """Fill a service's argv placeholders; an unknown placeholder is a config error naming the service."""
    values = {
        "python": ctx.python,
        "root": ctx.root,
        "host": ctx.host,
        "port": svc.port,
        "data_dir": ctx.data_dir,
        "name": name,
        "ports": ctx.ports,
        "urls": ctx.urls,
        "hostname": ctx.hostnames.get(name, ctx.host),
        "dashboard_origin": ctx.dashboard_origin,
        "watch_config": ctx.watch_config,
    }
    out = []
    for arg in svc.command:
        if "{watch_config}" in arg and not ctx.watch_config:
            raise ConfigError(f"service {name!r} watches a --config file: run python -m stack --watch FILE")
        try:
            out.append(arg.format(**values))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"service {name!r}: cannot fill placeholder in {arg!r}: {exc}") from None
    return out


def standalone_command(
    cfg: StackConfig, kind: Kind, data_dir: Path, port: int, root: Path, python: str
) -> list[str]:
    """The command of the stack's service of ``kind`` for one process started on its own (a test's
    Prometheus, say): ``port`` and ``data_dir`` stand in for the stack's, so its files are looked for in
    ``data_dir`` exactly where the stack keeps them (``{data_dir}/prometheus.yml``, ...)."""
    found = cfg.service_of_kind(kind)
    if found is None:
        raise ConfigError(f"no enabled service of kind {kind!r} in the stack")
    name, svc = found
    local = local_context(cfg, root, python)
    ctx = replace(
        local,
        data_dir=str(data_dir),
        ports={**local.ports, name: port},
        urls={**local.urls, name: f"http://{cfg.host}:{port}"},
    )
    return render_command(name, replace(svc, port=port), ctx)


def prometheus_service(cfg: StackConfig) -> tuple[str, ServiceConfig]:
    found = cfg.service_of_kind("prometheus")
    assert found is not None  # StackConfig guarantees exactly one
    return found


GRAFANA_DASHBOARD_UID = "streamwatch-overview"  # grafana/dashboards/streamwatch-overview.json


def alert_links(cfg: StackConfig, compose: bool) -> dict[str, str]:
    """Where the alerts' descriptions send people, as Prometheus external labels the rules read
    (``$externalLabels.dashboard_url``, ``$externalLabels.grafana_url``): the live page when the stack
    runs it, and Grafana's overview only in the compose variant, the one that runs Grafana. Both are
    the addresses a browser on this machine uses (services publish on its loopback in compose too)."""
    links: dict[str, str] = {}
    dashboard = cfg.enabled_services().get("dashboard")
    if dashboard is not None:
        host = "127.0.0.1" if compose or cfg.host in ("0.0.0.0", "::", "") else cfg.host
        links["dashboard_url"] = f"http://{host}:{dashboard.port}{dashboard.ui_path or '/'}"
    if compose:
        links["grafana_url"] = f"http://127.0.0.1:{cfg.grafana_port}/d/{GRAFANA_DASHBOARD_UID}"
    return links


def prometheus_config(
    cfg: StackConfig,
    hosts: dict[str, str],
    rule_files: list[str],
    am_password_file: str = "",
    links: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Prometheus' config: one scrape job per service with a ``job``, the rules, and Alertmanager.

    ``hosts`` maps each process name (``cfg.processes()``) to the host Prometheus reaches it at
    (127.0.0.1 locally, the compose service name in compose). A replicated service is one job with a
    target per replica. Alertmanager requires the stack's credential (``stack.credentials``): its alerts
    and its scrape use ``am_password_file``. ``links`` (``alert_links``) become external labels.
    """
    glob: dict[str, Any] = {
        "scrape_interval": cfg.scrape_interval,
        "evaluation_interval": cfg.evaluation_interval,
    }
    if links:
        glob["external_labels"] = dict(links)
    doc: dict[str, Any] = {"global": glob, "rule_files": rule_files}
    am = cfg.service_of_kind("alertmanager")
    auth = {"basic_auth": {"username": credentials.USER, "password_file": am_password_file}}
    if am is not None:
        doc["alerting"] = {
            "alertmanagers": [{**auth, "static_configs": [{"targets": [f"{hosts[am[0]]}:{am[1].port}"]}]}]
        }
    jobs = []
    for name, svc in cfg.enabled_services().items():
        if not svc.job:
            continue
        job: dict[str, Any] = {"job_name": svc.job}
        if svc.scrape_interval:
            job["scrape_interval"] = svc.scrape_interval
        if svc.metrics_path != "/metrics":
            job["metrics_path"] = svc.metrics_path
        if svc.kind == "alertmanager":
            job.update(auth)
        targets = [f"{hosts[p.name]}:{p.port}" for p in cfg.replicas_of(name)]
        job["static_configs"] = [{"targets": targets, "labels": {"service": name}}]
        jobs.append(job)
    doc["scrape_configs"] = jobs
    return doc


def local_prometheus_config(cfg: StackConfig, root: Path) -> dict[str, Any]:
    hosts = dict.fromkeys(cfg.processes(), cfg.host)
    rules = [str(root / "prometheus" / "rules" / "*.yml")]
    password = str(cfg.data_path(root) / credentials.PASSWORD_FILE)
    return prometheus_config(cfg, hosts, rules, password, alert_links(cfg, compose=False))


def local_alertmanager_config(cfg: StackConfig, committed: dict[str, Any]) -> dict[str, Any]:
    """``prometheus/alertmanager.yml`` (parsed) with its loopback webhooks sent to this stack's receiver.

    The receiver is the service that shares Alertmanager's network in compose, which is why the committed
    file can say ``127.0.0.1``; locally its port comes from stack.toml, so a stack on other ports (the
    tests' fast copy, or a user's edit) never delivers its alerts to another stack's receiver.
    """
    services = cfg.enabled_services()
    am = cfg.service_of_kind("alertmanager")
    receiver = next((s for s in services.values() if am and s.compose_network_of == am[0]), None)
    doc = json.loads(json.dumps(committed))  # a deep copy of plain YAML data
    if receiver is None:
        return doc
    for rcv in doc.get("receivers", []):
        for hook in rcv.get("webhook_configs", []):
            url = hook.get("url", "")
            m = re.match(r"^http://127\.0\.0\.1:\d+(/.*)?$", url)
            if m:
                hook["url"] = f"http://{cfg.host}:{receiver.port}{m.group(1) or '/'}"
    return doc


def compose_hosts(cfg: StackConfig) -> dict[str, str]:
    """Each process's host name in the compose network (its own, or the one whose network it shares);
    each replica of a replicated service is a compose service of its own, NAME-I."""
    return {name: p.config.compose_network_of or name for name, p in cfg.processes().items()}


def compose_prometheus_config(cfg: StackConfig) -> dict[str, Any]:
    hosts = compose_hosts(cfg)
    # Relative to the config file's folder: /etc/prometheus/rules in compose, and prometheus/rules/ when
    # someone runs `promtool check config prometheus/prometheus.yml` in the repository (rules checked too).
    return prometheus_config(
        cfg,
        hosts,
        ["rules/*.yml"],
        f"{COMPOSE_SECRETS_DIR}/{credentials.PASSWORD_FILE}",
        alert_links(cfg, compose=True),
    )


_REFERENCE = re.compile(r"\{(?:urls|ports)\[([^\]]+)\]\}")


def _referenced_services(svc: ServiceConfig) -> list[str]:
    """The services a command talks to (its ``{urls[NAME]}``/``{ports[NAME]}``), in order of mention."""
    names: list[str] = []
    for arg in svc.command:
        for name in _REFERENCE.findall(arg):
            if name not in names:
                names.append(name)
    return names


def _wget_check(port: int, path: str, auth: bool = False) -> dict[str, Any]:
    # The upstream images are busybox/alpine based: wget is there, curl is not.
    test = ["CMD", "wget", "-q", "--spider", f"http://127.0.0.1:{port}{path}"]
    if auth:  # Alertmanager answers 401 without the stack's credential
        pw = f"{COMPOSE_SECRETS_DIR}/{credentials.PASSWORD_FILE}"
        url = f"http://{credentials.USER}:$$(cat {pw})@127.0.0.1:{port}{path}"
        test = ["CMD-SHELL", f"wget -q --spider {url}"]
    return {
        "test": test,
        "interval": "10s",
        "timeout": "5s",
        "retries": 5,
    }


def _python_check(port: int, path: str) -> dict[str, Any]:
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=4)"
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": "10s",
        "timeout": "5s",
        "retries": 5,
        "start_period": "120s",  # the monitors fit Prophet before their first cycle
    }


def _published(port: int, container_port: int | None = None) -> str:
    # Published on the host's loopback only, like the local stack: nothing listens on the LAN by default.
    return f"127.0.0.1:{port}:{container_port or port}"


def compose_file(cfg: StackConfig) -> dict[str, Any]:
    """docker-compose.yml (Compose file format without ``version``/``name``: docker-compose v1.27+ and v2)."""
    ctx = compose_context(cfg)
    services: dict[str, Any] = {}
    prom_name, _ = prometheus_service(cfg)
    for name, proc in cfg.processes().items():
        svc = proc.config
        entry: dict[str, Any]
        if svc.kind == "prometheus":
            entry = {
                "image": PROMETHEUS_IMAGE,
                "command": [
                    f"--config.file={COMPOSE_PROMETHEUS_DIR}/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    f"--web.listen-address=0.0.0.0:{svc.port}",
                    f"--web.cors.origin={ctx.dashboard_origin}",  # and never --web.enable-lifecycle (/-/quit)
                ],
                "volumes": [
                    "./prometheus:/etc/prometheus:ro",
                    "prometheus-data:/prometheus",
                    f"alertmanager-secrets:{COMPOSE_SECRETS_DIR}:ro",
                ],
                "healthcheck": _wget_check(svc.port, svc.health_path),
            }
        elif svc.kind == "alertmanager":
            entry = {
                "image": ALERTMANAGER_IMAGE,
                "command": [
                    "--config.file=/etc/alertmanager/alertmanager.yml",
                    "--storage.path=/alertmanager",
                    f"--web.listen-address=0.0.0.0:{svc.port}",
                    "--cluster.listen-address=",
                    f"--web.config.file={COMPOSE_SECRETS_DIR}/{credentials.WEB_CONFIG_FILE}",
                ],
                "volumes": [
                    "./prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro",
                    "alertmanager-data:/alertmanager",
                    f"alertmanager-secrets:{COMPOSE_SECRETS_DIR}:ro",
                ],
                "healthcheck": _wget_check(svc.port, svc.health_path, auth=True),
                "depends_on": {CREDENTIALS_SERVICE: {"condition": "service_completed_successfully"}},
            }
        else:
            entry = {
                "build": ".",
                "image": "streamwatch:latest",
                "command": process_command(proc, ctx),
                "volumes": [f"streamwatch-data:{COMPOSE_DATA_DIR}"],
                "healthcheck": _python_check(svc.port, svc.health_path),
            }
            needs = [p.name for n in _referenced_services(svc) for p in cfg.replicas_of(n)]
            if needs:
                entry["depends_on"] = needs
        if svc.compose_network_of:
            # Sharing another service's network: that service publishes this one's port.
            entry["network_mode"] = f"service:{svc.compose_network_of}"
            entry.setdefault("depends_on", []).append(svc.compose_network_of)
        else:
            entry["ports"] = [_published(svc.port)]
        entry["restart"] = "unless-stopped"
        services[name] = entry
    for svc in cfg.enabled_services().values():
        if svc.compose_network_of:
            services[svc.compose_network_of]["ports"].append(_published(svc.port))
    if "alertmanager" in {s.kind for s in cfg.enabled_services().values()}:
        am_name = cfg.service_of_kind("alertmanager")[0]  # type: ignore[index]
        services[prom_name]["depends_on"] = [am_name]
        services[CREDENTIALS_SERVICE] = {
            "build": ".",
            "image": "streamwatch:latest",
            "command": ["python", "-m", "stack", "credentials", "--data-dir", COMPOSE_SECRETS_DIR],
            "volumes": [f"alertmanager-secrets:{COMPOSE_SECRETS_DIR}"],
            "restart": "no",
        }
    services["grafana"] = {
        "image": GRAFANA_IMAGE,
        "environment": {
            # Anonymous visitors may look; the admin password must come from .env (never admin/admin).
            "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD in .env, "
            "see docker/.env.example}",
            "GF_AUTH_ANONYMOUS_ENABLED": "true",
            "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": "/etc/grafana/dashboards/streamwatch-overview.json",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
        },
        "volumes": [
            "./grafana/provisioning:/etc/grafana/provisioning:ro",
            "./grafana/dashboards:/etc/grafana/dashboards:ro",
            "grafana-data:/var/lib/grafana",
        ],
        "ports": [_published(cfg.grafana_port, 3000)],
        "healthcheck": _wget_check(3000, "/api/health"),
        "depends_on": [prom_name],
        "restart": "unless-stopped",
    }
    return {
        "services": services,
        "volumes": {v: {} for v in VOLUMES},
    }


GRAFANA_DATASOURCE_UID = "streamwatch-prometheus"  # every dashboard panel names this uid


def grafana_datasource(cfg: StackConfig) -> dict[str, Any]:
    """Grafana's provisioned Prometheus datasource, reaching Prometheus by its compose service name."""
    name, svc = prometheus_service(cfg)
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": GRAFANA_DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": f"http://{name}:{svc.port}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": cfg.scrape_interval},
            }
        ],
    }


def dump_yaml(doc: dict[str, Any], header: str = GENERATED_HEADER) -> str:
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def prometheus_graph_url(base: str, expr: str, range_input: str = "30m") -> str:
    query = urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_input}, quote_via=quote)
    return f"{base}/graph?{query}"


def banner(cfg: StackConfig, root: Path, cwd: Path | None = None) -> str:
    """The one block printed once every service is healthy: what runs where, and what to try next."""
    ctx = local_context(cfg, root, "python")
    services = cfg.enabled_services()
    processes = cfg.processes()
    width = max(len(n) for n in processes)
    urls = {
        name: f"http://{cfg.host}:{p.port}{p.config.ui_path or p.config.health_path}"
        for name, p in processes.items()
    }
    url_width = max(len(u) for u in urls.values())
    lines = ["", "Streamwatch is up. Ctrl-C stops everything.", ""]
    for name, p in processes.items():
        what = p.config.description + (f" (shard {p.index}/{p.count})" if p.count > 1 else "")
        lines.append(f"  {name.ljust(width)}  {urls[name].ljust(url_width)}  {what}".rstrip())
    data = cfg.data_path(root)
    shown = data
    base = cwd or Path.cwd()
    if data.is_relative_to(base):
        shown = data.relative_to(base)
    lines.append("")
    lines.append("Try next:")
    sim = services.get("simulator")
    if sim is not None:
        body = json.dumps(
            {"metric": cfg.demo_metric, "kind": "spike", "magnitude": 3.0, "duration_s": 300},
            separators=(",", ":"),
        )
        lines.append("  inject a prolonged spike (3x for 5 minutes; expect a Sev 2 incident):")
        lines.append(
            f"    curl -s -X POST {ctx.urls['simulator']}/anomalies -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}"
        )
    watching = [p for p in processes.values() if any("{watch_config}" in a for a in p.config.command)]
    if watching:
        monitor = f"http://{cfg.host}:{watching[0].port}/metrics"
        lines.append(
            "  series still learning from Prometheus' history (a few minutes on a fresh Prometheus):"
        )
        lines.append(f"    curl -s {monitor} | grep '^streamwatch_monitor_series_warming'")
        lines.append(
            "  keep every CPU busy for a minute (with the node_exporter preset: a Sev 2 on cpu_busy):"
        )
        lines.append("    for i in $(seq \"$(nproc)\"); do timeout 60 sh -c 'while :; do :; done' & done")
    lines.append("  watch incidents open and resolve:")
    lines.append(f"    tail -f {shown / 'incidents.log'}")
    if any("alerts.log" in arg for svc in services.values() for arg in svc.command):
        lines.append("  watch Alertmanager deliver the Sev 1 / Sev 2 alerts:")
        lines.append(f"    tail -f {shown / 'alerts.log'}")
    am = cfg.service_of_kind("alertmanager")
    if am is not None:
        am_url = ctx.urls[am[0]]
        lines.append("  Alertmanager's API (it requires the stack's credential, made at first start):")
        amtool_yml, password = shown / credentials.AMTOOL_CONFIG_FILE, shown / credentials.PASSWORD_FILE
        lines.append(f"    amtool --alertmanager.url={am_url} --http.config.file={amtool_yml} alert query")
        lines.append(f"    curl -s -u {credentials.USER}:$(cat {password}) {am_url}/api/v2/alerts")
    prom_name, _ = prometheus_service(cfg)
    if sim is not None:
        expr = f'{{__name__=~"streamwatch_monitor_(actual|forecast)",metric="{cfg.demo_metric}"}}'
        lines.append("  actual value against its forecast band, in Prometheus:")
    else:
        expr = "topk(10, streamwatch_monitor_anomaly_score)"
        lines.append("  the series by anomaly score (above 1: anomalous), in Prometheus:")
    lines.append(f"    {prometheus_graph_url(ctx.urls[prom_name], expr)}")
    lines.append("")
    lines.append(
        f"Data (TSDB, models, incident log, logs): {shown}/ (kept across runs; `make clean` removes it)"
    )
    lines.append("")
    return "\n".join(lines)

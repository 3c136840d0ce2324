"""The stack's single source of truth: every service's port, command, health check and scrape job.

``stack.toml`` at the repository root holds one ``[services.NAME]`` table per process. The local
runner, the runtime Prometheus config, the committed ``prometheus/prometheus.yml`` and
``docker-compose.yml`` are all derived from it, so ports and addresses cannot drift apart. Adding a
service (the dashboard, say) is one more table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

from streamwatch import config as config_loader
from streamwatch.errors import ConfigError
from streamwatch.ranges import PORT, Range, check_ranges

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "stack.toml"

# A service name is also a compose service name and a DNS name inside the compose network.
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")

Kind = Literal["python", "prometheus", "alertmanager"]
# The stacks stack.toml describes: `make demo` (the simulator and its monitors) and `make watch` (this
# host's node exporter, watched by a --config monitor: docs/watch.md).
Profile = Literal["demo", "watch"]


@dataclass
class ServiceConfig:
    """One process of the stack."""

    port: int
    # argv with placeholders: {python} {root} {host} {port} {data_dir} {name} {ports[NAME]} {urls[NAME]}
    command: list[str]
    kind: Kind = "python"  # python: built from our Dockerfile in compose; others use upstream images
    health_path: str = "/metrics"  # GET answers 200 once the service is up
    job: str = ""  # Prometheus scrape job name; empty: not scraped
    scrape_interval: str = ""  # empty: Prometheus' global interval
    metrics_path: str = "/metrics"
    ui_path: str = ""  # the page worth opening, shown in the ready banner
    description: str = ""
    enabled: bool = True
    # Compose only: run inside this service's network namespace, so that the other service's config can
    # address it as 127.0.0.1 exactly as locally (Alertmanager's webhook URL, say).
    compose_network_of: str = ""
    # More than 1: that many processes NAME-0 .. NAME-(N-1) on consecutive ports from `port`, replica I
    # started with `--shard I/N` (a monitor splitting its series), all scraped under the one `job`.
    replicas: int = 1
    # The stacks it runs in (empty: every one): Prometheus, Alertmanager and the incident detector serve
    # both, the simulator only `make demo`, the node exporter only `make watch`.
    profiles: list[Profile] = field(default_factory=list)

    RANGES: ClassVar[dict[str, Range]] = {"port": PORT, "replicas": Range(1, 64)}

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.command:
            raise ValueError("command must not be empty")
        if not self.health_path.startswith("/"):
            raise ValueError(f"health_path must start with '/', got {self.health_path!r}")
        if self.scrape_interval and not _DURATION.match(self.scrape_interval):
            raise ValueError(f"scrape_interval must be a duration like '2s', got {self.scrape_interval!r}")
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {self.replicas}")
        if self.port + self.replicas - 1 > 65535:
            raise ValueError(f"{self.replicas} replicas from port {self.port} run past port 65535")
        if self.replicas > 1 and (self.kind != "python" or self.compose_network_of):
            raise ValueError("replicas > 1 needs a Python service (taking --shard) with its own network")


@dataclass(frozen=True)
class Process:
    """One process the stack runs: a service, or replica ``index`` of a service with ``replicas`` > 1."""

    service: str  # the [services.NAME] it comes from
    config: ServiceConfig  # the service's, with this replica's port
    index: int = 0
    count: int = 1

    @property
    def name(self) -> str:
        return self.service if self.count == 1 else f"{self.service}-{self.index}"

    @property
    def port(self) -> int:
        return self.config.port

    def shard_args(self) -> list[str]:
        """What a replica adds to its service's command: ``--shard INDEX/COUNT`` (nothing when alone)."""
        return [] if self.count == 1 else ["--shard", f"{self.index}/{self.count}"]


@dataclass
class StackConfig:
    """The local stack: where it listens, where its data lives, and its services in start order."""

    host: str = "127.0.0.1"
    data_dir: Path = Path("var")  # relative paths are relative to the repository root
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    health_timeout_s: float = 180.0  # Prophet's first fit can take a while on a busy machine
    echo_logs: bool = False  # True: services' output on the console too, not only in var/logs/
    grafana_port: int = 3000  # compose only: no Grafana runs locally
    demo_metric: str = "energy_price"  # used in the banner's ready-made curl and graph query
    services: dict[str, ServiceConfig] = field(default_factory=dict)
    # Which stack runs: `python -m stack` is the demo, `python -m stack --watch FILE` the watch stack,
    # whose data is kept apart in <data_dir>/watch.
    profile: Profile = "demo"

    RANGES: ClassVar[dict[str, Range]] = {
        "health_timeout_s": Range(1, 3600, "s"),
        "grafana_port": PORT,
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        config_loader.check_host("host", self.host)
        if not self.services:
            raise ValueError("services must list at least one service")
        for name in self.services:
            if not _NAME.match(name):
                raise ValueError(f"service name {name!r} must be lowercase letters, digits and '-'")
        for key in ("scrape_interval", "evaluation_interval"):
            if not _DURATION.match(getattr(self, key)):
                raise ValueError(f"{key} must be a duration like '15s', got {getattr(self, key)!r}")
        if self.health_timeout_s <= 0:
            raise ValueError(f"health_timeout_s must be positive, got {self.health_timeout_s}")
        processes = [p for name in self.enabled_services() for p in self.replicas_of(name)]
        names = [p.name for p in processes]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"a replica of a service and a service are both called {name!r}")
        seen: dict[int, str] = {}
        for proc in processes:
            if proc.port in seen:
                raise ValueError(f"services {seen[proc.port]!r} and {proc.name!r} both use port {proc.port}")
            seen[proc.port] = proc.name
        for name, svc in self.enabled_services().items():
            other = svc.compose_network_of
            if other and other not in self.enabled_services():
                raise ValueError(f"service {name!r}: compose_network_of names no enabled service: {other!r}")
            if other and self.services[other].replicas > 1:
                raise ValueError(f"service {name!r}: compose_network_of names replicated {other!r}")
        kinds = [svc.kind for svc in self.enabled_services().values()]
        if kinds.count("prometheus") != 1:
            raise ValueError("exactly one enabled service must have kind = 'prometheus'")

    def enabled_services(self) -> dict[str, ServiceConfig]:
        """The services this stack's ``profile`` runs, in start order."""
        return {
            name: svc
            for name, svc in self.services.items()
            if svc.enabled and (not svc.profiles or self.profile in svc.profiles)
        }

    def replicas_of(self, name: str) -> list[Process]:
        """The processes of service ``name``: one, or ``replicas`` on consecutive ports."""
        svc = self.services[name]
        return [
            Process(name, replace(svc, port=svc.port + i) if i else svc, i, svc.replicas)
            for i in range(svc.replicas)
        ]

    def processes(self) -> dict[str, Process]:
        """Every process of the enabled services, by name (``NAME`` or ``NAME-I``), in start order."""
        return {p.name: p for name in self.enabled_services() for p in self.replicas_of(name)}

    def service_of_kind(self, kind: Kind) -> tuple[str, ServiceConfig] | None:
        for name, svc in self.enabled_services().items():
            if svc.kind == kind:
                return name, svc
        return None

    def data_path(self, root: Path = ROOT) -> Path:
        """Where this run keeps its data: ``data_dir``, or a folder of it per stack other than the demo (a
        watch stack must not resume the demo's incidents, nor mix its TSDB with the simulator's)."""
        base = self.data_dir if self.data_dir.is_absolute() else root / self.data_dir
        return base if self.profile == "demo" else base / self.profile


def load_stack(path: str | Path | None = None, profile: Profile | None = None) -> StackConfig:
    """Read ``stack.toml`` (or ``path``): ``[stack]`` settings and ``[services.NAME]`` tables; ``profile``
    picks the stack (default: the file's ``profile``, else the demo)."""
    doc = config_loader.read_toml(path or DEFAULT_CONFIG)
    data = dict(doc.get("stack", {}))
    data["services"] = doc.get("services", {})
    if profile is not None:
        data["profile"] = profile
    unknown = sorted(set(doc) - {"stack", "services"})
    if unknown:
        raise ConfigError(f"{path or DEFAULT_CONFIG}: unknown table(s) {', '.join(unknown)}")
    return config_loader.from_mapping(StackConfig, data, str(path or DEFAULT_CONFIG))

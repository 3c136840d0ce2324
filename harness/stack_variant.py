"""A fast copy of ``stack.toml``: the same services and commands, on free ports, with short intervals.

The stack's end-to-end test, the dashboard's browser test and the screenshot script all need the stack
``make demo`` runs, but in a minute instead of several. Only settings change (ports, the data folder,
intervals, the detector's half-life and threshold), through the same keys and flags a user would edit,
so no service runs a test-only code path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.config import DEFAULT_CONFIG
from streamwatch.config import read_toml
from streamwatch.net import free_port


@dataclass(frozen=True)
class Timing:
    """Intervals and incident rules that make the whole incident cycle short.

    The defaults suit two shared cores: a sample a second, a monitor cycle every 2 s. With one anomaly a
    second a 6 s half-life levels a prolonged spike's score off near 8.7, past a threshold of 6 after
    about 10 s, while a 3 s transient (at most 4 samples) never gets there.
    """

    scrape_interval: str = "1s"
    monitor_interval_s: float = 2.0
    detector_interval_s: float = 1.0
    half_life_s: float = 6.0
    threshold: float = 6.0
    health_timeout_s: float = 240.0
    alertmanager: bool = True
    dashboard: bool = True


def set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag`` set to ``value``: replaced where present, appended where not."""
    out = list(argv)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


def dump_toml(doc: dict[str, Any]) -> str:
    """Write nested tables of scalars and lists (stack.toml's shapes) as TOML.

    JSON strings, numbers, booleans and arrays of them are valid TOML as they are.
    """
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in body.items() if not isinstance(v, dict))
        lines.append("")
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{k}", v)

    for name, body in doc.items():
        table(name, body)
    return "\n".join(lines)


def write_fast_config(
    workdir: Path,
    timing: Timing = Timing(),
    base: Path = DEFAULT_CONFIG,
    service_configs: dict[str, Path] | None = None,
) -> Path:
    """Write ``workdir/stack.toml`` from ``base`` with free ports and ``timing``; return its path.

    ``service_configs`` maps a service name to a ``--config`` file to hand it (the dashboard's, say).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    doc = read_toml(base)
    stack = doc["stack"]
    stack.update(
        data_dir=str(workdir / "var"),
        scrape_interval=timing.scrape_interval,
        evaluation_interval=timing.scrape_interval,
        health_timeout_s=timing.health_timeout_s,
    )
    incident_cfg = workdir / "incident.toml"
    incident_cfg.write_text(f"half_life_s = {timing.half_life_s}\nthreshold = {timing.threshold}\n")
    configs = {"incident-detector": incident_cfg, **(service_configs or {})}
    for name, svc in doc["services"].items():
        svc["port"] = free_port(stack.get("host", "127.0.0.1"))
        if svc.get("scrape_interval"):
            svc["scrape_interval"] = timing.scrape_interval
        argv = [str(a) for a in svc["command"]]
        if name.startswith("monitor-"):
            argv = set_flag(argv, "--interval", f"{timing.monitor_interval_s:g}")
        elif name == "incident-detector":
            argv = set_flag(argv, "--interval", f"{timing.detector_interval_s:g}")
        if name in configs:
            argv = set_flag(argv, "--config", str(configs[name]))
        svc["command"] = argv
        if svc.get("kind") == "alertmanager":
            svc["enabled"] = timing.alertmanager
        if name == "dashboard":
            svc["enabled"] = timing.dashboard
    # A service that lives in another's network (the alert receiver beside
    # Alertmanager) has no purpose once its host is switched off.
    for svc in doc["services"].values():
        host = svc.get("compose_network_of")
        if host and not doc["services"].get(host, {}).get("enabled", True):
            svc["enabled"] = False
    path = workdir / "stack.toml"
    path.write_text(dump_toml(doc))
    return path

"""A fast copy of the local stack on free ports: for the browser test and the screenshot script.

It starts the very stack ``make demo`` starts (``python -m streamwatch.stack`` with ``stack.toml``'s
services and commands), with the dashboard added, every port free, and short intervals set through the
services' own flags and config files, so a prolonged spike becomes a Sev 1 incident, and resolves, in
about a minute instead of several. No service runs a test-only code path.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from streamwatch.config import read_toml
from streamwatch.net import free_port, http_ok, wait_until
from streamwatch.procs import ManagedProcess, python_argv
from streamwatch.stack.config import DEFAULT_CONFIG, ROOT


@dataclass
class Timing:
    """Intervals and incident rules that make the whole cycle short.

    With a sample every 2 s, a 10 s half-life keeps a steady anomaly stream's score near 7, so the
    threshold is 4 (clear at 2): a prolonged spike crosses it after about 12 s and a resolved one falls
    under the clear level about 20 s after the spike ends.
    """

    scrape_interval: str = "1s"
    monitor_interval_s: float = 2.0
    detector_interval_s: float = 1.0
    half_life_s: float = 10.0
    threshold: float = 4.0
    spike_magnitude: float = 3.0
    transient_duration_s: float = 4.0
    prolonged_duration_s: float = 30.0
    health_timeout_s: float = 150.0
    # Train the monitors on the hour just before start (generated, no server needed) rather than on the
    # committed files, so the forecast grid starts near now whatever the date of the committed data.
    fresh_training: bool = True
    training_duration: str = "1h"


@dataclass
class QuickStack:
    process: ManagedProcess
    config_path: Path
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def dashboard_url(self) -> str:
        return self.urls["dashboard"]

    def stop(self) -> int | None:
        return self.process.stop(timeout_s=20)


def _toml_value(v: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML as they are.
    return json.dumps(v)


def dump_toml(doc: dict[str, Any]) -> str:
    """Write the two-level tables stack.toml uses ([stack], [services.NAME], [dashboard])."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{k}", v)

    for name, body in doc.items():
        table(name, body)
    return "\n".join(lines)


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


def _fresh_training(argv: list[str], workdir: Path, duration: str) -> list[str]:
    """Swap the monitor's training file (the positional after the metric) for a freshly generated one."""
    i = next(k for k, a in enumerate(argv) if a.endswith(("monitor.py", "monitor")))
    metric = argv[i + 1]
    out = workdir / f"{metric}_train.json"
    subprocess.run(
        python_argv(
            "simulator.py", "generate", "--metric", metric, "--duration", duration, "--out", str(out)
        ),
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return [*argv[: i + 2], str(out), *argv[i + 3 :]]


def write_config(workdir: Path, timing: Timing, base: Path = DEFAULT_CONFIG) -> tuple[Path, dict[str, str]]:
    """A stack.toml for a fast run under ``workdir``; returns it and every service's URL."""
    doc = read_toml(base)
    stack = dict(doc.get("stack", {}))
    services: dict[str, dict[str, Any]] = {k: dict(v) for k, v in doc.get("services", {}).items()}
    host = stack.get("host", "127.0.0.1")
    stack.update(
        data_dir=str(workdir / "var"),
        scrape_interval=timing.scrape_interval,
        evaluation_interval=timing.scrape_interval,
        health_timeout_s=timing.health_timeout_s,
    )
    incident_cfg = workdir / "incident.toml"
    incident_cfg.write_text(f"half_life_s = {timing.half_life_s}\nthreshold = {timing.threshold}\n")
    dashboard_cfg = workdir / "dashboard.toml"
    dashboard_cfg.write_text(
        dump_toml(
            {
                "dashboard": {
                    "spike_magnitude": timing.spike_magnitude,
                    "transient_duration_s": timing.transient_duration_s,
                    "prolonged_duration_s": timing.prolonged_duration_s,
                }
            }
        )
    )
    services.setdefault(
        "dashboard",
        {
            "port": 8000,
            "health_path": "/healthz",
            "ui_path": "/",
            "description": "dashboard: the live page",
            "command": ["{python}", "-m", "dashboard", "--host", "{host}", "--port", "{port}"],
        },
    )
    for name, svc in services.items():
        svc["port"] = free_port(host)
        if svc.get("kind") == "alertmanager":
            svc["enabled"] = False  # nothing here needs alert delivery; one process fewer on a busy machine
        if svc.get("scrape_interval"):
            svc["scrape_interval"] = timing.scrape_interval
        argv = [str(a) for a in svc["command"]]
        if name.startswith("monitor"):
            argv = _set_flag(argv, "--interval", f"{timing.monitor_interval_s:g}")
            if timing.fresh_training:
                argv = _fresh_training(argv, workdir, timing.training_duration)
        elif name.startswith("incident"):
            argv = _set_flag(argv, "--interval", f"{timing.detector_interval_s:g}")
            argv = _set_flag(argv, "--config", str(incident_cfg))
        elif name == "dashboard":
            argv = _set_flag(argv, "--prometheus-url", "{urls[prometheus]}")
            argv = _set_flag(argv, "--simulator-url", "{urls[simulator]}")
            argv = _set_flag(argv, "--config", str(dashboard_cfg))
        svc["command"] = argv
    path = workdir / "stack.toml"
    path.write_text(dump_toml({"stack": stack, "services": services}))
    urls = {
        name: f"http://{host}:{svc['port']}" for name, svc in services.items() if svc.get("enabled", True)
    }
    return path, urls


def has_data(dashboard_url: str, metrics: list[str], samples: int = 2) -> bool:
    """True once every watched metric's band and score charts would show at least ``samples`` points."""
    for m in metrics:
        for name in ("band", "score"):
            try:
                resp = requests.get(
                    f"{dashboard_url}/api/series",
                    params={"name": name, "metric": m, "range": "5m"},
                    timeout=5,
                )
            except requests.RequestException:
                return False
            if resp.status_code != 200 or resp.json()["samples"] < samples:
                return False
    return True


def start(workdir: Path, timing: Timing | None = None) -> QuickStack:
    """Start the fast stack and wait until the dashboard answers; raise with the runner's log if not."""
    t = timing or Timing()
    workdir.mkdir(parents=True, exist_ok=True)
    path, urls = write_config(workdir, t)
    proc = ManagedProcess(
        "stack",
        python_argv("-m", "streamwatch.stack", "--config", str(path)),
        workdir / "stack.log",
        cwd=ROOT,
    )
    qs = QuickStack(proc, path, urls)
    ok = wait_until(
        lambda: not proc.alive or http_ok(f"{urls['dashboard']}/healthz"), t.health_timeout_s, 0.5
    )
    if not ok or not proc.alive:
        proc.stop()
        raise RuntimeError(f"the stack did not come up:\n{proc.log_tail(40)}")
    return qs

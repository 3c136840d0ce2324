"""A test copy of stack.toml: the same services and commands, on free ports, with short intervals.

Only settings change (ports, data folder, intervals, the detector's half-life and threshold), through the
same config keys a user would edit: the stack under test runs exactly the code `make demo` runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamwatch.net import free_port, wait_until
from streamwatch.stack.config import DEFAULT_CONFIG, ROOT, StackConfig, load_stack

# Fast enough for a test, slow enough for two shared cores: a sample a second, a cycle every 2 s.
FAST = {
    "monitor_interval": "2",
    "detector_interval": "1",
    "half_life_s": 6.0,  # a prolonged spike (one anomaly a second) levels off near 8.7...
    "threshold": 6.0,  # ...past 6 after about 10 s; a 3 s transient (3, at most 4 samples) never gets there
}


def _replace_flag(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


def write_test_stack(tmp_path: Path, *, dashboard: bool = False) -> Path:
    """Write ``tmp_path/stack.toml`` from the repository's stack.toml with free ports and short intervals."""
    doc = tomllib.loads(DEFAULT_CONFIG.read_text())
    data_dir = tmp_path / "var"
    stack = doc["stack"]
    stack.update(
        data_dir=str(data_dir), scrape_interval="1s", evaluation_interval="1s", health_timeout_s=240.0
    )
    incident_cfg = tmp_path / "incident.toml"
    incident_cfg.write_text(f"half_life_s = {FAST['half_life_s']}\nthreshold = {FAST['threshold']}\n")
    for name, svc in doc["services"].items():
        svc["port"] = free_port()
        if svc.get("scrape_interval"):
            svc["scrape_interval"] = "1s"
        if name.startswith("monitor-"):
            svc["command"] = _replace_flag(svc["command"], "--interval", FAST["monitor_interval"])
        if name == "incident-detector":
            svc["command"] = _replace_flag(svc["command"], "--interval", FAST["detector_interval"])
            svc["command"] = _replace_flag(svc["command"], "--config", str(incident_cfg))
        if name == "dashboard":
            svc["enabled"] = dashboard
    path = tmp_path / "stack.toml"
    path.write_text(_dump_toml(doc))
    return path


def _dump_toml(doc: dict) -> str:
    # A tiny TOML writer for this file's shapes (tables of scalars and lists of strings).
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[stack]"] + [f"{k} = {value(v)}" for k, v in doc["stack"].items()]
    for name, svc in doc["services"].items():
        lines += ["", f"[services.{name}]"] + [f"{k} = {value(v)}" for k, v in svc.items()]
    return "\n".join(lines) + "\n"


@dataclass
class RunningStack:
    cfg: StackConfig
    proc: subprocess.Popen[str]
    stdout_path: Path
    pids: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://{self.cfg.host}:{self.cfg.services[name].port}"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"stack exited with {self.proc.returncode}:\n{self.output()}")
        return "Streamwatch is up." in self.output()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.pids = {
            m[0]: int(m[1]) for m in re.findall(r"stack: (\S+) started \(pid=(\d+)\)", self.output())
        }
        return self.proc.returncode


def start_stack(config: Path, tmp_path: Path) -> RunningStack:
    """Run ``python -m streamwatch.stack --config config`` (what `make demo` runs); wait for its banner."""
    out = tmp_path / "stack.out"
    fh = out.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamwatch.stack", "--config", str(config)],
        stdout=fh,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # so a failed test can still kill the whole tree
    )
    fh.close()
    stack = RunningStack(load_stack(config), proc, out)
    cfg = stack.cfg
    if not wait_until(stack.ready, cfg.health_timeout_s + 30, 0.5):
        stack.stop()
        pytest.fail(f"the stack did not come up:\n{stack.output()}")
    return stack


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes; it only waits for its parent to reap it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def processes_under(marker: str) -> Iterator[int]:
    """Pids of live processes whose command line mentions ``marker`` (the test's unique data folder)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and pid_alive(int(entry.name)):
            yield int(entry.name)

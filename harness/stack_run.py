"""Running the fast copy of stack.toml (harness.stack_variant) as `make demo` runs the real one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from harness.stack_variant import Timing, write_fast_config
from stack.config import ROOT, StackConfig, load_stack
from streamwatch.net import wait_until

FAST = Timing()


def write_test_stack(tmp_path: Path, *, dashboard: bool = False) -> Path:
    """Write ``tmp_path/stack.toml`` from the repository's stack.toml with free ports and short intervals."""
    return write_fast_config(tmp_path, replace(FAST, dashboard=dashboard))


# The watch stack's monitor, fast: the node_exporter preset on one-second points (rate over 5 s, the fill
# rate over a minute) and a 2 s cycle; the stack scrapes every second (FAST).
FAST_WATCH = """[monitor]
interval = 2

[[monitor.queries]]
preset = "node_exporter"
vars = { rate_window = "5s", fill_window = "1m" }
step = 1
"""


def write_watch_stack(tmp_path: Path, timing: Timing = FAST) -> tuple[Path, Path]:
    """``tmp_path/stack.toml`` (as ``write_test_stack``) and ``tmp_path/watch.toml`` (``FAST_WATCH``): what
    ``start_stack(config, tmp_path, watch=...)`` runs as `make watch` runs the real ones."""
    watch = tmp_path / "watch.toml"
    watch.write_text(FAST_WATCH)
    return write_fast_config(tmp_path, replace(timing, dashboard=False)), watch


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


def start_stack(config: Path, tmp_path: Path, watch: Path | None = None) -> RunningStack:
    """Run ``python -m stack --config config`` (what `make demo` runs), or with ``watch`` the watch stack
    on that monitor config (what `make watch` runs); wait for its banner."""
    out = tmp_path / "stack.out"
    fh = out.open("w")
    extra = [] if watch is None else ["--watch", str(watch)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack", "--config", str(config), *extra],
        stdout=fh,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # so a failed test can still kill the whole tree
    )
    fh.close()
    stack = RunningStack(load_stack(config, profile="demo" if watch is None else "watch"), proc, out)
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

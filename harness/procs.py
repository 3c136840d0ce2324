"""Child processes for the tests and the screenshot script: start, wait for health, stop without leftovers.

Prometheus' and Alertmanager's command lines come from stack.toml (through the stack package), so the
tests run them exactly as `make demo` does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from stack import credentials
from stack.config import ROOT, load_stack
from stack.render import standalone_command
from streamwatch.net import http_ok, wait_until


class ManagedProcess:
    """A child process with its output in a log file; ``stop()`` sends SIGTERM, then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ):
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,  # its own process group, so stop() reaches any grandchildren
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_http(self, url: str, timeout_s: float = 30.0, auth: tuple[str, str] | None = None) -> None:
        """Wait until ``url`` answers 200; raise with the log's tail if the process dies or times out."""
        ok = wait_until(lambda: not self.alive or http_ok(url, auth=auth), timeout_s, 0.1)
        if not ok or not self.alive:
            self.stop()
            raise RuntimeError(f"{self.name} did not become healthy at {url}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> int | None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout_s)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def python_argv(*args: str) -> list[str]:
    """Run a project entry point with the interpreter that runs us (the venv's)."""
    return [sys.executable, *args]


def prometheus_argv(data_dir: Path, port: int) -> list[str]:
    """Prometheus as stack.toml starts it, on ``port``: its config is ``data_dir/prometheus.yml`` and its
    TSDB ``data_dir/prometheus``, where the stack keeps them."""
    return standalone_command(load_stack(), "prometheus", data_dir, port, ROOT, sys.executable)


def alertmanager_argv(data_dir: Path, port: int) -> list[str]:
    """Alertmanager as stack.toml starts it, on ``port``: config ``data_dir/alertmanager.yml``, state in
    ``data_dir/alertmanager``, and the stack's credential (``stack.credentials``) made in ``data_dir``."""
    credentials.ensure(data_dir)
    return standalone_command(load_stack(), "alertmanager", data_dir, port, ROOT, sys.executable)

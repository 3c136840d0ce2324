"""Start, watch and stop the local stack with honcho's process manager.

honcho's Python API (``honcho.manager.Manager``) rather than a generated Procfile run by ``honcho
start``: the commands come from stack.toml with placeholders filled per run (free ports in tests, the
data folder), and the same process that starts the services also has to check ports first, wait for
health and print the ready banner. honcho does the supervising: one process group per service, output
multiplexed, SIGINT/SIGTERM forwarded, SIGKILL after a grace period, and everything stopped when any
one service exits.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import yaml
from honcho.manager import Manager

from stack import credentials, render
from stack.config import ROOT, StackConfig
from streamwatch.atomic import atomic_write_text
from streamwatch.errors import UserError
from streamwatch.net import http_ok, port_in_use, wait_until
from streamwatch.promapi import FormatError, PrometheusClient, PrometheusError

_SYSTEM = "system"  # honcho's name for its own messages
_STOPPED = re.compile(r"^(?P<name>\S+) stopped \(rc=(?P<rc>-?\d+)\)")
_POLL_S = 0.25


def check_ports(cfg: StackConfig) -> None:
    """Refuse to start anything when one of the stack's ports is taken; name the service it is for."""
    for name, proc in cfg.processes().items():
        if port_in_use(cfg.host, proc.port):
            raise UserError(
                f"port {proc.port} for {name} on {cfg.host} is already in use "
                f"(stop whatever holds it, or change [services.{proc.service}] port in stack.toml)"
            )


def check_programs(commands: dict[str, list[str]]) -> None:
    for name, argv in commands.items():
        if shutil.which(argv[0]) is None:
            raise UserError(f"{name}: program {argv[0]!r} not found (run `make setup` to install it)")


def service_commands(
    cfg: StackConfig, root: Path = ROOT, python: str = sys.executable, watch_config: Path | None = None
) -> dict[str, list[str]]:
    ctx = render.local_context(cfg, root, python, watch_config)
    return {name: render.process_command(proc, ctx) for name, proc in cfg.processes().items()}


def prepare_data_dir(cfg: StackConfig, root: Path = ROOT) -> Path:
    """Create the data folder and write the runtime Prometheus and Alertmanager configs into it; returns
    the folder. A folder that cannot be made or written is a one-line ``UserError``."""
    data = cfg.data_path(root)
    header = "# Written by `python -m stack` at start-up from stack.toml; not for editing.\n"
    files = {"prometheus.yml": render.dump_yaml(render.local_prometheus_config(cfg, root), header=header)}
    if cfg.service_of_kind("alertmanager"):
        committed = yaml.safe_load((root / "prometheus" / "alertmanager.yml").read_text())
        files["alertmanager.yml"] = render.dump_yaml(
            render.local_alertmanager_config(cfg, committed),
            header=header + "# prometheus/alertmanager.yml, its webhook sent to this stack's receiver.\n",
        )
    try:
        for sub in ("logs", "models", "prometheus", "alertmanager"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            atomic_write_text(data / name, text)
    except OSError as exc:
        raise UserError(f"cannot prepare the data folder {data}: {exc.strerror or exc}") from None
    if cfg.service_of_kind("alertmanager"):
        credentials.ensure(data)  # first start: a random password; later ones keep it
    return data


def health_urls(cfg: StackConfig) -> dict[str, str]:
    return {name: f"http://{cfg.host}:{p.port}{p.config.health_path}" for name, p in cfg.processes().items()}


def health_auth(cfg: StackConfig, data: Path) -> dict[str, tuple[str, str]]:
    """The credential each health check needs: Alertmanager's (it answers 401 without it)."""
    found = cfg.service_of_kind("alertmanager")
    return {} if found is None else {found[0]: credentials.ensure(data).auth}


def jobs_not_up(prometheus_url: str, jobs: set[str]) -> list[str] | None:
    """Scrape jobs without a queryable ``up == 1`` sample yet (None: Prometheus could not be asked)."""
    try:
        found = PrometheusClient(prometheus_url, timeout_s=2).query("up == 1")
    except (PrometheusError, FormatError):
        return None
    return sorted(jobs - {s.labels.get("job", "") for s in found})


class LogPrinter:
    """honcho's printer: each service's output to ``logs/NAME.log``, honcho's own lines to the console.

    Every service named in ``services`` has its log from the start, even before (or without) a line of
    output: Prometheus and Alertmanager say little, and a missing file reads as a missing service.
    """

    def __init__(
        self,
        log_dir: Path,
        console: IO[str],
        echo: bool,
        on_stop: Callable[[str, int], None],
        services: Iterable[str] = (),
    ):
        self.width = 0  # honcho sets this to the longest service name
        self.log_dir = log_dir
        self.console = console
        self.echo = echo
        self.on_stop = on_stop
        self._files: dict[str, IO[bytes]] = {}
        self._lock = threading.Lock()
        for name in services:
            self._log(name)

    def _log(self, name: str) -> IO[bytes]:
        fh = self._files.get(name)
        if fh is None:
            fh = self._files[name] = (self.log_dir / f"{name}.log").open("ab")
        return fh

    def write(self, message: Any) -> None:
        data = message.data if isinstance(message.data, bytes) else str(message.data).encode()
        name = message.name or _SYSTEM
        with self._lock:
            if name == _SYSTEM:
                text = data.decode("utf-8", "replace").rstrip("\n")
                self.say(text)
                m = _STOPPED.match(text)
                if m:
                    self.on_stop(m["name"], int(m["rc"]))
                return
            fh = self._log(name)
            fh.write(data if data.endswith(b"\n") else data + b"\n")
            fh.flush()
            if self.echo:
                for line in data.decode("utf-8", "replace").splitlines():
                    print(f"{name.ljust(self.width)} | {line}", file=self.console, flush=True)

    def say(self, text: str) -> None:
        print(f"stack: {text}", file=self.console, flush=True)

    def close(self) -> None:
        for fh in self._files.values():
            with contextlib.suppress(OSError):
                fh.close()


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


class _Manager(Manager):  # type: ignore[misc]
    """honcho's Manager, telling the health watcher when the stack is stopping."""

    def __init__(self, printer: LogPrinter, stopping: threading.Event):
        super().__init__(printer=printer)
        self.stopping = stopping

    def terminate(self) -> None:
        self.stopping.set()
        super().terminate()


class Stack:
    """One run of the stack: check, prepare, start, wait for health, announce, stop."""

    def __init__(
        self,
        cfg: StackConfig,
        root: Path = ROOT,
        console: IO[str] | None = None,
        watch_config: Path | None = None,
    ):
        self.cfg = cfg
        self.root = root
        self.watch_config = watch_config  # the watch stack's monitor config (python -m stack --watch FILE)
        self.console = console or sys.stdout
        self.stopping = threading.Event()
        self.failure: str | None = None
        self._first_stop: tuple[str, int] | None = None

    def _on_stop(self, name: str, rc: int) -> None:
        if self._first_stop is None and not self.stopping.is_set():
            self._first_stop = (name, rc)

    def run(self) -> int:
        check_ports(self.cfg)
        commands = service_commands(self.cfg, self.root, watch_config=self.watch_config)
        check_programs(commands)
        data = prepare_data_dir(self.cfg, self.root)
        printer = LogPrinter(data / "logs", self.console, self.cfg.echo_logs, self._on_stop, commands)
        manager = _Manager(printer, self.stopping)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name, argv in commands.items():
            # honcho runs commands through `sh -c`; `exec` makes the service itself the process honcho
            # waits on, so "stopped" means the service has really exited (Prometheus flushed its TSDB).
            manager.add_process(name, "exec " + shlex.join(argv), env=env, cwd=str(self.root))
        printer.say(f"starting {len(commands)} services; their output goes to {data / 'logs'}/NAME.log")
        watcher = threading.Thread(target=self._watch, args=(manager, printer, data), daemon=True)
        watcher.start()
        try:
            manager.loop()
        finally:
            printer.close()
        if self._first_stop is not None:
            name, rc = self._first_stop
            log = data / "logs" / f"{name}.log"
            print(
                f"stack: error: {name} exited with status {rc}; the last lines of {log}:\n{log_tail(log)}",
                file=sys.stderr,
            )
            return 1
        if self.failure is not None:
            print(f"stack: error: {self.failure}", file=sys.stderr)
            return 1
        return 0

    def _watch(self, manager: _Manager, printer: LogPrinter, data: Path) -> None:
        """Wait for every health URL, then for Prometheus to see every target up; then print the banner."""
        timeout = self.cfg.health_timeout_s
        pending = dict(health_urls(self.cfg))
        auth = health_auth(self.cfg, data)

        def all_healthy() -> bool:
            if self.stopping.is_set():
                return True
            for name in [n for n, url in pending.items() if http_ok(url, auth=auth.get(n))]:
                del pending[name]
            return not pending

        deadline_hit = not wait_until(all_healthy, timeout, _POLL_S)
        if self.stopping.is_set():
            return
        if deadline_hit:
            name = sorted(pending)[0]
            self.failure = (
                f"{name} did not become healthy at {pending[name]} within {timeout:g} s; "
                f"the last lines of its log:\n{log_tail(data / 'logs' / f'{name}.log')}"
            )
            manager.terminate()
            return
        _, prom = render.prometheus_service(self.cfg)
        prom_url = f"http://{self.cfg.host}:{prom.port}"
        down: list[str] | None = None

        jobs = {svc.job for svc in self.cfg.enabled_services().values() if svc.job}

        def scraped() -> bool:
            nonlocal down
            if self.stopping.is_set():
                return True
            down = jobs_not_up(prom_url, jobs)
            return down == []

        if not wait_until(scraped, timeout, _POLL_S):
            self.failure = f"Prometheus does not see these scrape jobs up within {timeout:g} s: {down}"
            manager.terminate()
            return
        if not self.stopping.is_set():
            with printer._lock:
                print(render.banner(self.cfg, self.root), file=self.console, flush=True)

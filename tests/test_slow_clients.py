"""Issue 22, item 9: slow clients cannot pile up threads, and are dropped after a read timeout.

1,100 connections holding an unfinished POST once kept 1,103 threads alive in one server. Every server
(the Flask services through streamwatch.wsgi, the incident detector's and the monitors' /metrics) now
serves at most MAX_WORKERS connections at once and drops one that sends nothing for READ_TIMEOUT_S.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from harness import ROOT
from harness.procs import ManagedProcess, python_argv
from streamwatch.net import free_port, start_metrics_server, wait_until
from streamwatch.serverlimits import MAX_WORKERS, READ_TIMEOUT_S, BoundedThreads

HALF_POST = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
)


@contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each send half a POST and then nothing."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(HALF_POST)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def closed_by_server(s: socket.socket) -> bool:
    s.settimeout(0.05)
    try:
        data = s.recv(65536)
    except TimeoutError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/")  # EOF, or an error answer before closing


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


@pytest.mark.e2e
def test_the_alert_receiver_keeps_its_threads_bounded_and_drops_slow_clients(tmp_path: Path) -> None:
    port = free_port()
    argv = python_argv("-m", "incident.webhook", "--port", str(port), "--log", str(tmp_path / "alerts.log"))
    with ManagedProcess("receiver", argv, tmp_path / "receiver.out", cwd=ROOT) as proc:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        with slow_clients(port, 3 * MAX_WORKERS) as socks:
            served = socks[:MAX_WORKERS]
            # The workers are all busy with the first ones: the thread count stays bounded.
            assert wait_until(lambda: threads_of(proc.proc.pid) >= MAX_WORKERS, 10)
            assert threads_of(proc.proc.pid) <= MAX_WORKERS + 8
            # After the read timeout the server drops them, and serves the next ones (and then anyone).
            assert wait_until(lambda: all(closed_by_server(s) for s in served), 3 * READ_TIMEOUT_S)
            assert threads_of(proc.proc.pid) <= MAX_WORKERS + 8
        assert wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok, 4 * READ_TIMEOUT_S
        )
        assert proc.alive


def test_the_metrics_server_bounds_its_workers_and_times_out_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BoundedThreads, "read_timeout_s", 0.5)
    monkeypatch.setattr(BoundedThreads, "max_workers", 4)
    port = free_port()
    server, _ = start_metrics_server(CollectorRegistry(), "127.0.0.1", port)
    try:
        before = threading.active_count()
        with slow_clients(port, 12) as socks:
            assert wait_until(lambda: all(closed_by_server(s) for s in socks), 20)
            assert threading.active_count() <= before + 4
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).ok
    finally:
        server.shutdown()

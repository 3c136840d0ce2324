"""Ports and HTTP readiness: the checks every service and the stack runner make before and after start."""

from __future__ import annotations

import errno
import functools
import random
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import requests
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from streamwatch import healthz
from streamwatch.errors import UserError
from streamwatch.serverlimits import BoundedThreads

# Connections the kernel queues while every handler is busy. socketserver's default is 5: under load the
# monitor's queue overflowed and clients waited a 1 s SYN retry (63 of 60,000 requests).
LISTEN_BACKLOG = 128


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port``.

    Any other reason the address cannot be bound (an unknown host, an address not on this machine, a
    privileged port) is a ``UserError`` "cannot listen on HOST:PORT: reason": calling it "in use" sends
    the user hunting for a process that does not exist.
    """
    error = _bind_error(host, port)
    if error is None:
        return False
    if error.errno == errno.EADDRINUSE:
        return True
    raise listen_error(error, host, port)


def require_free_port(host: str, port: int, what: str = "service") -> None:
    """A one-line ``UserError`` naming ``what`` the port is for unless ``host:port`` can be listened on."""
    error = _bind_error(host, port)
    if error is not None:
        raise listen_error(error, host, port, what)


def listen_error(error: OSError, host: str, port: int, what: str | None = None) -> UserError:
    """The one line for a failed bind: "port ... is already in use" only when it is, else the reason.

    ``what`` (the service) goes inside the sentence, never in front of it: the command's own name already
    starts the line ("monitor.py: error: ..."), and a second prefix reads as a stutter.
    """
    for_what = f" for the {what}" if what else ""
    if error.errno == errno.EADDRINUSE:
        return UserError(f"port {port}{for_what} on {host} is already in use")
    return UserError(f"cannot listen on {host}:{port}{for_what}: {error.strerror or error}")


def _bind_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be bound right now, or None when it can."""
    try:
        # werkzeug's rule for the family: "::1" is an IPv6 address, not one that cannot be bound.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # As the servers themselves do (socketserver's allow_reuse_address): connections of a process
            # that just stopped linger in TIME_WAIT and must not make its restart fail; a listener still does.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:  # socket.gaierror (an unknown host) is one too
        return exc
    return None


FREE_PORTS_FROM = 20_000
"""Free ports are picked from here up to the start of the OS's ephemeral range."""
_given: set[int] = set()  # handed out by this process: never twice (two services of one stack)


@functools.cache
def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """A port free now, for tests and for stacks started on free ports: a random one below the OS's
    ephemeral range, so that no outgoing connection (which takes its local port from that range) can
    take it between now and the moment the service binds it (with many tests in parallel, a port from
    ``bind(0)`` was taken that way); the OS's pick when none is found."""
    rng = rng or random.SystemRandom()
    end = _ephemeral_start()
    for _ in range(50 if end - FREE_PORTS_FROM > 1000 else 0):
        port = rng.randrange(FREE_PORTS_FROM, end)
        if port in _given or _bind_error(host, port) is not None:
            continue
        _given.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown the service's own lines


def metrics_app(registry: CollectorRegistry, body: Callable[[], bytes] | None = None) -> Callable[..., Any]:
    """``/healthz`` answers as every server does (``streamwatch.healthz``: for liveness and readiness
    probes, without rendering every series); every other path serves ``registry`` as prometheus_client
    does, or ``body()`` when given (the monitor's exposition: its registry plus per-series text written
    once per cycle)."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO")
        if path == healthz.PATH:
            start_response("200 OK", [("Content-Type", healthz.CONTENT_TYPE)])
            return [healthz.body()]
        if body is None:
            return metrics(environ, start_response)
        if path not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: try /metrics\n"]
        text = body()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(text)))])
        return [text]

    return app


def reply(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    """Send one whole response from a ``http.server`` handler: status, type, length, body."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def start_metrics_server(
    registry: CollectorRegistry,
    host: str,
    port: int,
    what: str = "metrics",
    body: Callable[[], bytes] | None = None,
) -> tuple[ThreadingWSGIServer, threading.Thread]:
    """Serve ``registry`` on ``http://host:port/metrics`` (and ``/healthz``) from a daemon thread, with a
    ``LISTEN_BACKLOG`` queue (prometheus_client's own server keeps socketserver's 5); a busy port is a
    ``UserError``.
    """
    try:  # an unknown host (socket.gaierror) is an OSError as well
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

        class Server(BoundedThreads, ThreadingWSGIServer):
            address_family = family
            request_queue_size = LISTEN_BACKLOG

        server = make_server(host, port, metrics_app(registry, body), Server, handler_class=_QuietHandler)
    except OSError as exc:
        raise listen_error(exc, host, port, what) from None
    thread = threading.Thread(target=server.serve_forever, name=f"{what} http", daemon=True)
    thread.start()
    return server, thread


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def http_ok(url: str, timeout_s: float = 1.0, auth: tuple[str, str] | None = None) -> bool:
    try:
        return requests.get(url, timeout=timeout_s, auth=auth).status_code == 200
    except requests.RequestException:
        return False

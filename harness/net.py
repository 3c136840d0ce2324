"""Sockets for the tests: a port held busy, a server answering garbage, a listening socket's backlog."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from streamwatch.net import free_port


@contextmanager
def busy_port(port: int = 0) -> Iterator[int]:
    """A loopback port held open by a listening socket for the duration of the block."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield s.getsockname()[1]


@contextmanager
def answering(body: str, status: int = 200) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``body`` (JSON); yields its base URL.

    Stands in for a Prometheus that answers garbage: what a proxy, another service on the port or a
    broken build would send.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def listen_backlog(port: int) -> int:
    """The kernel's accept-queue limit of the socket listening on ``port`` (ss shows it as Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[2])

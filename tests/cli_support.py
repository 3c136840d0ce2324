"""Running a command-line entry point as a user would, and checking its one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from streamwatch.net import free_port
from tests.conftest import ROOT


def run_python(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python *argv`` from the repository root, output captured as text."""
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], *needles: str, prog: str | None = None
) -> str:
    """Exit 2, no traceback, a single stderr line (``<prog>: error: ...``) holding every needle."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    if prog is not None:
        assert lines[0].startswith(f"{prog}: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


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

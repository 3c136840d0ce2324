"""Serving a WSGI (Flask) app in the foreground until SIGTERM or Ctrl-C, with one-line start errors."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer

from streamwatch.errors import UserError
from streamwatch.net import port_in_use
from streamwatch.serverlimits import BoundedThreads

log = logging.getLogger("serve")


class BoundedWSGIServer(BoundedThreads, BaseWSGIServer):
    """werkzeug's server with a read timeout and a bounded worker pool (``threaded=True`` had neither)."""

    multithread = True


def serve(
    app: Any,
    host: str,
    port: int,
    what: str,
    started: str = "",
    on_stop: Callable[[], None] | None = None,
) -> int:
    """Serve ``app`` on ``host:port`` (threaded) until SIGTERM/SIGINT; return exit status 0.

    A busy port or an address that cannot be bound is a ``UserError`` (the program's name already
    prefixes it). ``started`` is logged once listening. ``on_stop`` runs once a stop is asked for,
    before the server shuts down (e.g. to cut a background loop's wait short).
    """
    # werkzeug prints its own advice and exits when the port is taken; check first for one clear line.
    if port_in_use(host, port):
        raise UserError(f"port {port} on {host} is already in use (choose another with --port)")
    try:
        server = BoundedWSGIServer(host, port, app)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if started:
        log.info("%s", started)

    # serve_forever runs in a thread so the signal handler (main thread) can call shutdown().
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    stop.wait()
    log.info("%s stopping", what)
    if on_stop is not None:
        on_stop()
    server.shutdown()
    server.server_close()
    return 0

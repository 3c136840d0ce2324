"""Limits every Streamwatch HTTP server shares: a read timeout and a bounded number of worker threads.

socketserver's ThreadingMixIn starts a thread per connection and waits on a client for ever: 1,100
connections holding an unfinished POST once kept 1,103 threads alive in one process. Mixed into a
server class (before the socketserver class), ``BoundedThreads`` serves at most ``max_workers``
connections at once (the accept loop waits for a free worker, so further clients queue in the
kernel's listen backlog) and gives each connection ``read_timeout_s`` per read, after which the
connection is closed.

    class Server(BoundedThreads, ThreadingHTTPServer): ...
"""

from __future__ import annotations

import socket
import socketserver
import threading
from typing import Any

READ_TIMEOUT_S = 10.0  # a request (or its next piece) that takes longer is dropped
MAX_WORKERS = 64  # connections served at once; a scrape, a page refresh and a few alerts need a handful


class BoundedThreads(socketserver.ThreadingMixIn):
    max_workers = MAX_WORKERS
    read_timeout_s = READ_TIMEOUT_S
    daemon_threads = True
    block_on_close = False

    def _slots(self) -> threading.BoundedSemaphore:
        slots: threading.BoundedSemaphore | None = getattr(self, "_worker_slots", None)
        if slots is None:
            slots = self._worker_slots = threading.BoundedSemaphore(self.max_workers)
        return slots

    def process_request(self, request: Any, client_address: Any) -> None:
        slots = self._slots()
        slots.acquire()  # all busy: stop accepting until one is free (clients wait in the backlog)
        try:
            if isinstance(request, socket.socket):
                request.settimeout(self.read_timeout_s)
            worker = threading.Thread(
                target=self._serve_one, args=(request, client_address, slots), daemon=True
            )
            worker.start()
        except BaseException:
            slots.release()
            self.shutdown_request(request)  # type: ignore[attr-defined]
            raise

    def _serve_one(self, request: Any, client_address: Any, slots: threading.BoundedSemaphore) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            slots.release()

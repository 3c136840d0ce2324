"""Cross-site safety and size limits for every endpoint that changes state, and JSON that is JSON.

A web page in the user's browser can send a "simple" request (``text/plain`` or a form, no preflight) to
any port on 127.0.0.1, and DNS rebinding lets a foreign name resolve to it. So a state-changing request
(POST, PUT, PATCH, DELETE) is refused unless:

- its ``Host`` names this server (the bind address and ``localhost`` by default, plus ``allowed_hosts``):
  403, which defeats DNS rebinding;
- it carries no ``Origin`` or one of those same host:port origins: 403 (a foreign page);
- a body is ``application/json``: 415 (a browser cannot send that cross-site without a preflight,
  which these servers never grant);
- the body is at most ``max_body_bytes``: 413; and its JSON nests at most ``max_json_depth`` deep: 400
  (Python's parser recurses and 100k brackets would be a RecursionError).

Each refusal is a JSON ``{"error": ...}``. Reads (GET) are left alone. The checks are pure functions of
the request's method and headers; ``protect()`` is the thin Flask hook. ``StrictJSONProvider`` makes a
Flask app refuse NaN and Infinity both ways (they are not JSON, and ``jq`` stops at them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from streamwatch import strictjson
from streamwatch.strictjson import json_depth

MAX_BODY_BYTES = 64 * 1024  # an injection or a few alerts fit many times over
MAX_JSON_DEPTH = 32  # the deepest legitimate body (an Alertmanager notification) nests 4 deep
ALLOWED_HOST_HELP = (
    "another host name (or host:port) clients may call this server by, besides the bind address and "
    "localhost; repeat for several (e.g. a compose service name or a reverse proxy's name)"
)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_DEFAULT_PORTS = {"http": 80, "https": 443}  # an Origin states only a port that is not these


_HOST_NAME = re.compile(r"^[a-z0-9_.:-]+$")  # a DNS name, an IPv4 or (brackets stripped) an IPv6 address


class Refused(Exception):
    """A request the guard turns away: ``status`` (400, 403, 413 or 415) and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _split_host(value: str) -> tuple[str, int | None]:
    """``name[:port]`` (``[v6]:port`` too) -> (lower-case name, port or None); ValueError if malformed."""
    if any(c.isspace() or not c.isprintable() for c in value):  # urlsplit drops \n and \t silently
        raise ValueError(value)
    parts = urlsplit(f"//{value}")
    name = parts.hostname
    port = parts.port  # raises ValueError on a port that is not a number in 0..65535
    if not name or parts.path or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(value)
    if not _HOST_NAME.match(name):  # "a b" was accepted as a host name
        raise ValueError(value)
    return name, port


@dataclass(frozen=True)
class Guard:
    """What one server accepts: the (host name, port) pairs it answers to, and its size limits."""

    port: int
    hosts: frozenset[tuple[str, int]]
    max_body_bytes: int = MAX_BODY_BYTES
    max_json_depth: int = MAX_JSON_DEPTH

    @classmethod
    def for_server(
        cls,
        bind_host: str,
        port: int,
        allowed_hosts: Iterable[str] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> Guard:
        """The bind address (the loopback names when it is a wildcard) and ``localhost``, at ``port``,
        plus ``allowed_hosts`` entries (``name`` at this port, or ``name:port``).

        Raises ``ValueError`` naming a malformed entry, for the config's one-line error.
        """
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        bind = bind_host.strip("[]").lower()
        names = ["localhost", *(_LOOPBACK if bind in _WILDCARDS else (bind,))]
        hosts = {(name, port) for name in names}
        for entry in allowed_hosts:
            try:
                name, entry_port = _split_host(entry.strip())
            except ValueError:
                raise ValueError(f"allowed_hosts: {entry!r} is not a host name or host:port") from None
            hosts.add((name, entry_port if entry_port is not None else port))
        return cls(port, frozenset(hosts), max_body_bytes, max_json_depth)

    def check_host(self, host: str | None) -> None:
        """403 unless ``Host`` names this server; a Host without a port is judged by its name alone."""
        if not host:
            raise Refused(403, "a Host header is required")
        try:
            name, port = _split_host(host)
        except ValueError:
            raise Refused(403, f"Host {host!r} is not a host name") from None
        ok = (name, port) in self.hosts if port is not None else any(n == name for n, _ in self.hosts)
        if not ok:
            raise Refused(403, f"Host {host!r} is not one this server answers to (see allowed_hosts)")

    def check_origin(self, origin: str | None) -> None:
        """403 for a browser request from a page not served here; no Origin (curl, services) is fine."""
        if origin is None:
            return
        try:  # "null" (a sandboxed or file: page) and anything malformed are foreign too
            parts = urlsplit(origin)
            site = (parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme))
        except ValueError:
            parts, site = urlsplit(""), None
        if site not in self.hosts or parts.scheme not in _DEFAULT_PORTS:
            raise Refused(403, f"cross-origin request from {origin!r} refused")

    def check_body(self, method: str, mimetype: str, content_length: int | None, chunked: bool) -> None:
        """415 unless a body (always for POST/PUT/PATCH) is ``application/json``; 413 over the limit."""
        has_body = chunked or bool(content_length)
        if (method != "DELETE" or has_body) and mimetype != "application/json":
            shown = mimetype or "none"
            hint = "curl -H 'Content-Type: application/json'"
            raise Refused(415, f"Content-Type must be application/json ({hint}), got {shown}")
        if content_length is not None and content_length > self.max_body_bytes:
            raise Refused(413, f"body of {content_length} bytes is over the limit of {self.max_body_bytes}")

    def check_data(self, raw: bytes, chunked: bool) -> None:
        """413 for a chunked body that reached the limit (the server stops reading there); 400 if too deep."""
        if chunked and len(raw) >= self.max_body_bytes:
            raise Refused(413, f"body is over the limit of {self.max_body_bytes} bytes")
        # Fewer brackets than the limit cannot nest past it: skip the byte-by-byte scan (most requests).
        if raw.count(b"[") + raw.count(b"{") <= self.max_json_depth:
            return
        depth = json_depth(raw)
        if depth > self.max_json_depth:
            raise Refused(400, f"JSON nests {depth} deep, over the limit of {self.max_json_depth}")


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON with NaN and Infinity (and 1e999) refused: never written (ValueError), never read
    (a 400)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # 1e999 too: Python reads it as inf, which then fails (500) wherever it is written back out.
        return strictjson.loads(s)


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def protect(app: Flask, guard: Guard) -> None:
    """Check every state-changing request against ``guard`` before its view runs; JSON errors only.

    Also sets the app's JSON to ``StrictJSONProvider`` and caps bodies without a Content-Length
    (chunked) at the same limit, and answers any HTTP error the app does not handle itself in JSON.
    """
    app.json = StrictJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = guard.max_body_bytes

    @app.before_request
    def check() -> tuple[Response, int] | None:
        if request.method not in STATE_CHANGING:
            return None
        try:
            guard.check_host(request.headers.get("Host"))
            guard.check_origin(request.headers.get("Origin"))
            chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
            guard.check_body(request.method, request.mimetype, request.content_length, chunked)
            guard.check_data(request.get_data(cache=True), chunked)
        except Refused as exc:
            return _error(exc.status, str(exc))
        return None

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _error(exc.code or 500, exc.description or exc.name)

"""The shared guard for state-changing endpoints: its pure checks, and its Flask hook on a tiny app."""

from __future__ import annotations

import http.client
import json
import math
import threading

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from streamwatch.httpguard import MAX_BODY_BYTES, Guard, Refused, json_depth, protect
from streamwatch.net import free_port

GUARD = Guard.for_server("127.0.0.1", 5000)


def refused(call, *args: object) -> int:
    with pytest.raises(Refused) as info:
        call(*args)
    return info.value.status


@pytest.mark.parametrize(
    "host", ["127.0.0.1:5000", "localhost:5000", "LOCALHOST:5000", "localhost", "127.0.0.1"]
)
def test_own_host_names_are_accepted(host: str) -> None:
    GUARD.check_host(host)


@pytest.mark.parametrize(
    "host",
    [None, "", "evil.example:5000", "evil.example", "127.0.0.1:5001", "127.0.0.1.evil.example:5000", "a b"],
)
def test_other_hosts_are_refused_403(host: str | None) -> None:
    # DNS rebinding: the browser sends the attacker's name although the address is ours.
    assert refused(GUARD.check_host, host) == 403


def test_allowed_hosts_add_names_and_host_ports() -> None:
    g = Guard.for_server("127.0.0.1", 5000, ["simulator", "proxy.lan:443"])
    g.check_host("simulator:5000")
    g.check_host("proxy.lan:443")
    assert refused(g.check_host, "proxy.lan:5000") == 403
    with pytest.raises(ValueError, match="allowed_hosts"):
        Guard.for_server("127.0.0.1", 5000, ["http://x/"])


def test_a_wildcard_bind_answers_to_the_loopback_names_only() -> None:
    g = Guard.for_server("0.0.0.0", 5001)
    for host in ("127.0.0.1:5001", "localhost:5001", "[::1]:5001"):
        g.check_host(host)
    assert refused(g.check_host, "0.0.0.0:5001") == 403
    ipv6 = Guard.for_server("::1", 8000)
    ipv6.check_host("[::1]:8000")
    ipv6.check_origin("http://[::1]:8000")


@pytest.mark.parametrize("origin", [None, "http://127.0.0.1:5000", "http://localhost:5000"])
def test_no_origin_or_our_own_is_accepted(origin: str | None) -> None:
    GUARD.check_origin(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "http://127.0.0.1:8000",  # another local service's page is another origin
        "http://127.0.0.1",  # port 80
        "ftp://127.0.0.1:5000",
        "http://[bad",
        "",
    ],
)
def test_foreign_origins_are_refused_403(origin: str) -> None:
    assert refused(GUARD.check_origin, origin) == 403


def test_body_must_be_json_and_small() -> None:
    GUARD.check_body("POST", "application/json", 10, False)
    GUARD.check_body("DELETE", "", None, False)  # a DELETE without a body needs no type
    for mimetype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""):
        assert refused(GUARD.check_body, "POST", mimetype, 10, False) == 415
    assert refused(GUARD.check_body, "POST", "", None, False) == 415  # an empty simple POST too
    assert refused(GUARD.check_body, "DELETE", "text/plain", 3, False) == 415
    assert refused(GUARD.check_body, "DELETE", "text/plain", None, True) == 415
    GUARD.check_body("POST", "application/json", MAX_BODY_BYTES, False)
    assert refused(GUARD.check_body, "POST", "application/json", MAX_BODY_BYTES + 1, False) == 413


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"", 0),
        (b"3", 0),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets inside strings do not count
        (b'["\\"[[[", []]', 2),  # nor do they after an escaped quote
        (b"[" * 100_000, 100_000),
    ],
)
def test_json_depth_scans_without_recursion(raw: bytes, depth: int) -> None:
    assert json_depth(raw) == depth


def tiny_app(guard: Guard = GUARD) -> Flask:
    app = Flask("tiny")
    seen: list[object] = []

    @app.post("/things")
    def add() -> object:
        body = request.get_json(force=True, silent=True)
        if body is None:
            return jsonify(error="body must be JSON"), 400
        seen.append(body)
        return jsonify(body), 201

    @app.get("/things")
    def read() -> object:
        return jsonify(things=seen, value=float(request.args.get("v", "1")))

    protect(app, guard)
    return app


def test_the_flask_hook_refuses_in_json_and_lets_good_requests_through() -> None:
    c = tiny_app().test_client()
    ok = c.post(
        "/things", json={"a": 1}, headers={"Host": "127.0.0.1:5000", "Origin": "http://127.0.0.1:5000"}
    )
    assert ok.status_code == 201
    hostile = [
        ({"data": "{}", "content_type": "text/plain", "headers": {"Origin": "http://evil.example"}}, 403),
        ({"data": "{}", "content_type": "text/plain"}, 415),
        ({"json": {}, "headers": {"Host": "evil.example:5000"}}, 403),
        ({"data": b" " * (MAX_BODY_BYTES + 1), "content_type": "application/json"}, 413),
        ({"data": b"[" * 60_000, "content_type": "application/json"}, 400),  # under the size cap
    ]
    for kwargs, status in hostile:
        resp = c.post("/things", **kwargs)
        assert resp.status_code == status, kwargs
        assert resp.is_json and resp.get_json()["error"], kwargs
    assert c.get("/things").get_json()["things"] == [{"a": 1}]


def test_a_chunked_body_over_the_limit_is_413_json() -> None:
    # No Content-Length to check up front: the real server must stop reading at the limit.
    port = free_port()
    server = make_server("127.0.0.1", port, tiny_app(Guard.for_server("127.0.0.1", port)), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        chunks = (b"1," * 1024 for _ in range(MAX_BODY_BYTES // 1024 + 1))
        conn.request("POST", "/things", body=chunks, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["error"]
        conn.close()
    finally:
        server.shutdown()
        server.server_close()


def test_nan_and_infinity_are_neither_read_nor_written() -> None:
    c = tiny_app().test_client()
    for literal in ("NaN", "Infinity", "-Infinity"):
        resp = c.post("/things", data=f'{{"v": {literal}}}', content_type="application/json")
        assert resp.status_code == 400, literal
    app = tiny_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as when served: a 500, not a raise into the test
    for v in ("inf", "nan"):
        resp = app.test_client().get(f"/things?v={v}")
        assert resp.status_code == 500 and resp.is_json, v
        assert "Infinity" not in resp.get_data(as_text=True) and "NaN" not in resp.get_data(as_text=True)
    finite = c.get("/things?v=2.5").get_data(as_text=True)
    assert json.loads(finite)["value"] == 2.5 and not math.isnan(json.loads(finite)["value"])


@pytest.mark.parametrize("entry", ["a b", "x\ny", "exa mple.com:80"])
def test_an_allowed_host_with_spaces_or_control_characters_is_refused(entry: str) -> None:
    # Issue 22's sweep: "a b" was accepted as a host name.
    with pytest.raises(ValueError, match="is not a host name"):
        Guard.for_server("127.0.0.1", 5000, [entry])

"""The shared library: config loading, the API format, backoff, atomic writes, and a real Prometheus."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from harness import ROOT
from harness.net import answering, busy_port, listen_backlog
from streamwatch import config
from streamwatch.atomic import atomic_write_text
from streamwatch.backoff import Backoff
from streamwatch.cli import run
from streamwatch.errors import ConfigError, DataError, UserError
from streamwatch.files import read_text
from streamwatch.health import QueryHealth
from streamwatch.net import (
    LISTEN_BACKLOG,
    free_port,
    http_ok,
    port_in_use,
    require_free_port,
    start_metrics_server,
)
from streamwatch.promapi import (
    FormatError,
    PrometheusClient,
    PrometheusError,
    format_value,
    matrix_response,
    parse_response,
)
from streamwatch.series import Series


@dataclass
class Inner:
    weight: float = 1.0


@dataclass
class Example:
    name: str = "x"
    count: int = 3
    ratio: float = 0.5
    enabled: bool = True
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    limit: float | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must not be negative, got {self.count}")


def test_config_file_then_flags_override(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[svc]\ncount = 7\nratio = 2\ntags = ["p"]\n[svc.inner]\nweight = 0.25\n')
    cfg = config.load(Example, path, section="svc", overrides={"count": 9, "name": None})
    assert cfg == Example(count=9, ratio=2.0, tags=["p"], inner=Inner(0.25))
    assert isinstance(cfg.ratio, float)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"cuont": 1}, "unknown key 'cuont'"),
        ({"count": "3"}, "'count' must be an integer"),
        ({"count": True}, "'count' must be an integer"),
        ({"ratio": "x"}, "'ratio' must be a number"),
        ({"mode": "c"}, "'mode' must be one of"),
        ({"count": -1}, "count must not be negative"),
        ({"inner": {"wieght": 1}}, "unknown key 'wieght'"),
        ({"limit": "high"}, "'limit' must be a number"),
    ],
)
def test_config_rejects_with_one_line(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.from_mapping(Example, data, "test.toml")
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_command_line_strings_are_read_as_each_fields_type() -> None:
    raw = {"name": "y", "count": "7", "ratio": "1e-3", "enabled": "False", "mode": "b", "limit": "2.5"}
    got = config.from_mapping(Example, raw, text=True)
    assert (got.name, got.count, got.ratio, got.enabled, got.mode, got.limit) == (
        "y",
        7,
        0.001,
        False,
        "b",
        2.5,
    )
    for bad, needle in (
        ({"count": "seven"}, "'count' must be an integer, got 'seven'"),
        ({"ratio": "nan"}, "'ratio' must be a finite number"),
        ({"enabled": "yes"}, "'enabled' must be true or false"),
        ({"mode": "c"}, "'mode' must be one of"),
        ({"count": "-1"}, "count must not be negative"),
    ):
        with pytest.raises(ConfigError, match=needle):
            config.from_mapping(Example, bad, "cli", text=True)
    with pytest.raises(ConfigError, match="'count' must be an integer"):
        config.from_mapping(Example, {"count": "7"})  # a file's string stays a string: an error


def test_config_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("count = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(Example, bad)
    with pytest.raises(ConfigError, match="no such config file"):
        config.load(Example, tmp_path / "missing.toml")


def test_read_text_names_the_file_and_what_it_was_for(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text("{}\n")
    assert read_text(good, "training file", DataError) == "{}\n"
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00")
    cases = {
        tmp_path / "nope.json": "no such training file",
        tmp_path: "is a directory, not a training file",
        binary: "training file is not UTF-8 text",
    }
    for path, needle in cases.items():
        with pytest.raises(DataError, match=needle) as info:
            read_text(path, "training file", DataError)
        assert str(info.value).startswith(f"{path}: ")


def test_query_health_counts_failures_and_shows_last_success_only_once_there_is_one() -> None:
    reg = CollectorRegistry()
    health = QueryHealth("x", reg, ("metric",), ("price",))

    def text() -> str:
        return generate_latest(reg).decode()

    assert 'x_prometheus_up{metric="price"} 0.0' in text()
    assert 'x_prometheus_errors_total{metric="price"} 0.0' in text()
    # The stall rules read "never succeeded" from this series' absence, so no zero is exported.
    assert "x_last_success_timestamp_seconds{" not in text()
    health.failed()
    health.failed()
    assert 'x_prometheus_errors_total{metric="price"} 2.0' in text()
    health.succeeded(1700000000.0)
    assert 'x_prometheus_up{metric="price"} 1.0' in text()
    assert 'x_last_success_timestamp_seconds{metric="price"} 1.7e+09' in text()
    health.failed()
    assert 'x_prometheus_up{metric="price"} 0.0' in text()
    assert 'x_last_success_timestamp_seconds{metric="price"} 1.7e+09' in text()  # kept through failures


def test_cli_run_turns_user_errors_into_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    def main(argv: object) -> int:
        raise UserError("the thing\nis broken")

    assert run(main, [], prog="prog") == 2
    assert capsys.readouterr().err == "prog: error: the thing is broken\n"


def test_cli_run_turns_a_missing_dependency_into_one_line_but_not_a_missing_module_of_ours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def needs(name: str) -> Callable[[object], int]:
        def main(argv: object) -> int:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        return main

    assert run(needs("pandas"), [], prog="prog") == 2
    err = capsys.readouterr().err
    assert err.startswith("prog: error: this Python (") and "'pandas'" in err and "make setup" in err
    assert err.count("\n") == 1
    with pytest.raises(ModuleNotFoundError):  # a bug of ours keeps its traceback
        run(needs("monitor.nothing_here"), [], prog="prog")


@pytest.mark.parametrize(
    "args",
    [["monitor.py", "--help"], ["incident_detector.py", "--help"], ["simulator.py", "serve", "--port", "0"]],
)
def test_a_root_script_started_without_the_venv_says_what_to_do(args: list[str]) -> None:
    # The interpreter behind the venv, without site-packages: what `python3 monitor.py` is on a machine
    # whose system Python has none of the dependencies.
    bare = [os.path.realpath(sys.executable), "-S"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([*bare, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"{args[0]}: error: this Python (")
    assert "make setup" in line and ".venv/bin/python" in line


def test_api_format_round_trip() -> None:
    s = Series({"__name__": "m", "job": "j"}, np.array([1.0, 2.5, 4.0]), np.array([1.0, 0.1, math.inf]))
    doc = json.loads(json.dumps(matrix_response([s])))
    assert doc["data"]["result"][0]["values"] == [[1, "1"], [2.5, "0.1"], [4, "+Inf"]]
    (back,) = parse_response(doc)
    assert back.labels == s.labels
    np.testing.assert_array_equal(back.timestamps, s.timestamps)
    np.testing.assert_array_equal(back.values, s.values)


def test_api_parse_sorts_samples_and_reads_vectors() -> None:
    doc = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"a": "1"}, "value": [10, "3.5"]}]},
    }
    (s,) = parse_response(doc)
    assert s.values.tolist() == [3.5] and s.timestamps.tolist() == [10.0]
    doc = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[3, "3"], [1, "1"]]}]},
    }
    assert parse_response(doc)[0].values.tolist() == [1.0, 3.0]


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([], "expected a JSON object"),
        ({"status": "error", "error": "bad query"}, "bad query"),
        ({"status": "success", "data": {}}, "missing data.resultType"),
        ({"status": "success", "data": {"resultType": "string", "result": []}}, "returns a string"),
        (
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "abc"]]}]},
            },
            "is not a number",
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, 2.0]]}]},
            },
            "is not a string",
        ),
    ],
)
def test_api_parse_rejects(doc: object, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        parse_response(doc)


@pytest.mark.parametrize("body", ["[]", '["success"]', '"success"', "42", "null"])
@pytest.mark.parametrize("status", [200, 500])
def test_client_calls_json_that_is_not_an_object_a_prometheus_error(body: str, status: int) -> None:
    with answering(body, status) as url:
        client = PrometheusClient(url, timeout_s=2)
        with pytest.raises(PrometheusError, match=f"HTTP {status} with JSON that is not an API response"):
            client.query("up")
        with pytest.raises(PrometheusError):
            client.query_raw("up")


def test_client_passes_on_a_success_answer_it_cannot_parse_as_a_format_error() -> None:
    bad = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 2]}]}}
    with answering(json.dumps(bad)) as url, pytest.raises(FormatError, match="not a string"):
        PrometheusClient(url, timeout_s=2).query("up")


def test_port_in_use_only_for_a_busy_port() -> None:
    assert not port_in_use("127.0.0.1", free_port())
    with busy_port() as port:
        assert port_in_use("127.0.0.1", port)
        with pytest.raises(UserError) as caught:
            require_free_port("127.0.0.1", port, "monitor")
        # Said once, inside the sentence: the CLI puts its own name in front ("monitor.py: error: ...").
        assert str(caught.value) == f"port {port} for the monitor on 127.0.0.1 is already in use"


def test_metrics_server_serves_metrics_and_a_cheap_healthz() -> None:
    registry = CollectorRegistry()
    Gauge("streamwatch_test_value", "A value.", registry=registry).set(3)
    port = free_port()
    server, thread = start_metrics_server(registry, "127.0.0.1", port, "test")
    try:
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200 and "streamwatch_test_value 3.0" in metrics.text
        with pytest.raises(UserError, match=f"^port {port} for the again on 127.0.0.1 is already in use$"):
            start_metrics_server(registry, "127.0.0.1", port, "again")
    finally:
        server.shutdown()
        server.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.parametrize("host", ["nosuchhost.invalid", "999.1.1.1"])
def test_an_address_that_cannot_be_bound_is_not_called_in_use(host: str) -> None:
    port = free_port()
    with pytest.raises(UserError, match=f"^cannot listen on {host}:{port}: ") as caught:
        port_in_use(host, port)
    assert "in use" not in str(caught.value)
    with pytest.raises(UserError, match=f"^cannot listen on {host}:{port} for the monitor: "):
        require_free_port(host, port, "monitor")


def test_format_value_matches_prometheus() -> None:
    assert [format_value(v) for v in (12.0, 0.5, -3.25, math.nan, -math.inf)] == [
        "12",
        "0.5",
        "-3.25",
        "NaN",
        "-Inf",
    ]


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(initial_s=1, factor=2, maximum_s=5)
    assert [b.next_delay() for _ in range(5)] == [1, 2, 4, 5, 5]
    b.reset()
    assert b.next_delay() == 1


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "f.json"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["f.json"]
    assert p.stat().st_mode & 0o777 == 0o644


@pytest.mark.e2e
def test_real_prometheus_scrapes_itself(start_prometheus) -> None:
    from harness.services import ScrapeTarget
    from streamwatch.net import wait_until

    prom = start_prometheus([])
    addr = prom.url.removeprefix("http://")
    prom = start_prometheus([ScrapeTarget("prometheus", addr)])
    assert wait_until(lambda: bool(prom.client.query('up{job="prometheus"}')), 20)
    (s,) = prom.client.query('up{job="prometheus"}')
    assert s.values[-1] == 1.0 and s.labels["job"] == "prometheus"


def test_metrics_server_serves_with_a_normal_listen_backlog() -> None:
    # prometheus_client's server listened with socketserver's 5: under load clients waited 1 s retries.
    registry = CollectorRegistry()
    port = free_port()
    server, thread = start_metrics_server(registry, "127.0.0.1", port, "test")
    try:
        assert server.request_queue_size >= LISTEN_BACKLOG >= 128
        assert listen_backlog(port) >= 128
        assert thread.daemon and http_ok(f"http://127.0.0.1:{port}/metrics")
        with pytest.raises(UserError, match=f"^port {port} for the test on 127.0.0.1 is already in use"):
            start_metrics_server(registry, "127.0.0.1", port, "test")
    finally:
        server.shutdown()
        server.server_close()


def test_the_flask_services_server_has_a_normal_listen_backlog_too() -> None:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), lambda env, start: [], threaded=True)
    try:
        assert listen_backlog(server.server_port) >= 128
    finally:
        server.server_close()


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://127.0.0.1:9090", "localhost:9090", "http://", "https:///x"]
)
def test_every_service_refuses_a_prometheus_url_it_could_never_reach_the_same_way(url: str) -> None:
    # One check (streamwatch.promapi.check_base_url) behind the monitor's, the dashboard's and the
    # incident detector's prometheus_url: each used to have its own, and "http://" passed the dashboard's.
    from dashboard.config import DashboardConfig
    from incident.config import IncidentConfig
    from monitor.config import MonitorConfig

    for cls in (MonitorConfig, DashboardConfig, IncidentConfig):
        with pytest.raises(
            ValueError, match=r"^prometheus_url must be an http:// or https:// URL with a host"
        ):
            cls(prometheus_url=url)


def test_the_polling_services_share_one_shortest_interval() -> None:
    from incident.config import IncidentConfig
    from monitor.config import MonitorConfig

    for cls in (MonitorConfig, IncidentConfig):
        with pytest.raises(ValueError, match=r"^interval must be 0.1 to 86,400 s, got 0.05"):
            cls(interval=0.05)
        assert cls(interval=config.MIN_INTERVAL_S).interval == 0.1


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    """An outgoing connection takes its local port from the ephemeral range, so a free port from there
    could be taken before the service binds it (a parallel test run saw it): free_port picks below it."""
    import socket
    from pathlib import Path

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    picked = [free_port() for _ in range(200)]
    ports = set(picked)
    assert len(ports) == len(picked)  # never the same port twice in one process
    for port in ports:
        assert 20_000 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

"""The runner's failure paths, with real processes: a service that dies, one that never gets healthy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.stack_run import pid_alive, start_stack
from stack.config import ROOT
from streamwatch.net import free_port, port_in_use, wait_until
from streamwatch.promapi import PrometheusClient

pytestmark = pytest.mark.e2e

STACK = """
[stack]
data_dir = "{data}"
scrape_interval = "1s"
evaluation_interval = "1s"
health_timeout_s = {timeout}

[services.prometheus]
kind = "prometheus"
port = {prom}
job = "prometheus"
health_path = "/-/ready"
command = ["prometheus", "--config.file={{data_dir}}/prometheus.yml",
           "--storage.tsdb.path={{data_dir}}/prometheus", "--web.listen-address={{host}}:{{port}}"]

[services.worker]
port = {worker}
command = ["{{python}}", "-c", {code}]
"""


def run_stack(
    tmp_path: Path, code: str, timeout: float = 60.0
) -> tuple[subprocess.CompletedProcess[str], dict]:
    ports = {"prom": free_port(), "worker": free_port()}
    config = tmp_path / "stack.toml"
    config.write_text(STACK.format(data=tmp_path / "var", timeout=timeout, code=repr(code), **ports))
    out = subprocess.run(
        [sys.executable, "-m", "stack", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    pids = {m[0]: int(m[1]) for m in re.findall(r"stack: (\S+) started \(pid=(\d+)\)", out.stdout)}
    return out, {"ports": ports, "pids": pids}


def assert_nothing_left(info: dict) -> None:
    assert set(info["pids"]) == {"prometheus", "worker"}
    for name, pid in info["pids"].items():
        assert not pid_alive(pid), f"{name} is still running"
    for port in info["ports"].values():
        assert not port_in_use("127.0.0.1", port)


def test_a_dying_service_stops_the_stack_and_shows_its_log(tmp_path: Path) -> None:
    code = "import sys, time; time.sleep(1); print('cannot open the model file'); sys.exit(3)"
    out, info = run_stack(tmp_path, code)
    assert out.returncode == 1
    assert "worker exited with status 3" in out.stderr
    assert "cannot open the model file" in out.stderr  # the tail of var/logs/worker.log
    assert "Streamwatch is up" not in out.stdout
    assert (tmp_path / "var" / "logs" / "worker.log").read_text().strip() == "cannot open the model file"
    assert_nothing_left(info)


def test_a_service_that_never_gets_healthy_is_named(tmp_path: Path) -> None:
    out, info = run_stack(tmp_path, "import time; print('still loading'); time.sleep(120)", timeout=3)
    assert out.returncode == 1
    assert "worker did not become healthy at http://127.0.0.1:" in out.stderr
    assert "within 3 s" in out.stderr
    assert "still loading" in out.stderr
    assert_nothing_left(info)


SHARD_WORKER = """
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
index, count = sys.argv[sys.argv.index("--shard") + 1].split("/")
body = f'worker_shard_info{{shard="{index}",shards="{count}"}} 1\\n'.encode()
print(f"shard {index}/{count} on port {port}", flush=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_replicas_start_as_shards_and_prometheus_scrapes_every_one(tmp_path: Path) -> None:
    prom = free_port()
    worker = free_port()
    script = tmp_path / "shard_worker.py"
    script.write_text(SHARD_WORKER)
    text = STACK.format(data=tmp_path / "var", timeout=60, code=repr(str(script)), prom=prom, worker=worker)
    text = text.replace(f"port = {worker}\n", f'port = {worker}\nreplicas = 3\njob = "worker"\n')
    text = text.replace('"-c", ', "").replace(
        repr(str(script)) + "]", repr(str(script)) + ', "--port", "{port}"]'
    )
    config = tmp_path / "stack.toml"
    config.write_text(text)
    stack = start_stack(config, tmp_path)  # the banner: every replica healthy and scraped
    try:
        client = PrometheusClient(f"http://127.0.0.1:{prom}")
        want = [(f"127.0.0.1:{worker + i}", str(i), "3") for i in range(3)]

        def scraped() -> list[tuple[str, str, str]]:
            found = client.query("worker_shard_info")
            return sorted((s.labels["instance"], s.labels["shard"], s.labels["shards"]) for s in found)

        # Healthy (the banner) comes before Prometheus' first scrape of each replica: poll for it.
        wait_until(lambda: scraped() == want, 30.0, 0.5)
        assert scraped() == want
        for i in range(3):
            assert f"worker-{i}" in stack.output()
            log = (tmp_path / "var" / "logs" / f"worker-{i}.log").read_text()
            assert log == f"shard {i}/3 on port {worker + i}\n"  # each replica's output in its own log
    finally:
        assert stack.stop() == 0
    assert not any(port_in_use("127.0.0.1", worker + i) for i in range(3))

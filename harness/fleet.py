"""A stand-in for a many-series monitor: one process exporting per-series anomaly counters.

``python -m harness.fleet --port P --metric cpu --series 50`` serves, for series ``cpu="0"`` ..
``cpu="49"``, what a monitor watching a many-series query exports: ``streamwatch_monitor_anomalies_total``,
``streamwatch_monitor_anomaly_score``, ``streamwatch_monitor_actual`` and ``..._forecast``, each with
``metric`` plus the series' own label, and ``streamwatch_monitor_last_success_timestamp_seconds``. Tests
drive it over HTTP: ``POST /add`` with ``{"anomalies": {"17": 12}, "scores": {"17": 4.5}, "done": ts}``
adds anomalies, sets scores and says a cycle completed at ``ts``. ``--first K`` numbers the series from K,
so two processes can be two monitor replicas exporting disjoint series. It is a real exporter scraped by
a real Prometheus, so the detector reads it as it reads monitors.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from harness.procs import ManagedProcess, python_argv
from streamwatch.net import free_port, reply


def serve(port: int, metric: str, series: int, label: str, first: int = 0) -> None:
    registry = CollectorRegistry()
    anomalies = Counter(
        "streamwatch_monitor_anomalies", "Samples found outside the forecast band.", ["metric", label],
        registry=registry,
    )  # fmt: skip
    score = Gauge(
        "streamwatch_monitor_anomaly_score", "Highest anomaly score of the last cycle.", ["metric", label],
        registry=registry,
    )  # fmt: skip
    actual = Gauge(
        "streamwatch_monitor_actual", "Latest actual value scored.", ["metric", label], registry=registry
    )
    forecast = Gauge(
        "streamwatch_monitor_forecast", "Forecast band at the latest sample scored.",
        ["metric", label, "bound"], registry=registry,
    )  # fmt: skip
    done = Gauge(
        "streamwatch_monitor_last_success_timestamp_seconds", "When the last cycle completed.", ["metric"],
        registry=registry,
    )  # fmt: skip
    done.labels(metric).set(0)  # no cycle completed yet
    for i in range(first, first + series):
        anomalies.labels(metric, str(i))
        score.labels(metric, str(i)).set(0.1)
        # Each series its own level (100 + i), inside a band of +-10: told apart on a chart.
        actual.labels(metric, str(i)).set(100 + i)
        for bound, offset in (("lower", -10), ("expected", 0), ("upper", 10)):
            forecast.labels(metric, str(i), bound).set(100 + i + offset)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                body = generate_latest(registry)
            reply(self, 200, CONTENT_TYPE_LATEST, body)

        def do_POST(self) -> None:
            doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                for key, n in doc.get("anomalies", {}).items():
                    anomalies.labels(metric, key).inc(n)
                for key, v in doc.get("scores", {}).items():
                    score.labels(metric, key).set(v)
                if "done" in doc:
                    done.labels(metric).set(doc["done"])
                totals = {k: anomalies.labels(metric, k)._value.get() for k in doc.get("anomalies", {})}
            reply(self, 200, "application/json", json.dumps({"totals": totals}).encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@dataclass
class Fleet:
    """The running exporter: ``add`` returns each touched series' new counter total."""

    url: str
    address: str
    metric: str
    label: str
    process: ManagedProcess

    def add(
        self, anomalies: dict[str, float], scores: dict[str, float] | None = None, done: float | None = None
    ) -> dict[str, float]:
        body: dict[str, Any] = {"anomalies": anomalies, "scores": scores or {}}
        if done is not None:
            body["done"] = done
        resp = requests.post(f"{self.url}/add", json=body, timeout=5)
        resp.raise_for_status()
        return {k: float(v) for k, v in resp.json()["totals"].items()}


def start_fleet(
    tmp_path: Path,
    metric: str = "cpu",
    series: int = 50,
    label: str = "cpu",
    first: int = 0,
    port: int | None = None,
) -> Fleet:
    """Start the exporter (on ``port``, e.g. again where a stopped one was, or a free one)."""
    port = port or free_port()
    argv = python_argv(
        "-m", "harness.fleet", "--port", str(port), "--metric", metric, "--series", str(series),
        "--label", label, "--first", str(first),
    )  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    proc = ManagedProcess("fleet exporter", argv, tmp_path / f"fleet-{port}.log", cwd=root)
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{url}/metrics", timeout_s=30)
    return Fleet(url, f"127.0.0.1:{port}", metric, label, proc)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m harness.fleet")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--metric", default="cpu")
    p.add_argument("--series", type=int, default=50)
    p.add_argument("--label", default="cpu")
    p.add_argument("--first", type=int, default=0)
    args = p.parse_args(argv)
    serve(args.port, args.metric, args.series, args.label, args.first)


if __name__ == "__main__":
    main()

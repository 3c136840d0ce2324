"""A real simulator subprocess scraped by a real Prometheus; the CLI run as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import ROOT
from harness.services import ScrapeTarget
from streamwatch.net import wait_until
from streamwatch.promapi import parse_response

pytestmark = pytest.mark.e2e


def test_fixture_serves_metrics_and_stops_on_sigterm(start_simulator) -> None:
    sim = start_simulator()
    assert sim.address == f"127.0.0.1:{sim.port}"
    text = requests.get(f"{sim.url}/metrics", timeout=5).text
    assert "energy_price_metric " in text and "energy_consumption_metric " in text
    assert sim.process.stop() == 0  # SIGTERM ends the server cleanly, not by a kill


def test_a_config_file_adds_metrics_without_code(start_simulator, tmp_path: Path) -> None:
    cfg = tmp_path / "sim.toml"
    cfg.write_text('[[metrics]]\nname = "water_flow"\nmin = 5.0\nmax = 40.0\nstep = 5\n')
    sim = start_simulator(cfg, seed=3)
    text = requests.get(f"{sim.url}/metrics", timeout=5).text
    values = [float(line.split()[1]) for line in text.splitlines() if line.startswith("water_flow_metric ")]
    assert len(values) == 1 and 5.0 <= values[0] <= 40.0
    assert "energy_price_metric" not in text
    resp = requests.post(
        f"{sim.url}/anomalies", json={"metric": "water_flow", "kind": "drop", "duration_s": 60}
    )
    assert resp.status_code == 201
    text = requests.get(f"{sim.url}/metrics", timeout=5).text
    assert "water_flow_metric 5.0" in text.splitlines()


def test_prometheus_scrapes_bounded_values_and_an_injected_spike(start_simulator, start_prometheus) -> None:
    sim = start_simulator()
    prom = start_prometheus([ScrapeTarget("flask_app", sim.address, interval="1s")])
    client = prom.client
    assert wait_until(lambda: len(_range(client, "energy_price_metric")) >= 3, timeout_s=30)
    for name, lo, hi in (("energy_price_metric", 10.0, 1000.0), ("energy_consumption_metric", 1.0, 500.0)):
        values = _range(client, name)
        assert values and all(lo <= v <= hi for v in values), (name, values)

    resp = requests.post(
        f"{sim.url}/anomalies",
        json={"metric": "energy_price", "kind": "spike", "magnitude": 5.0, "duration_s": 30},
        timeout=5,
    )
    assert resp.status_code == 201
    # A x5 spike takes the price past its normal maximum of 1000 unless the wave sits below 200;
    # the active-anomalies gauge proves the scrape saw the injection whatever the phase.
    assert wait_until(
        lambda: _instant(client, 'streamwatch_simulator_active_anomalies{metric="energy_price"}') == 1.0,
        timeout_s=20,
    )
    spiked = wait_until(lambda: max(_range(client, "energy_price_metric"), default=0) > 1000.0, timeout_s=60)
    assert spiked, _range(client, "energy_price_metric")


def test_generated_training_data_has_the_shape_of_a_capture(
    start_simulator, start_prometheus, tmp_path: Path
) -> None:
    sim = start_simulator()
    prom = start_prometheus([ScrapeTarget("flask_app", sim.address, interval="1s")])
    assert wait_until(lambda: len(_range(prom.client, "energy_price_metric")) >= 5, timeout_s=30)

    captured, generated = tmp_path / "captured.json", tmp_path / "generated.json"
    done = _cli(
        "capture", "--prometheus-url", prom.url, "--query", "energy_price_metric[1m]", "--out", str(captured)
    )
    assert done.returncode == 0, done.stderr
    done = _cli("generate", "--metric", "energy_price", "--duration", "1m", "--out", str(generated))
    assert done.returncode == 0, done.stderr

    cap_doc, gen_doc = json.loads(captured.read_text()), json.loads(generated.read_text())
    assert _shape(gen_doc) == _shape(cap_doc)
    [cap], [gen] = parse_response(cap_doc), parse_response(gen_doc)
    assert len(cap) >= 5 and len(gen) == 30
    assert cap.labels["instance"] == sim.address and cap.labels["job"] == "flask_app"
    assert cap.values.min() >= 10.0 and cap.values.max() <= 1000.0

    # A query with no data, or an instant vector, is refused with one line instead of an empty file.
    for query in ("no_such_metric[1h]", "energy_price_metric"):
        out = tmp_path / "refused.json"
        done = _cli("capture", "--prometheus-url", prom.url, "--query", query, "--out", str(out))
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr and not out.exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "simulator.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def _shape(doc: dict[str, Any]) -> Any:
    """Everything but the numbers: keys, result type, label names and the JSON types of samples."""
    kind = {int: "number", float: "number", str: "string"}
    return (
        sorted(doc),
        sorted(doc["data"]),
        doc["status"],
        doc["data"]["resultType"],
        [
            (
                sorted(item),
                sorted(item["metric"]),
                {tuple(kind[type(x)] for x in pair) for pair in item["values"]},
            )
            for item in doc["data"]["result"]
        ],
    )


def _range(client, expr: str) -> list[float]:
    end = time.time()
    series = client.query_range(expr, end - 120, end, 1)
    return [float(v) for s in series for v in s.values]


def _instant(client, expr: str) -> float | None:
    series = client.query(expr)
    return float(series[0].values[-1]) if series else None

"""Three monitor replicas 0/3, 1/3, 2/3 on a real Prometheus and a simulator with 300 series: every
series watched exactly once; one replica stopped shows as down while the others carry on; restarted,
it restores its series from its snapshot instead of training them again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import ROOT
from harness.procs import ManagedProcess, python_argv
from harness.services import ScrapeTarget
from monitor.shard import belongs
from streamwatch.net import free_port, wait_until

SERIES = 300
COUNT = 3
CONFIG = """
[monitor]
prometheus_url = "{prometheus}"
interval = 1.0
snapshot_every = 2.0

[[monitor.queries]]
name = "energy_price"
expr = "energy_price_metric"
detector = "ema"
step = 1.0
fit_window = 30.0
"""


def start_monitor(
    config: Path, index: int, port: int, models: Path, tmp_path: Path, run: int
) -> ManagedProcess:
    argv = python_argv(
        "monitor.py",
        "--config",
        str(config),
        "--shard",
        f"{index}/{COUNT}",
        "--port",
        str(port),
        "--model-dir",
        str(models),
    )
    proc = ManagedProcess(f"monitor-{index}", argv, tmp_path / f"monitor-{index}-{run}.log", cwd=ROOT)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=60)
    return proc


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(v for _, v in samples.get(name, []))


@pytest.mark.e2e
def test_three_shards_cover_every_series_once_and_a_restart_restores_without_retraining(
    tmp_path: Path, start_prometheus, start_simulator
) -> None:
    sim = start_simulator(None, "--series", str(SERIES), seed=15)
    ports = [free_port() for _ in range(COUNT)]
    jobs = [f"streamwatch_monitor_{i}" for i in range(COUNT)]
    prom = start_prometheus(
        [ScrapeTarget("flask_app", sim.address)]
        + [ScrapeTarget(job, f"127.0.0.1:{port}") for job, port in zip(jobs, ports, strict=True)]
    )
    config = tmp_path / "monitor.toml"
    config.write_text(CONFIG.format(prometheus=prom.url))
    models = tmp_path / "models"  # one folder for all three, as in the local stack: files per shard
    monitors = [start_monitor(config, i, ports[i], models, tmp_path, 0) for i in range(COUNT)]
    try:
        # Every series watched (scored at least once) by exactly one replica, as Prometheus sees them.
        def all_scored() -> bool:
            found = prom.client.query("count(streamwatch_monitor_anomaly_score)")
            return bool(found) and found[0].values[-1] == SERIES

        assert wait_until(all_scored, 120, 0.5), [m.log_tail() for m in monitors]
        assert prom.client.query("sum(streamwatch_monitor_series)")[0].values[-1] == SERIES
        assert prom.client.query("count by (series) (streamwatch_monitor_anomaly_score) > 1") == []
        watched = prom.client.query("streamwatch_monitor_anomaly_score")
        assert len({s.labels["series"] for s in watched}) == SERIES
        for s in watched:
            # The series' own labels as the monitor read them (its job/instance were renamed on scrape).
            own = {
                "__name__": "energy_price_metric",
                "series": s.labels["series"],
                "job": s.labels["exported_job"],
                "instance": s.labels["exported_instance"],
            }
            index = jobs.index(s.labels["job"])
            assert belongs(own, index, COUNT), s.labels
        for i in range(COUNT):
            info = prom.client.query(f'streamwatch_monitor_shard_info{{job="{jobs[i]}"}}')
            assert [(s.labels["shard"], s.labels["shards"]) for s in info] == [(str(i), str(COUNT))]
        shard1 = scrape(ports[1])
        mine = int(value(shard1, "streamwatch_monitor_series"))
        assert 0 < mine < SERIES
        assert value(shard1, "streamwatch_monitor_fits_total") == mine  # each trained once, from history
        assert value(shard1, "streamwatch_monitor_series_restored_total") == 0  # nothing saved before
        snapshot = models / f"snapshot-energy_price-1of{COUNT}.npz"
        assert wait_until(
            snapshot.exists, 30, 0.2
        )  # written while running (snapshot_every), not only at exit

        # Replica 1 goes away: Prometheus says so, the other two keep cycling.
        monitors[1].stop()
        stopped_at = time.time()
        assert wait_until(
            lambda: [s.values[-1] for s in prom.client.query(f'up{{job="{jobs[1]}"}}')] == [0.0], 30, 0.5
        )

        def others_carry_on() -> bool:
            others = f'job=~"{jobs[0]}|{jobs[2]}"'
            found = prom.client.query(
                f"max by (job) (streamwatch_monitor_last_success_timestamp_seconds{{{others}}})"
            )
            return len(found) == 2 and all(s.values[-1] > stopped_at + 2 for s in found)

        assert wait_until(others_carry_on, 30, 0.5)

        # Back again: every one of its series restored from the snapshot, none trained, all scoring.
        monitors[1] = start_monitor(config, 1, ports[1], models, tmp_path, 1)
        first = scrape(ports[1])
        assert value(first, "streamwatch_monitor_series_restored_total") == mine
        assert value(first, "streamwatch_monitor_series") == mine

        def scoring_again() -> bool:
            now = scrape(ports[1])
            rows = now.get(
                "streamwatch_monitor_anomaly_score", []
            )  # a restored series: once Prometheus has it
            return len(rows) == mine and value(now, "streamwatch_monitor_samples_scored_total") >= mine

        assert wait_until(scoring_again, 30, 0.5), monitors[1].log_tail()
        assert value(scrape(ports[1]), "streamwatch_monitor_fits_total") == 0  # no retraining
        assert wait_until(
            lambda: [s.values[-1] for s in prom.client.query(f'up{{job="{jobs[1]}"}}')] == [1.0], 30, 0.5
        )
    finally:
        for m in monitors:
            m.stop()

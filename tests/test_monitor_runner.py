"""The monitor's cycle against a real Prometheus: each sample once, catch-up after an outage, backoff,
retraining without flagged samples, and the exported metrics' names and format."""

from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from harness.monitor_doubles import NORMAL, TROUBLE, Recording, constant_detector
from harness.net import answering
from harness.services import ScrapeTarget, assert_promtool_metrics_ok
from monitor.config import MonitorConfig
from monitor.detectors.prophet import ProphetBandDetector
from monitor.exporter import MonitorMetrics
from monitor.forecast import Band
from monitor.runner import Runner, RunnerSettings
from monitor.source import PrometheusSource
from streamwatch.clock import FakeClock
from streamwatch.net import free_port, start_metrics_server, wait_until
from streamwatch.promapi import PrometheusClient
from streamwatch.series import Series

QUERY = "watched_metric"


@dataclass
class Target:
    gauge: Gauge
    address: str


@pytest.fixture
def target() -> Iterator[Target]:
    """A real /metrics endpoint with one gauge the test sets, for Prometheus to scrape every second."""
    registry = CollectorRegistry()
    gauge = Gauge(QUERY, "A value the test controls.", registry=registry)
    gauge.set(NORMAL)
    port = free_port()
    server, _ = start_metrics_server(registry, "127.0.0.1", port, "test target")
    yield Target(gauge, f"127.0.0.1:{port}")
    server.shutdown()


def newest_stored(client: PrometheusClient) -> float:
    found = client.query(f"{QUERY}[10s]")
    return float(found[0].timestamps[-1]) if found and len(found[0]) else -math.inf


def wait_for_samples_after(client: PrometheusClient, t: float, n: int = 1) -> None:
    def enough() -> bool:
        found = client.query(f"{QUERY}[30s]")
        return bool(found) and int(np.sum(found[0].timestamps > t)) >= n

    assert wait_until(enough, 30, 0.1), f"Prometheus stored no {n} new samples"


def stored_between(client: PrometheusClient, lo: float, hi: float) -> list[float]:
    found = client.query(f"{QUERY}[{math.ceil(hi - lo) + 5}s]", at=hi)
    ts = found[0].timestamps
    return [float(t) for t in ts[(ts > lo) & (ts <= hi)]]


def value(metrics: MonitorMetrics, name: str) -> float:
    v = metrics.registry.get_sample_value(name, {"metric": "watched"})
    assert v is not None, name
    return v


def make_runner(
    url: str, detector, clock: FakeClock, first_window: float = 5.0, **settings
) -> tuple[Runner, PrometheusSource, MonitorMetrics]:
    source = PrometheusSource(PrometheusClient(url), QUERY, first_window=first_window, max_window=3600.0)
    metrics = MonitorMetrics("watched")
    runner = Runner(
        detector, source, metrics, clock, RunnerSettings(interval=2.0, **settings), out=io.StringIO()
    )
    return runner, source, metrics


@pytest.mark.e2e
def test_each_sample_is_scored_exactly_once_across_cycles(start_prometheus, target):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    rec = Recording(constant_detector())
    runner, source, metrics = make_runner(prom.url, rec, clock)
    first_now = clock.time()
    assert runner.run_cycle()
    for _ in range(4):
        wait_for_samples_after(prom.client, max(source.last_ts.values()))
        clock.now = time.time()
        assert runner.run_cycle()
        clock.now = time.time()
        assert runner.run_cycle()  # straight away again: usually nothing new, never a repeat
    scored = rec.ts
    assert scored == sorted(set(scored)), "a sample was scored twice or out of order"
    assert scored == stored_between(prom.client, first_now - 5.0, clock.now)
    assert value(metrics, "streamwatch_monitor_samples_scored_total") == len(scored)
    assert value(metrics, "streamwatch_monitor_anomalies_total") == 0
    assert value(metrics, "streamwatch_monitor_prometheus_up") == 1
    assert runner.cycles == 9
    lines = runner.out.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 10 and len({len(line) for line in lines}) == 1  # a header, then aligned rows


@pytest.mark.e2e
def test_catch_up_after_an_outage_scores_every_missed_sample_once(start_prometheus, target, caplog):
    caplog.set_level(logging.INFO, logger="monitor.runner")
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    rec = Recording(constant_detector())
    runner, source, metrics = make_runner(prom.url, rec, clock)
    first_now = clock.time()
    assert runner.run_cycle()
    last_before = max(source.last_ts.values())

    # The monitor loses Prometheus (a dead port) while Prometheus keeps scraping; one sample in
    # trouble during the outage must still be found afterwards.
    source.client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    for _ in range(3):
        clock.now = time.time()
        assert not runner.run_cycle()
    target.gauge.set(TROUBLE)
    wait_for_samples_after(prom.client, last_before, 3)
    target.gauge.set(NORMAL)
    wait_for_samples_after(prom.client, newest_stored(prom.client), 2)
    assert value(metrics, "streamwatch_monitor_prometheus_errors_total") == 3
    assert value(metrics, "streamwatch_monitor_prometheus_up") == 0
    assert len(rec.ts) == len(stored_between(prom.client, first_now - 5.0, first_now))

    source.client = prom.client
    clock.now = time.time()
    assert runner.run_cycle()
    assert rec.ts == stored_between(prom.client, first_now - 5.0, clock.now)
    assert value(metrics, "streamwatch_monitor_anomalies_total") >= 1
    assert value(metrics, "streamwatch_monitor_prometheus_up") == 1
    assert value(metrics, "streamwatch_monitor_last_success_timestamp_seconds") == clock.now
    # One line per change of state, not one per failed retry.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failing" in warnings[0].getMessage()
    assert sum("catching up" in r.getMessage() for r in caplog.records) == 1


class StoppingClock(FakeClock):
    """A FakeClock that records each wait and asks the loop to stop after ``n`` of them."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        super().wait(seconds)
        return len(self.waits) >= self.n


def test_run_backs_off_while_prometheus_is_unreachable():
    clock = StoppingClock(8)
    runner, _, metrics = make_runner(
        f"http://127.0.0.1:{free_port()}", constant_detector(), clock, backoff_max=10.0
    )
    runner.run()
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert value(metrics, "streamwatch_monitor_prometheus_errors_total") == 8
    assert runner.out.getvalue() == ""  # type: ignore[attr-defined]


def test_default_backoff_is_capped_at_a_few_seconds():
    # Prometheus restarts in well under a second: a monitor that waits a minute between retries resumes
    # late, and the incident detector then resolves on missing data (issue 11). Defaults, as the CLI runs.
    clock = StoppingClock(6)
    runner, _, _ = make_runner(f"http://127.0.0.1:{free_port()}", constant_detector(), clock)
    runner.run()
    assert clock.waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert MonitorConfig().backoff_max == RunnerSettings().backoff_max == 5.0


GARBAGE = {
    "a JSON list": "[]",
    "malformed values": json.dumps(
        {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, 2]]}]},
        }
    ),
    "a result that is not a list": json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": {"metric": {}}}}
    ),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_run_backs_off_while_prometheus_answers_garbage(kind: str, caplog):
    clock = StoppingClock(5)
    with answering(GARBAGE[kind]) as url:
        runner, _, metrics = make_runner(url, constant_detector(), clock, backoff_max=10.0)
        with caplog.at_level(logging.INFO, logger="monitor.runner"):
            runner.run()
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert value(metrics, "streamwatch_monitor_prometheus_errors_total") == 5
    assert value(metrics, "streamwatch_monitor_prometheus_up") == 0
    failing = [r.getMessage() for r in caplog.records if "Prometheus query failing" in r.getMessage()]
    assert len(failing) == 1, failing  # once per change of state, not per retry


def test_retraining_is_postponed_while_prometheus_answers_garbage(caplog):
    clock = FakeClock()
    with answering(GARBAGE["malformed values"]) as url:
        runner, _, _ = make_runner(url, constant_detector(), clock)
        runner.rebuild = lambda s: pytest.fail("nothing to rebuild from")
        with caplog.at_level(logging.WARNING, logger="monitor.runner"):
            runner.retrain(clock.time())
    assert any("retraining postponed" in r.getMessage() for r in caplog.records)


@pytest.mark.e2e
def test_run_cycles_every_interval_until_stopped(start_prometheus, target):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    clock = StoppingClock(3)
    runner, _, _ = make_runner(prom.url, constant_detector(), clock)
    runner.run()
    assert clock.waits == [2.0, 2.0, 2.0] and runner.cycles == 3


@pytest.mark.e2e
def test_retraining_leaves_out_flagged_samples(start_prometheus, target):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 3)
    target.gauge.set(TROUBLE)
    wait_for_samples_after(prom.client, newest_stored(prom.client), 3)
    target.gauge.set(NORMAL)
    wait_for_samples_after(prom.client, newest_stored(prom.client), 2)

    trained_on: list[Series] = []

    def rebuild(series: Series) -> ProphetBandDetector:
        trained_on.append(series)
        return constant_detector(float(np.mean(series.values)))

    clock = FakeClock(time.time())
    runner, _, _ = make_runner(
        prom.url, constant_detector(), clock, retrain_every=10.0, retrain_window=60.0, min_train_points=3
    )
    runner.rebuild = rebuild
    first = runner.detector
    clock.now += 10.0
    wait_for_samples_after(prom.client, newest_stored(prom.client))
    assert runner.run_cycle()
    assert len(trained_on) == 1
    values = trained_on[0].values
    assert values.size >= 4 and np.all(values == NORMAL)  # the TROUBLE samples were left out
    assert runner.detector is not first


def test_exported_metrics_are_the_contract_names_and_pass_promtool():
    from monitor.scoring import cycle_stats

    metrics = MonitorMetrics("energy_price")
    metrics.record_fit(0.2)
    stats = cycle_stats(np.array([1.0, 0.0]), np.array([1.5, 0.5]), np.array([0.5, 2.0]))
    metrics.record_cycle(stats, 1_700_000_000.0, (0.0, -1.0, 0.5, 2.0))
    metrics.record_error()
    metrics.watch_band(lambda: (-1.0, 0.5, 2.0))
    text = generate_latest(metrics.registry).decode()
    assert_promtool_metrics_ok(text)
    names = {line.split("{")[0] for line in text.splitlines() if not line.startswith("#")}
    # Exactly the names docs/metrics.md lists for the monitor.
    assert names == {
        "streamwatch_monitor_actual",
        "streamwatch_monitor_forecast",
        "streamwatch_monitor_band",
        "streamwatch_monitor_cycle_anomalies",
        "streamwatch_monitor_anomalies_total",
        "streamwatch_monitor_samples_scored_total",
        "streamwatch_monitor_samples_nonfinite_total",
        "streamwatch_monitor_samples_skipped_total",
        "streamwatch_monitor_mae",
        "streamwatch_monitor_mape_ratio",
        "streamwatch_monitor_anomaly_score",
        "streamwatch_monitor_fit_duration_seconds",
        "streamwatch_monitor_last_success_timestamp_seconds",
        "streamwatch_monitor_prometheus_errors_total",
        "streamwatch_monitor_prometheus_up",
        "streamwatch_monitor_save_errors_total",
    }
    assert 'streamwatch_monitor_anomalies_total{metric="energy_price"} 1.0' in text
    assert 'streamwatch_monitor_samples_scored_total{metric="energy_price"} 2.0' in text
    assert 'streamwatch_monitor_forecast{bound="upper",metric="energy_price"} 2.0' in text
    assert 'streamwatch_monitor_mape_ratio{metric="energy_price"} 0.5' in text  # the zero actual left out
    assert "_created" not in text


def test_the_band_gauge_follows_the_clock_between_scrapes_within_one_cycle():
    """``streamwatch_monitor_band`` is the detector's band at scrape time, not at the last cycle."""
    clock = FakeClock(1_700_000_000.0)
    start = clock.time() - 60

    def predict(ts: np.ndarray) -> np.ndarray:
        return np.asarray(ts, dtype=np.float64) - start  # a ramp: the band differs at every step

    detector = ProphetBandDetector(
        Band(start, 2.0, predict(start + 2.0 * np.arange(1000)), 5.0, predict), 60.0
    )
    metrics = MonitorMetrics("watched")
    Runner(
        detector, PrometheusSource(PrometheusClient("http://127.0.0.1:9"), QUERY, 5.0, 3600.0), metrics, clock
    )

    def band() -> dict[str, float | None]:
        labels = {"metric": "watched"}
        get = metrics.registry.get_sample_value
        return {
            b: get("streamwatch_monitor_band", {**labels, "bound": b}) for b in ("lower", "expected", "upper")
        }

    first = band()
    clock.advance(4.0)  # two scrapes of a 2 s step, no cycle in between
    second = band()
    assert first == {"lower": 55.0, "expected": 60.0, "upper": 65.0}
    assert second == {"lower": 59.0, "expected": 64.0, "upper": 69.0}
    assert_promtool_metrics_ok(generate_latest(metrics.registry).decode())


def test_no_band_series_for_a_detector_without_a_band_in_time():
    from monitor.detectors.ema import EMAParams, EMAZScore

    metrics = MonitorMetrics("watched")
    Runner(
        EMAZScore(EMAParams()),
        PrometheusSource(PrometheusClient("http://127.0.0.1:9"), QUERY, 5.0, 3600.0),
        metrics,
        FakeClock(),
    )
    text = generate_latest(metrics.registry).decode()
    assert "streamwatch_monitor_band{" not in text
    assert_promtool_metrics_ok(text)


@pytest.mark.e2e
def test_catch_up_is_capped_at_max_catchup_and_the_skipped_samples_counted_once(
    start_prometheus, target, caplog
):
    caplog.set_level(logging.WARNING, logger="monitor.source")
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    rec = Recording(constant_detector())
    runner, source, metrics = make_runner(prom.url, rec, clock)
    source.on_skipped = metrics.record_skipped
    source.max_window = 3.0
    assert runner.run_cycle()
    last_scored = max(source.last_ts.values())
    wait_for_samples_after(prom.client, last_scored, 6)
    clock.now = time.time()
    scored_before = len(rec.ts)
    assert runner.run_cycle()
    caught = rec.ts[scored_before:]
    assert caught == stored_between(prom.client, clock.now - 3.0, clock.now)  # only the last 3 s
    # Every sample of the gap is either caught up or counted as skipped: none twice, none unsaid.
    gap = stored_between(prom.client, last_scored, clock.now)
    skipped = value(metrics, "streamwatch_monitor_samples_skipped_total")
    assert skipped == len(gap) - len(caught) >= 3
    for _ in range(3):
        wait_for_samples_after(prom.client, max(source.last_ts.values()))
        clock.now = time.time()
        assert runner.run_cycle()
    assert len(caplog.records) == 1
    assert f"max_catchup); {skipped:.0f} older samples skipped" in caplog.records[0].getMessage()
    assert rec.ts == sorted(set(rec.ts))
    assert value(metrics, "streamwatch_monitor_samples_skipped_total") == skipped


@pytest.mark.e2e
def test_non_finite_samples_are_counted_and_infinities_are_anomalies(start_prometheus, target):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 1)
    began = newest_stored(prom.client)
    for v in (math.nan, math.inf, -math.inf, NORMAL):
        target.gauge.set(v)
        wait_for_samples_after(prom.client, newest_stored(prom.client), 2)
    clock = FakeClock(time.time())
    rec = Recording(constant_detector())
    runner, _, metrics = make_runner(prom.url, rec, clock, first_window=clock.now - began + 1.0)
    assert runner.run_cycle()
    found = prom.client.query(f"{QUERY}[{math.ceil(clock.now - began) + 2}s]", at=clock.now)[0]
    vs = found.values[found.timestamps >= began - 1.0]  # what the first window covered
    n_nan, n_inf = int(np.isnan(vs).sum()), int(np.isinf(vs).sum())
    assert n_nan >= 2 and n_inf >= 4
    assert value(metrics, "streamwatch_monitor_samples_nonfinite_total") == n_nan + n_inf
    assert value(metrics, "streamwatch_monitor_anomalies_total") == n_inf
    assert value(metrics, "streamwatch_monitor_samples_scored_total") == vs.size - n_nan
    assert all(math.isfinite(x) for x in rec.values)  # the detector never learns an infinity
    assert value(metrics, "streamwatch_monitor_actual") == NORMAL
    assert math.isfinite(value(metrics, "streamwatch_monitor_mae"))


@pytest.mark.e2e
def test_a_read_position_that_cannot_be_saved_is_counted_and_the_loop_goes_on(
    start_prometheus, target, caplog
):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    runner, source, metrics = make_runner(prom.url, constant_detector(), clock)

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    runner.save_position = disk_full
    with caplog.at_level(logging.INFO, logger="monitor.runner"):
        for _ in range(3):
            assert runner.run_cycle()
            wait_for_samples_after(prom.client, max(source.last_ts.values()))
            clock.now = time.time()
    assert value(metrics, "streamwatch_monitor_samples_scored_total") >= 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0]  # once per change of state
    assert (
        metrics.registry.get_sample_value(
            "streamwatch_monitor_save_errors_total", {"metric": "watched", "file": "position"}
        )
        == 3
    )


def test_the_read_position_round_trips_and_another_querys_is_ignored(tmp_path, caplog):
    from monitor import position

    path = position.position_path(tmp_path, "watched")
    key = (("__name__", QUERY), ("job", "t"))
    position.save(path, QUERY, {key: 1_700_000_000.5})
    assert position.load(path, QUERY) == {key: 1_700_000_000.5}
    with caplog.at_level(logging.WARNING, logger="monitor.position"):
        assert position.load(path, "other_metric") == {}
        path.write_text('{"format": 1, "query": "watched_metric", "series": [{"labels": {}}]}')
        assert position.load(path, QUERY) == {}
        path.write_text("[" * 100_000 + "]" * 100_000)
        assert position.load(path, QUERY) == {}
    assert len(caplog.records) == 3
    assert position.load(tmp_path / "none.json", QUERY) == {}


@pytest.mark.e2e
def test_a_retrain_that_fails_leaves_a_streaming_detector_as_it_was(start_prometheus, target, caplog):
    """Retraining scores the recent window without learning it: the detector has learnt those samples
    once already, in their cycles, and must not learn them a second time when no new model comes."""
    from monitor.detectors.registry import create

    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 3)
    clock = FakeClock(time.time())
    detector = create("ema", {"alpha": 0.5, "warmup": 1})
    detector.update_many(np.array([NORMAL, NORMAL + 1.0]), np.array([0.0, 1.0]))
    before = {k: v.tolist() for k, v in detector.state.items()}
    runner, _, _ = make_runner(prom.url, detector, clock, retrain_window=60.0, min_train_points=1)

    def rebuild(series: Series):
        raise ValueError("no usable period")

    runner.rebuild = rebuild
    with caplog.at_level(logging.WARNING, logger="monitor.runner"):
        runner.retrain(clock.time())
    assert any("retraining failed" in r.getMessage() for r in caplog.records)
    assert runner.detector is detector
    assert {k: v.tolist() for k, v in detector.state.items()} == before

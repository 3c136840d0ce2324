"""The monitor's engine against a real Prometheus: each point once, catch-up after an outage, backoff,
training from history, retraining without flagged points, snapshots across restarts, and /metrics."""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from harness.net import answering
from harness.services import ScrapeTarget, assert_promtool_metrics_ok
from monitor.config import MonitorConfig, QueryConfig
from monitor.detectors import registry
from monitor.detectors.base import Detector, State
from monitor.detectors.scores import Scores
from monitor.engine import Engine, Seed
from monitor.prophet_profile import PROFILE_POINTS, Profile
from streamwatch.clock import FakeClock
from streamwatch.errors import ConfigError
from streamwatch.net import free_port, start_metrics_server, wait_until
from streamwatch.promapi import Columns, PrometheusClient
from streamwatch.series import Series

QUERY = "watched_metric"
NORMAL = 50.0
TROUBLE = 500.0


@dataclass
class Target:
    gauge: Gauge
    address: str


@pytest.fixture
def target() -> Iterator[Target]:
    """A real /metrics endpoint with one gauge the test sets, for Prometheus to scrape every second."""
    registry_ = CollectorRegistry()
    gauge = Gauge(QUERY, "A value the test controls.", registry=registry_)
    gauge.set(NORMAL)
    port = free_port()
    server, _ = start_metrics_server(registry_, "127.0.0.1", port, "test target")
    yield Target(gauge, f"127.0.0.1:{port}")
    server.shutdown()


class Recording(Detector):
    """A constant band (NORMAL +/- 10) that keeps every point each row was asked to score."""

    def fresh(self, n: int) -> State:
        return {}

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        seen = self.__dict__.setdefault("seen", [])
        seen.extend((float(a), float(b)) for a, b in zip(t[ok], x[ok], strict=True))
        level = np.full(x.shape, NORMAL)
        return self.finish(x, level, level - 10.0, level + 10.0)


def config(tmp_path: Path, detector: str = "ema", params: dict | None = None, **kw) -> MonitorConfig:
    q = QueryConfig(
        name="watched",
        expr=QUERY,
        detector=detector,
        params=params or {},
        step=1.0,
        fit_window=30.0,
        max_series=1,
        export_band=True,
    )
    settings = {"interval": 2.0, "model_dir": tmp_path / "models", "min_train_points": 4, **kw}
    return MonitorConfig(queries=[q], port=free_port(), **settings)


def engine(url: str, clock: FakeClock, cfg: MonitorConfig, recording: bool = True) -> Engine:
    """The engine on one raw query; with ``recording`` its series is seeded with a ``Recording`` model
    (the positional form's way: a model made before the first cycle)."""
    e = Engine(cfg, PrometheusClient(url, timeout_s=2.0), clock, out=io.StringIO())
    if recording:
        w = e.watches[0]
        w.core.detector = Recording(rows=0)
        w.seed = Seed(Recording(rows=1), clock.time() - 5.0)
    return e


def seen(e: Engine) -> list[float]:
    return [t for t, _ in e.watches[0].core.detector.__dict__.get("seen", [])]


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


def value(e: Engine, name: str, **labels: str) -> float:
    v = e.metrics.registry.get_sample_value(name, {"metric": "watched", **labels})
    assert v is not None, name
    return v


def series_value(e: Engine, name: str) -> float:
    families = text_string_to_metric_families(e.metrics.exposition().decode())
    (sample,) = [s for f in families for s in f.samples if s.name == name]
    return sample.value


@pytest.mark.e2e
def test_each_sample_is_scored_exactly_once_across_cycles(start_prometheus, target, tmp_path):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    e = engine(prom.url, clock, config(tmp_path))
    first_now = clock.time()
    assert e.run_cycle()
    for _ in range(4):
        wait_for_samples_after(prom.client, max(seen(e)))
        clock.now = time.time()
        assert e.run_cycle()
        clock.now = time.time()
        assert e.run_cycle()  # straight away again: usually nothing new, never a repeat
    scored = seen(e)
    assert scored == sorted(set(scored)), "a sample was scored twice or out of order"
    assert scored == stored_between(prom.client, first_now - 5.0, clock.now)
    assert value(e, "streamwatch_monitor_samples_scored_total") == len(scored)
    assert series_value(e, "streamwatch_monitor_anomalies_total") == 0
    assert value(e, "streamwatch_monitor_prometheus_up") == 1
    assert e.cycles == 9
    lines = e.out.getvalue().splitlines()  # type: ignore[union-attr]
    assert len(lines) == 10 and len({len(line) for line in lines}) == 1  # a header, then aligned rows


@pytest.mark.e2e
def test_catch_up_after_an_outage_scores_every_missed_sample_once(start_prometheus, target, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="monitor")
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    e = engine(prom.url, clock, config(tmp_path))
    reader = e.watches[0].reader
    first_now = clock.time()
    assert e.run_cycle()
    last_before = max(seen(e))

    # The monitor loses Prometheus (a dead port) while Prometheus keeps scraping; one sample in
    # trouble during the outage must still be found afterwards.
    reader.client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    for _ in range(3):
        clock.now = time.time()
        assert not e.run_cycle()
    target.gauge.set(TROUBLE)
    wait_for_samples_after(prom.client, last_before, 3)
    target.gauge.set(NORMAL)
    wait_for_samples_after(prom.client, newest_stored(prom.client), 2)
    assert value(e, "streamwatch_monitor_prometheus_errors_total") == 3
    assert value(e, "streamwatch_monitor_prometheus_up") == 0
    assert len(seen(e)) == len(stored_between(prom.client, first_now - 5.0, first_now))

    reader.client = prom.client
    clock.now = time.time()
    assert e.run_cycle()
    assert seen(e) == stored_between(prom.client, first_now - 5.0, clock.now)
    assert series_value(e, "streamwatch_monitor_anomalies_total") >= 1
    assert value(e, "streamwatch_monitor_prometheus_up") == 1
    assert value(e, "streamwatch_monitor_last_success_timestamp_seconds") == clock.now
    # One line per change of state, not one per failed retry.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failing" in warnings[0].getMessage()


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


def test_run_backs_off_while_prometheus_is_unreachable(tmp_path):
    clock = StoppingClock(8)
    e = engine(f"http://127.0.0.1:{free_port()}", clock, config(tmp_path, backoff_max=10.0))
    e.run()
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert value(e, "streamwatch_monitor_prometheus_errors_total") == 8
    assert len(e.out.getvalue().splitlines()) == 9  # type: ignore[union-attr]  # a header, then empty cycles


def test_default_backoff_is_capped_at_a_few_seconds(tmp_path):
    # Prometheus restarts in well under a second: a monitor that waits a minute between retries resumes
    # late, and the incident detector then resolves on missing data (issue 11). Defaults, as the CLI runs.
    clock = StoppingClock(6)
    e = engine(f"http://127.0.0.1:{free_port()}", clock, config(tmp_path))
    e.run()
    assert clock.waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert MonitorConfig().backoff_max == 5.0


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
def test_run_backs_off_while_prometheus_answers_garbage(kind: str, tmp_path, caplog):
    clock = StoppingClock(5)
    with answering(GARBAGE[kind]) as url:
        e = engine(url, clock, config(tmp_path, backoff_max=10.0))
        with caplog.at_level(logging.INFO, logger="monitor"):
            e.run()
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert value(e, "streamwatch_monitor_prometheus_errors_total") == 5
    assert value(e, "streamwatch_monitor_prometheus_up") == 0
    failing = [r.getMessage() for r in caplog.records if "Prometheus query failing" in r.getMessage()]
    assert len(failing) == 1, failing  # once per change of state, not per retry


def test_an_expression_prometheus_refuses_or_that_returns_a_string_is_a_config_error(tmp_path):
    refused = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"})
    with answering(refused, status=400) as url, pytest.raises(ConfigError, match="parse error at char 3"):
        engine(url, FakeClock(), config(tmp_path)).probe()
    string = json.dumps({"status": "success", "data": {"resultType": "string", "result": [1, "x"]}})
    with answering(string) as url, pytest.raises(ConfigError, match="returns a string, not series"):
        engine(url, FakeClock(), config(tmp_path)).probe()
    engine(f"http://127.0.0.1:{free_port()}", FakeClock(), config(tmp_path)).probe()  # down: the loop's


@pytest.mark.e2e
def test_run_cycles_every_interval_until_stopped(start_prometheus, target, tmp_path):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    clock = StoppingClock(3)
    e = engine(prom.url, clock, config(tmp_path))
    e.run()
    assert clock.waits == [2.0, 2.0, 2.0] and e.cycles == 3


@pytest.mark.e2e
def test_a_new_series_learns_its_history_and_scores_from_its_first_live_point(
    start_prometheus, target, tmp_path
):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 6)
    clock = FakeClock(time.time())
    e = engine(prom.url, clock, config(tmp_path, params={"warmup": 3}), recording=False)
    assert e.run_cycle()
    core = e.watches[0].core
    assert core.detector.state["n"][0] >= 5 and core.warming() == 0  # warmed on history, not on live points
    wait_for_samples_after(prom.client, newest_stored(prom.client), 2)
    clock.now = time.time()
    target.gauge.set(TROUBLE)
    wait_for_samples_after(prom.client, newest_stored(prom.client), 1)
    clock.now = time.time()
    assert e.run_cycle()
    assert series_value(e, "streamwatch_monitor_anomalies_total") >= 1
    assert (
        value(e, "streamwatch_monitor_fits_total") == 1
        and value(e, "streamwatch_monitor_series_warming") == 0
    )


@pytest.mark.e2e
def test_retraining_leaves_out_flagged_samples(start_prometheus, target, tmp_path):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 3)
    target.gauge.set(TROUBLE)
    wait_for_samples_after(prom.client, newest_stored(prom.client), 3)
    target.gauge.set(NORMAL)
    wait_for_samples_after(prom.client, newest_stored(prom.client), 2)
    clock = FakeClock(time.time())
    cfg = config(tmp_path, params={"alpha": 0.5, "warmup": 1}, retrain_every=10.0, retrain_window=60.0)
    e = engine(prom.url, clock, cfg, recording=False)
    # A model that knows only NORMAL: a zero-width band that flags every TROUBLE sample.
    seeded = registry.create("ema", cfg.queries[0].params, rows=1)
    seeded.update_many(np.full(5, NORMAL), np.arange(5.0))
    e.watches[0].seed = Seed(seeded, clock.time())
    assert e.run_cycle()
    clock.now += 10.0
    assert e.run_cycle()  # retrains on the last 60 s: NORMAL and TROUBLE stored, TROUBLE left out
    state = e.watches[0].core.detector.state
    assert state["mean"][0] == NORMAL and state["var"][0] == 0.0 and state["n"][0] >= 4


def test_retraining_is_postponed_while_prometheus_answers_garbage(tmp_path, caplog):
    clock = FakeClock()
    with answering(GARBAGE["malformed values"]) as url:
        e = engine(url, clock, config(tmp_path))
        core = e.watches[0].core
        core.table.add((("a", "b"),), {"a": "b"}, 'a="b"')  # as if a series were watched
        core.table.col["ready"][0] = True
        with caplog.at_level(logging.WARNING, logger="monitor"):
            e._retrain(clock.time())
    assert any("retraining postponed" in r.getMessage() for r in caplog.records)


@pytest.mark.e2e
def test_exported_metrics_are_the_contract_names_and_pass_promtool(start_prometheus, target, tmp_path):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    e = engine(prom.url, clock, config(tmp_path))
    assert e.run_cycle()
    text = e.metrics.exposition().decode()
    assert_promtool_metrics_ok(text)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    names -= {n for n in names if n.startswith(("python_", "process_"))}
    # Exactly the names docs/metrics.md lists for the monitor (tests/test_metrics_reference.py checks the
    # table both ways); streamwatch_monitor_band needs a band in time (below).
    assert names == {
        "streamwatch_monitor_actual",
        "streamwatch_monitor_forecast",
        "streamwatch_monitor_cycle_anomalies",
        "streamwatch_monitor_anomalies_total",
        "streamwatch_monitor_samples_scored_total",
        "streamwatch_monitor_samples_nonfinite_total",
        "streamwatch_monitor_samples_skipped_total",
        "streamwatch_monitor_mae",
        "streamwatch_monitor_mape_ratio",
        "streamwatch_monitor_sample_interval_seconds",
        "streamwatch_monitor_anomaly_score",
        "streamwatch_monitor_last_success_timestamp_seconds",
        "streamwatch_monitor_prometheus_errors_total",
        "streamwatch_monitor_prometheus_up",
        "streamwatch_monitor_save_errors_total",
        "streamwatch_monitor_series",
        "streamwatch_monitor_series_warming",
        "streamwatch_monitor_series_refused_total",
        "streamwatch_monitor_series_dropped_total",
        "streamwatch_monitor_series_restored_total",
        "streamwatch_monitor_fits_total",
        "streamwatch_monitor_fits_pending",
        "streamwatch_monitor_cycle_duration_seconds_bucket",
        "streamwatch_monitor_cycle_duration_seconds_count",
        "streamwatch_monitor_cycle_duration_seconds_sum",
    }
    assert "_created" not in text


def test_the_band_follows_the_clock_between_scrapes_within_one_cycle(tmp_path):
    """``streamwatch_monitor_band`` is a fitted band at scrape time, not at the last cycle."""
    clock = FakeClock(1_700_000_000.0)
    e = engine("http://127.0.0.1:9", clock, config(tmp_path, detector="prophet"), recording=False)
    ramp = np.arange(PROFILE_POINTS, dtype=float) * (600.0 / PROFILE_POINTS)  # the profile rises 1 per s
    profile = Profile(600.0, clock.time() - 60.0, ramp, 5.0, 0.5)
    core = e.watches[0].core
    cols = {"trained_until": [clock.now], "last_seen": [clock.now], "samples": [0], "anomalies": [0]}
    core.restore(
        [{"__name__": QUERY}],
        registry.from_profile("prophet", {}, profile),
        {k: np.array(v) for k, v in cols.items()},
        clock.now,
    )
    core.table.col["seen"][:] = True

    def band() -> dict[str, float]:
        text = e.metrics.exposition().decode()
        samples = [
            s
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "streamwatch_monitor_band"
        ]
        return {s.labels["bound"]: round(s.value, 6) for s in samples}

    first = band()
    clock.advance(4.0)  # two scrapes of a 2 s step, no cycle in between
    assert first == {"lower": 55.0, "expected": 60.0, "upper": 65.0}
    assert band() == {"lower": 59.0, "expected": 64.0, "upper": 69.0}
    assert_promtool_metrics_ok(e.metrics.exposition().decode())


def test_no_band_series_for_a_detector_without_a_band_in_time(tmp_path):
    e = engine("http://127.0.0.1:9", FakeClock(), config(tmp_path), recording=False)
    text = e.metrics.exposition().decode()
    assert "streamwatch_monitor_band{" not in text
    assert_promtool_metrics_ok(text)


@pytest.mark.e2e
def test_catch_up_is_capped_at_max_catchup_and_the_skipped_samples_counted_once(
    start_prometheus, target, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="monitor")
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    e = engine(prom.url, clock, config(tmp_path, max_catchup=3.0))
    assert e.run_cycle()
    last_scored = max(seen(e))
    wait_for_samples_after(prom.client, last_scored, 6)
    clock.now = time.time()
    scored_before = len(seen(e))
    assert e.run_cycle()
    caught = seen(e)[scored_before:]
    assert caught == stored_between(prom.client, clock.now - 3.0, clock.now)  # only the last 3 s
    # Every sample of the gap is either caught up or counted as skipped: none twice, none unsaid.
    gap = stored_between(prom.client, last_scored, clock.now)
    skipped = value(e, "streamwatch_monitor_samples_skipped_total")
    assert skipped == len(gap) - len(caught) >= 3
    for _ in range(3):
        wait_for_samples_after(prom.client, max(seen(e)))
        clock.now = time.time()
        assert e.run_cycle()
    catching = [r.getMessage() for r in caplog.records if "catching up" in r.getMessage()]
    assert len(catching) == 1 and f"max_catchup); {skipped:.0f} older samples skipped" in catching[0]
    assert seen(e) == sorted(set(seen(e)))
    assert value(e, "streamwatch_monitor_samples_skipped_total") == skipped


@pytest.mark.e2e
def test_non_finite_samples_are_counted_and_infinities_are_anomalies(start_prometheus, target, tmp_path):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 1)
    began = newest_stored(prom.client)
    for v in (math.nan, math.inf, -math.inf, NORMAL):
        target.gauge.set(v)
        wait_for_samples_after(prom.client, newest_stored(prom.client), 2)
    clock = FakeClock(time.time())
    e = engine(prom.url, clock, config(tmp_path, interval=clock.now - began + 1.0))
    e.watches[0].seed.trained_until = -math.inf  # type: ignore[union-attr]  # score the whole first read
    assert e.run_cycle()
    found = prom.client.query(f"{QUERY}[{math.ceil(clock.now - began) + 2}s]", at=clock.now)[0]
    vs = found.values[found.timestamps > clock.now - e.cfg.interval]  # what the first read covered
    n_nan, n_inf = int(np.isnan(vs).sum()), int(np.isinf(vs).sum())
    assert n_nan >= 2 and n_inf >= 4
    assert value(e, "streamwatch_monitor_samples_nonfinite_total") == n_nan + n_inf
    assert series_value(e, "streamwatch_monitor_anomalies_total") == n_inf
    assert value(e, "streamwatch_monitor_samples_scored_total") == vs.size - n_nan
    assert all(math.isfinite(x) for _, x in e.watches[0].core.detector.seen)  # never learns an infinity
    assert series_value(e, "streamwatch_monitor_actual") == NORMAL
    assert math.isfinite(value(e, "streamwatch_monitor_mae"))


@pytest.mark.e2e
def test_a_snapshot_that_cannot_be_written_is_counted_and_the_loop_goes_on(
    start_prometheus, target, tmp_path, caplog
):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 2)
    clock = FakeClock(time.time())
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    e = engine(prom.url, clock, config(tmp_path, model_dir=blocked, snapshot_every=1.0), recording=False)
    with caplog.at_level(logging.INFO, logger="monitor"):
        for _ in range(3):
            assert e.run_cycle()
            wait_for_samples_after(prom.client, newest_stored(prom.client))
            clock.now = max(time.time(), clock.now + 1.0)  # a snapshot is due every cycle
    assert value(e, "streamwatch_monitor_samples_scored_total") >= 2
    assert value(e, "streamwatch_monitor_save_errors_total", file="snapshot") == 3
    assert sum("snapshot not written" in r.getMessage() for r in caplog.records) == 3


@pytest.mark.e2e
def test_a_restart_resumes_from_the_snapshot_scoring_nothing_twice_and_nothing_lost(
    start_prometheus, target, tmp_path
):
    prom = start_prometheus([ScrapeTarget("t", target.address)])
    wait_for_samples_after(prom.client, 0, 4)
    clock = FakeClock(time.time())
    cfg = config(tmp_path, params={"warmup": 2})
    first = engine(prom.url, clock, cfg, recording=False)
    for _ in range(2):
        assert first.run_cycle()
        wait_for_samples_after(prom.client, newest_stored(prom.client), 2)
        clock.now = time.time()
    first.snapshot()
    core = first.watches[0].core
    until, scored = float(core.table.col["trained_until"][0]), float(core.table.col["samples"][0])
    wait_for_samples_after(prom.client, until, 4)  # the monitor is down meanwhile
    clock.now = time.time()
    second = engine(prom.url, clock, cfg, recording=False)
    second.restore()
    assert value(second, "streamwatch_monitor_series_restored_total") == 1
    assert second.run_cycle()
    twin = second.watches[0].core
    assert twin.waiting().size == 0 and value(second, "streamwatch_monitor_fits_total") == 0
    missed = stored_between(prom.client, until, clock.now)
    assert twin.table.col["samples"][0] == scored + len(missed)  # the downtime's points, each once
    assert twin.table.col["trained_until"][0] == missed[-1]
    assert twin.detector.state["n"][0] == core.detector.state["n"][0] + len(missed)


@pytest.fixture
def two_series() -> Iterator[str]:
    """A /metrics endpoint with one gauge and two label sets: i="a" at NORMAL, i="b" at TROUBLE."""
    registry_ = CollectorRegistry()
    gauge = Gauge(QUERY, "Two series the test controls.", ["i"], registry=registry_)
    gauge.labels("a").set(NORMAL)
    gauge.labels("b").set(TROUBLE)
    port = free_port()
    server, _ = start_metrics_server(registry_, "127.0.0.1", port, "test target")
    yield f"127.0.0.1:{port}"
    server.shutdown()


@pytest.mark.e2e
def test_the_positional_form_on_two_series_feeds_one_to_its_detector(
    start_prometheus, two_series, tmp_path, caplog
):
    """One series is watched (the training file's, else the first), never a merge of both into one
    stream for one detector (issue 13's interleaving bug)."""
    caplog.set_level(logging.WARNING, logger="monitor")
    prom = start_prometheus([ScrapeTarget("t", two_series)])

    def stored() -> int:
        found = prom.client.query(f"{QUERY}[30s]")
        return min((len(s) for s in found), default=0) if len(found) == 2 else 0

    assert wait_until(lambda: stored() >= 3, 30, 0.1)
    clock = FakeClock(time.time())
    cfg = config(tmp_path, interval=30.0)
    e = Engine(
        cfg, PrometheusClient(prom.url), clock, out=io.StringIO(), prefer={"__name__": QUERY, "i": "a"}
    )
    w = e.watches[0]
    w.core.detector = Recording(rows=0)
    w.seed = Seed(Recording(rows=1), -math.inf)
    for _ in range(3):
        clock.now = time.time()
        assert e.run_cycle()
    ts = seen(e)
    assert len(ts) >= 3
    # One stream: strictly increasing timestamps (two merged series repeat every scrape's timestamp),
    # and only the NORMAL series' values (the merged stream holds TROUBLE too and flags it).
    assert np.all(np.diff(ts) > 0), ts
    assert series_value(e, "streamwatch_monitor_anomalies_total") == 0
    warned = [r.getMessage() for r in caplog.records if "series" in r.getMessage()]
    assert len(warned) == 1 and 'i="a"' in warned[0] and "--config" in warned[0], warned


class CapturingPool:
    """Stands in for the FitPool: keeps what is submitted (the fits themselves are tested elsewhere)."""

    pending = 0

    def __init__(self) -> None:
        self.submitted: list[tuple] = []

    def submit(self, tag, ts, vs, params) -> None:
        self.submitted.append((tag, ts, vs, params))

    def collect(self) -> list:
        return []

    def close(self) -> None:
        pass


def test_a_prophet_refit_keeps_the_period_its_first_fit_found_and_leaves_out_flagged_points(tmp_path):
    clock = FakeClock(1_700_000_000.0)
    cfg = config(tmp_path, detector="prophet", params={"k": 5.0}, retrain_window=600.0)
    pool = CapturingPool()
    e = Engine(cfg, None, clock, pool=pool)  # type: ignore[arg-type]
    core = e.watches[0].core
    level = Profile(80.0, clock.now, np.full(PROFILE_POINTS, NORMAL), 10.0, 0.5)
    cols = {"trained_until": [clock.now], "last_seen": [clock.now], "samples": [0], "anomalies": [0]}
    core.restore(
        [{"__name__": QUERY}],
        registry.from_profile("prophet", {}, level),
        {k: np.array(v) for k, v in cols.items()},
        clock.now,
    )
    ts = clock.now - 60.0 + np.arange(1.0, 61.0)
    xs = np.where(np.arange(60) % 10 == 0, TROUBLE, NORMAL)

    class History:
        def query_range_columns(self, expr, start, end, step):
            keep = (ts >= start) & (ts <= end)
            return Columns.of([Series({"__name__": QUERY}, ts[keep], xs[keep])])

    e.watches[0].reader.client = History()  # type: ignore[assignment]
    e._retrain(clock.now)
    ((_, _, vs, params),) = pool.submitted
    assert params.period == 80.0 and params.k == 5.0
    assert vs.size == 54 and np.all(vs == NORMAL)  # the six TROUBLE points the current band flags: left out

"""The backtest's core: recorded answers are what Prometheus answers about the past, the replay counts what
the engine counts, incidents, the report page (self-contained, escaped) and the command's bad input."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from harness.cli import assert_one_line_error, run_python
from monitor import backtest_cli
from monitor.backtest import Replay, cycle_times, replay, summarise
from monitor.backtest_cli import parse_time
from monitor.backtest_report import CHART_POINTS, chart, report_html, thin
from monitor.config import MonitorConfig, QueryConfig
from monitor.replay import Recording, ReplayClient, ReplayError, Track, lookback, select
from streamwatch.errors import UserError
from streamwatch.promapi import Columns
from streamwatch.series import Series, series_key

T0 = 1_700_000_000.0
STEP = 15.0


def wave(ts: np.ndarray, i: int) -> np.ndarray:
    """A smooth wave: an EMA z-score (threshold 4) never flags it; only the spikes below."""
    return 100.0 + 10.0 * np.sin(ts / 300.0 + i)


def fleet(n: int, hours: float, spike: tuple[int, float, float] | None = None) -> tuple[Columns, Columns]:
    """``n`` series sampled every 2 s for ``hours`` from T0, as raw samples and on the STEP grid (the
    sample at or before each grid time, as Prometheus' lookback picks it); ``spike`` = (series, from,
    to) adds 80 there."""
    ts = T0 + np.arange(0.0, hours * 3600.0, 2.0)
    raw, grid = [], []
    g = np.arange(np.ceil(T0 / STEP) * STEP, ts[-1] + 1e-9, STEP)
    for i in range(n):
        v = wave(ts, i)
        if spike is not None and spike[0] == i:
            v[(ts >= spike[1]) & (ts < spike[2])] += 80.0
        labels = {"__name__": "m", "series": str(i)}
        raw.append(Series(labels, ts, v))
        grid.append(Series(labels, g, v[np.searchsorted(ts, g, side="right") - 1]))
    return Columns.of(raw), Columns.of(grid)


def recording(raw: Columns, grid: Columns) -> Recording:
    return Recording("m", STEP, Track(grid, T0 - 7200, T0 + 86400), Track(raw, T0 - 7200, T0 + 86400))


def config(**kw) -> MonitorConfig:
    q = QueryConfig("m", "m", detector="ema", step=STEP, params=kw.pop("params", {}))
    return MonitorConfig(queries=[q], interval=30.0, **kw)


# --- recorded answers -------------------------------------------------------------------------------


def test_a_track_answers_closed_windows_per_series_and_leaves_out_empty_series():
    a = Series({"s": "a"}, [10.0, 20.0, 30.0], [1.0, 2.0, 3.0])
    b = Series({"s": "b"}, [25.0, 40.0], [4.0, 5.0])
    track = Track(Columns.of([a, b]), 0.0, 100.0)
    got = track.between(20.0, 30.0)
    assert [lab["s"] for lab in got.labels] == ["a", "b"]
    assert got.counts.tolist() == [2, 1] and got.values.tolist() == [2.0, 3.0, 4.0]
    only_b = track.between(31.0, 100.0)
    assert only_b.labels == [{"s": "b"}] and only_b.ts.tolist() == [40.0]
    assert len(track.between(41.0, 100.0)) == 0
    # Milliseconds, as Prometheus compares them: 20.0004 rounds to 20.000 and keeps the point at 20.
    assert track.between(20.0004, 20.0004).values.tolist() == [2.0]
    with pytest.raises(ReplayError, match="recorded"):
        track.between(-1.0, 10.0)
    with pytest.raises(ReplayError):
        track.between(50.0, 100.5)


def test_select_keeps_the_chosen_points_and_drops_series_left_empty():
    cols = Columns.of([Series({"s": "a"}, [1.0, 2.0], [1.0, 2.0]), Series({"s": "b"}, [1.0], [9.0])])
    kept = select(cols, cols.values < 5.0)
    assert kept.labels == [{"s": "a"}] and kept.counts.tolist() == [2]


def test_the_replay_client_answers_the_readers_two_calls_and_nothing_else():
    raw, grid = fleet(2, 0.1)
    client = ReplayClient([recording(raw, grid)])
    at = T0 + 100.0
    got = client.query_columns("m[31000ms]", at=at)  # what QueryReader.read sends for a raw selector
    assert len(got) == 2 and got.ts.min() >= at - 31.0 and got.ts.max() <= at
    assert got.counts.tolist() == [16, 16]  # a sample every 2 s in [69, 100], both ends included
    g0 = np.ceil(T0 / STEP) * STEP
    rng = client.query_range_columns("m", g0, g0 + 3 * STEP, STEP)
    assert rng.counts.tolist() == [4, 4] and rng.ts[:4].tolist() == [g0 + k * STEP for k in range(4)]
    with pytest.raises(ReplayError, match="not recorded"):
        client.query_columns("other[1000ms]", at=at)
    with pytest.raises(ReplayError, match="not recorded"):
        client.query_range_columns("m", T0, T0 + 60.0, 30.0)  # another step was never read


def test_lookback_covers_training_retraining_and_catch_up():
    cfg = config(max_catchup=600.0)
    q = cfg.queries[0]
    assert lookback(cfg, q) == max(q.fit_window, 600.0) + STEP
    longer = config(retrain_every=60.0, retrain_window=7200.0)
    assert lookback(longer, longer.queries[0]) == 7200.0 + STEP


# --- the replay -------------------------------------------------------------------------------------


def test_cycles_run_every_interval_and_end_at_until():
    assert cycle_times(0.0, 60.0, 30.0).tolist() == [0.0, 30.0, 60.0]
    assert cycle_times(0.0, 10.0, 30.0).tolist() == [0.0, 10.0]


def test_the_replay_counts_what_the_engine_counts_and_ranks_the_spiked_series_first():
    spike = (1, T0 + 5000.0, T0 + 5040.0)
    raw, grid = fleet(3, 2.0, spike)
    cfg = config(params={"alpha": 0.3, "threshold": 4.0})
    since, until = T0 + 3600.0, T0 + 7190.0
    r = Replay(cfg, [recording(raw, grid)], since)
    cycles = r.run(until)
    assert cycles == len(cycle_times(since, until, 30.0))
    [o] = r.outcomes()
    table = r.engine.watches[0].core.table
    for i, labels in enumerate(o.labels):  # the engine's own per-series counts, as exported live
        row = table.index[series_key(labels)]
        assert o.flagged[i] == table.col["anomalies"][row]
        assert o.scored[i] == table.col["samples"][row]
    # Every raw sample after the first cycle's training (on the 15 s grid) is scored exactly once.
    trained_until = np.floor(since / STEP) * STEP
    expected = int(
        np.count_nonzero((raw.ts[: raw.counts[0]] > trained_until) & (raw.ts[: raw.counts[0]] <= until))
    )
    assert o.scored.tolist() == [expected] * 3
    assert o.labels[o.ranking()[0]]["series"] == "1"
    first, _ = o.first_last_flagged(o.ranking()[0])
    assert first is not None and spike[1] <= first < spike[2] + 30.0
    doc = summarise([o], top=2)
    assert doc["top"][0]["labels"]["series"] == "1" and len(doc["queries"][0]["top"]) == 2
    assert doc["queries"][0]["points_flagged"] == int(o.flagged.sum())


def test_incidents_are_runs_of_flagged_points_split_by_quiet_gaps():
    raw, grid = fleet(1, 2.0, (0, T0 + 5000.0, T0 + 5010.0))
    raw2, _ = fleet(1, 2.0, (0, T0 + 6000.0, T0 + 6010.0))
    both = Columns(raw.labels, raw.counts, raw.ts, np.maximum(raw.values, raw2.values))
    cfg = config(params={"alpha": 0.3, "threshold": 4.0})
    [o] = replay(cfg, [recording(both, grid)], T0 + 3600.0, T0 + 7190.0, gap=300.0)
    assert o.incidents.tolist() == [2]
    [merged] = replay(cfg, [recording(both, grid)], T0 + 3600.0, T0 + 7190.0, gap=2000.0)
    assert merged.incidents.tolist() == [1] and merged.flagged.tolist() == o.flagged.tolist()


# --- the report -------------------------------------------------------------------------------------


def test_thinning_keeps_every_flagged_point_and_at_most_one_other_per_bucket():
    raw, grid = fleet(1, 6.0, (0, T0 + 9000.0, T0 + 9100.0))
    cfg = config(params={"alpha": 0.3, "threshold": 4.0})
    [o] = replay(cfg, [recording(raw, grid)], T0 + 3600.0, T0 + 6 * 3600.0 - 10.0)
    p = o.points.of_series(0)
    assert p.t.size > CHART_POINTS
    keep = thin(p)
    assert keep.size <= CHART_POINTS + int(p.flagged.sum())
    assert set(np.flatnonzero(p.flagged)) <= set(keep.tolist())
    assert np.all(np.diff(p.t[keep]) > 0)


def test_the_page_is_self_contained_and_escapes_what_the_series_bring(tmp_path: Path):
    raw, grid = fleet(2, 1.5, (1, T0 + 4000.0, T0 + 4020.0))
    hostile = "</script><img src=x onerror=alert(1)>"
    raw.labels[1]["series"] = hostile
    grid.labels[1]["series"] = hostile
    cfg = config(params={"alpha": 0.3, "threshold": 4.0})
    [o] = replay(cfg, [recording(raw, grid)], T0 + 3600.0, T0 + 5000.0)
    meta = {
        "config": "watch.toml",
        "prometheus_url": "http://127.0.0.1:9090",
        "since": T0 + 3600.0,
        "until": T0 + 5000.0,
        "interval": 30.0,
        "cycles": 48,
        "retrain_every": 0.0,
        "incident_gap_s": 150.0,
    }
    doc = {**meta, **summarise([o], 2)}
    page = report_html(doc, [chart(o, i) for i in o.ranking()])
    assert hostile not in page  # escaped in the tables, and "</" never closes the data's script early
    assert "uPlot" in page and "Leon Sorokin" in page  # the library and its licence, inlined
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from anywhere
    data = re.search(r'<script type="application/json" id="backtest-data">(.*?)</script>', page, re.S)
    assert data is not None
    charts = json.loads(data.group(1))["charts"]
    assert charts[0]["labels"]["series"] == hostile and len(charts) == 2
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


# --- the command ------------------------------------------------------------------------------------


def test_times_are_durations_back_from_now_or_rfc3339():
    now = 1_000_000.0
    assert parse_time("now", now, "--until") == now
    assert parse_time("90m", now, "--since") == now - 5400.0
    assert parse_time("2024-05-01T12:00:00Z", now, "--since") == 1714564800.0
    assert parse_time("2024-05-01T14:00:00+02:00", now, "--since") == 1714564800.0
    assert parse_time("2024-05-01T12:00:00", now, "--since") == 1714564800.0  # no zone: UTC
    for bad in ("yesterday", "-5m", "0s", "24x"):
        with pytest.raises(UserError, match="--since"):
            parse_time(bad, now, "--since")


def write_config(tmp_path: Path, url: str, expr: str = "up") -> Path:
    path = tmp_path / "watch.toml"
    path.write_text(
        f'[monitor]\nprometheus_url = "{url}"\ninterval = 5\n\n'
        f'[[monitor.queries]]\nname = "q"\nexpr = "{expr}"\nstep = 5\nfit_window = 60\n'
    )
    return path


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--since", "yesterday", "--config", "CFG"], ["--since", "yesterday"]),
        (["--since", "1h", "--until", "2h", "--config", "CFG"], ["must be before --until"]),
        (["--config", "CFG", "--until", "2099-01-01T00:00:00Z"], ["in the future"]),
        (["--config", "CFG", "--top", "0"], ["top must be 1 to 1,000"]),
        (["--config", "CFG", "--incident-gap", "0.5"], ["incident_gap must be 1 to 10,000 cycles"]),
        (["--config", "missing.toml"], ["missing.toml"]),
        (["--config", "CFG", "--since"], ["--since"]),
    ],
)
def test_bad_input_is_a_user_error_naming_it(tmp_path: Path, args: list[str], needles: list[str]):
    cfg = write_config(tmp_path, "http://127.0.0.1:1")
    argv = [str(cfg) if a == "CFG" else str(tmp_path / a) if a == "missing.toml" else a for a in args]
    with pytest.raises(UserError) as err:
        backtest_cli.main(argv)
    for needle in needles:
        assert needle in str(err.value)


def test_no_config_is_one_line_and_exit_2():
    done = run_python("monitor.py", "backtest", "--since", "1h")
    assert_one_line_error(done, "--config", prog="monitor.py")


def test_prometheus_unreachable_is_one_line_and_exit_2(tmp_path: Path):
    from streamwatch.net import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = run_python("monitor.py", "backtest", "--config", str(write_config(tmp_path, url)), "--since", "1h")
    assert_one_line_error(done, "cannot read Prometheus", url, prog="monitor.py")


@pytest.mark.e2e  # starts the fit pool's worker processes
def test_prophet_series_are_fitted_in_the_pool_and_score_from_the_next_cycle():
    ts = T0 + np.arange(0.0, 2 * 3600.0, 10.0)
    g = np.arange(np.ceil(T0 / STEP) * STEP, ts[-1] + 1e-9, STEP)
    raw, grid = [], []
    for i in range(2):
        v = 100.0 + 20.0 * np.sin(2 * np.pi * ts / 600.0 + i) + np.random.default_rng(i).normal(0, 1, ts.size)
        if i == 1:
            v[(ts >= T0 + 5400.0) & (ts < T0 + 5460.0)] += 200.0
        labels = {"__name__": "m", "series": str(i)}
        raw.append(Series(labels, ts, v))
        grid.append(Series(labels, g, v[np.searchsorted(ts, g, side="right") - 1]))
    q = QueryConfig("m", "m", detector="prophet", step=STEP, fit_window=3600.0, params={"k": 5.0})
    cfg = MonitorConfig(queries=[q], interval=30.0, fit_workers=1)
    since, until = T0 + 3600.0, T0 + 7190.0
    r = Replay(cfg, [recording(Columns.of(raw), Columns.of(grid))], since)
    r.run(until)
    [o] = r.outcomes()
    assert r.engine.pool.pending == 0
    fits = r.engine.metrics.registry.get_sample_value("streamwatch_monitor_fits_total", {"metric": "m"})
    assert len(o.labels) == 2 and fits == 2
    # Fitted during the first cycle's wait, they scored every raw sample after their training history.
    trained_until = np.floor(since / STEP) * STEP
    assert o.scored.tolist() == [int(np.count_nonzero((ts > trained_until) & (ts <= until)))] * 2
    assert o.labels[o.ranking()[0]]["series"] == "1"
    assert o.flagged[o.ranking()[0]] >= 5 and o.flagged[o.ranking()[1]] == 0


def test_retraining_runs_every_retrain_every_as_it_does_live(caplog: pytest.LogCaptureFixture):
    raw, grid = fleet(2, 3.0, (1, T0 + 8000.0, T0 + 8040.0))
    cfg = config(params={"alpha": 0.3, "threshold": 4.0}, retrain_every=1800.0, retrain_window=3600.0)
    since, until = T0 + 3600.0, T0 + 3 * 3600.0 - 10.0
    r = Replay(cfg, [recording(raw, grid)], since)
    with caplog.at_level(logging.INFO, logger="monitor"):
        r.run(until)
    [o] = r.outcomes()
    # Retrained at since + 1800, + 3600 and + 5400, on a window read from the recording (one outside it
    # would have been a ReplayError).
    retrains = [m for m in caplog.messages if m.startswith("query m: retraining 2 series")]
    assert len(retrains) == 3 and r.engine.last_retrain == since + 5400.0
    assert o.labels[o.ranking()[0]]["series"] == "1" and o.flagged.tolist()[o.ranking()[1]] == 0

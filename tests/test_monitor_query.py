"""The monitor's pure core: a query's series are rows of one columnar detector; each point scored once,
stale series dropped, max_series refusals counted once, and the per-series exposition."""

from __future__ import annotations

import logging

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from harness.services import assert_promtool_metrics_ok
from monitor.config import QueryConfig
from monitor.detectors import registry
from monitor.detectors.base import Detector, State
from monitor.detectors.scores import Scores
from monitor.export import MonitorMetrics, render_series
from monitor.query import QueryWatch, exported_labels, layout
from monitor.reader import is_selector
from streamwatch.promapi import Columns
from streamwatch.series import Series, series_key

T0 = 1_700_000_000.0


def read(*series: tuple[dict[str, str], list[float], list[float]]) -> Columns:
    return Columns.of(
        [Series(lab, np.asarray(ts, dtype=float), np.asarray(xs, dtype=float)) for lab, ts, xs in series]
    )


class Recording(Detector):
    """A band of +/- 10 around 0 that also keeps, per row, every point it was asked to score."""

    seen: dict[int, list[tuple[float, float]]]

    def fresh(self, n: int) -> State:
        return {}

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        if not hasattr(self, "seen"):
            self.seen = {}
        for r in np.flatnonzero(ok).tolist():
            self.seen.setdefault(r, []).append((float(t[r]), float(x[r])))
        zero = np.zeros(x.shape)
        return self.finish(x, zero, zero - 10.0, zero + 10.0)


def watch(q: QueryConfig, detector: Detector | None = None, **kw) -> QueryWatch:
    return QueryWatch(q, detector or registry.create("ema", q.params, rows=0), **kw)


def install_all(w: QueryWatch, trained_until: float, detector: Detector | None = None) -> None:
    rows = w.waiting()
    trained = detector or registry.create(w.query.detector, w.query.params, rows=rows.size)
    w.install(rows, trained, np.full(rows.size, trained_until))


def test_layout_puts_each_series_run_in_its_row():
    x, t = layout(np.array([2, 2, 2, 0]), np.array([1.0, 2, 3, 5]), np.array([10.0, 20, 30, 50]), 3)
    assert x.shape == (3, 3)
    assert np.array_equal(x, [[50, np.nan, np.nan], [np.nan] * 3, [10, 20, 30]], equal_nan=True)
    assert np.array_equal(t[2], [1, 2, 3])


def test_each_label_set_gets_its_own_row_and_each_point_is_scored_once():
    w = watch(QueryConfig(name="price", detector="ema", expr="price"), Recording(rows=0))
    a = {"__name__": "price", "series": "0"}
    b = {"__name__": "price", "series": "1"}
    ts = T0 + np.arange(4.0)
    report = w.observe(read((a, ts, [1, 2, 3, 4]), (b, ts, [100, 200, 300, 400])), T0 + 4)
    assert report.admitted == 2 and report.scored == 0  # waiting for their models
    install_all(w, T0 + 1, Recording(rows=2))  # history reached T0 + 1
    # The same points again plus a new one: only what is after the training and not yet scored counts.
    ts2 = T0 + np.arange(5.0)
    for _ in range(2):
        w.observe(read((a, ts2, [1, 2, 3, 4, 5]), (b, ts2, [100, 200, 300, 400, 500])), T0 + 5)
    ra, rb = w.table.index[series_key(a)], w.table.index[series_key(b)]
    assert w.detector.seen[ra] == [(T0 + 2, 3.0), (T0 + 3, 4.0), (T0 + 4, 5.0)]
    assert w.detector.seen[rb] == [(T0 + 2, 300.0), (T0 + 3, 400.0), (T0 + 4, 500.0)]
    assert w.table.col["samples"][ra] == 3 and w.table.col["actual"][rb] == 500.0
    assert w.table.col["anomalies"][rb] == 3 and w.table.col["anomalies"][ra] == 0


def test_rows_are_scored_together_whatever_their_number_of_new_points():
    w = watch(QueryConfig(name="q", detector="ema", expr="x", params={"warmup": 1, "alpha": 0.5}))
    series = [({"i": str(i)}, T0 + np.arange(3.0), [1.0, 1.0, 1.0]) for i in range(3)]
    w.observe(read(*series), T0 + 3)
    install_all(w, T0 + 2)
    # Row 0 brings three points, row 1 one, row 2 none: one update call scores them all.
    r = w.observe(
        read(({"i": "0"}, T0 + np.arange(3.0, 6.0), [1.0, 1.0, 99.0]), ({"i": "1"}, [T0 + 3], [1.0])), T0 + 6
    )
    assert r.scored == 4 and r.anomalies == 1
    assert w.table.col["cycle_anomalies"][:3].tolist() == [1, 0, 0]
    assert w.table.col["trained_until"][:3].tolist() == [T0 + 5, T0 + 3, T0 + 2]


def test_silent_series_are_dropped_after_stale_after_and_readmitted_fresh():
    w = watch(QueryConfig(name="q", detector="ema", expr="x", stale_after=60.0))
    a, b = {"i": "a"}, {"i": "b"}
    w.observe(read((a, [T0], [1.0]), (b, [T0], [1.0])), T0)
    install_all(w, T0)
    for k in range(1, 7):  # only a keeps reporting
        w.observe(read((a, [T0 + 10 * k], [1.0])), T0 + 10 * k)
        assert w.drop_stale(T0 + 10 * k) == 0
    assert w.drop_stale(T0 + 61) == 1
    assert list(w.table.index) == [series_key(a)] and w.dropped_total == 1
    report = w.observe(read((b, [T0 + 70], [1.0])), T0 + 70)
    assert report.admitted == 1 and w.waiting().size == 1  # back, as a new series that trains again


def test_a_freed_row_is_reused_and_forgets_what_its_last_series_learnt():
    w = watch(QueryConfig(name="q", detector="ema", expr="x", stale_after=60.0, params={"warmup": 1}))
    w.observe(read(({"i": "a"}, [T0], [1.0])), T0)
    install_all(w, T0)
    w.observe(read(({"i": "a"}, T0 + np.arange(1.0, 30.0), np.full(29, 5.0))), T0 + 30)
    row = w.table.index[series_key({"i": "a"})]
    assert w.detector.state["n"][row] == 29
    w.drop_stale(T0 + 100)
    w.observe(read(({"i": "b"}, [T0 + 101], [1.0])), T0 + 101)
    assert w.table.index[series_key({"i": "b"})] == row and w.detector.state["n"][row] == 0


def test_beyond_max_series_new_series_are_refused_counted_once_and_logged_once(caplog):
    w = watch(QueryConfig(name="q", detector="ema", expr="x", max_series=2, stale_after=60.0))
    series = [{"i": str(i)} for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="monitor.query"):
        for k in range(3):
            report = w.observe(read(*[(s, [T0 + k], [1.0]) for s in series]), T0 + k)
            assert report.refused == (3 if k == 0 else 0)
    assert len(w.table) == 2 and w.refused_total == 3
    assert len([r for r in caplog.records if "max_series" in r.getMessage()]) == 1
    # The refused ones keep reporting; 0 and 1 go silent and stale: room again, so they are admitted.
    assert w.observe(read(*[(s, [T0 + 50], [1.0]) for s in series[2:]]), T0 + 50).refused == 0
    assert w.drop_stale(T0 + 63) == 2
    report = w.observe(read(*[(s, [T0 + 63], [1.0]) for s in series[2:]]), T0 + 63)
    assert report.admitted == 2 and report.refused == 0 and w.refused_total == 3


def test_the_preferred_series_is_admitted_first_when_only_one_is_watched():
    w = watch(
        QueryConfig(name="q", detector="ema", expr="x", max_series=1), prefer={"__name__": "x", "i": "2"}
    )
    w.observe(read(*[({"__name__": "x", "i": str(i)}, [T0], [1.0]) for i in range(4)]), T0)
    assert list(w.table.index) == [series_key({"__name__": "x", "i": "2"})]


def test_accept_decides_which_series_this_process_watches():
    w = watch(QueryConfig(name="q", detector="ema", expr="x"), accept=lambda labels: labels["i"] != "1")
    w.observe(read(*[({"i": str(i)}, [T0], [1.0]) for i in range(3)]), T0)
    assert sorted(dict(k)["i"] for k in w.table.index) == ["0", "2"] and w.refused_total == 0


def test_exported_labels_drop_the_name_and_rename_clashes():
    got = exported_labels("cpu", {"__name__": "x", "metric": "m", "bound": "b", "cpu": "1"})
    assert got == {"metric": "cpu", "exported_metric": "m", "exported_bound": "b", "cpu": "1"}


def exposition(watches: list[QueryWatch]) -> str:
    metrics = MonitorMetrics([w.query.name for w in watches])
    metrics.series_text = render_series(watches)
    return metrics.exposition().decode()


def test_per_series_families_are_the_score_and_the_anomaly_count_and_pass_promtool():
    w = watch(QueryConfig(name="cpu", detector="ema", expr="rate(x[1m])", params={"warmup": 2}))
    labels = [{"cpu": str(i), "mode": "user", "metric": "clash", "job": 'a"b\\c'} for i in range(3)]
    w.observe(read(*[(lab, T0 + np.arange(30.0), np.ones(30)) for lab in labels]), T0 + 30)
    install_all(w, T0 + 10)
    report = w.observe(read(*[(lab, T0 + np.arange(30.0), np.ones(30) * 2) for lab in labels]), T0 + 30)
    assert report.scored == 3 * 19  # T0 + 11 .. T0 + 29
    text = exposition([w])
    assert_promtool_metrics_ok(text)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("streamwatch_monitor_anomaly_score", "streamwatch_monitor_anomalies"):
        got = sorted(s.labels["cpu"] for s in families[name].samples)
        assert got == ["0", "1", "2"], name
        for s in families[name].samples:
            assert s.labels["metric"] == "cpu" and s.labels["exported_metric"] == "clash"
            assert s.labels["job"] == 'a"b\\c'
    # Two series per input series by default: the band is opt-in (export_band).
    per_series = [f for f in families.values() if any("cpu" in s.labels for s in f.samples)]
    assert sorted(f.name for f in per_series) == [
        "streamwatch_monitor_anomalies",
        "streamwatch_monitor_anomaly_score",
    ]
    assert families["streamwatch_monitor_samples_scored"].samples[0].labels == {"metric": "cpu"}  # per query
    w.drop_stale(T0 + 10_000)
    assert 'cpu="1"' not in exposition([w])


def test_export_band_adds_the_value_and_the_band_per_series():
    q = QueryConfig(name="cpu", detector="ema", expr="x", params={"warmup": 2}, export_band=True)
    w = watch(q)
    w.observe(read(({"cpu": "0"}, T0 + np.arange(10.0), np.arange(10.0))), T0 + 10)
    install_all(w, T0 + 4)
    w.observe(read(({"cpu": "0"}, T0 + np.arange(10.0), np.arange(10.0))), T0 + 10)
    text = exposition([w])
    assert_promtool_metrics_ok(text)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["streamwatch_monitor_actual"].samples[0].value == 9.0
    bounds = {s.labels["bound"] for s in families["streamwatch_monitor_forecast"].samples}
    assert bounds == {"lower", "expected", "upper"}


def test_nan_is_left_out_and_inf_is_an_anomaly_never_learnt():
    w = watch(QueryConfig(name="q", detector="ema", expr="x"), Recording(rows=0))
    w.observe(read(({"i": "a"}, [T0], [1.0])), T0)
    install_all(w, T0, Recording(rows=1))
    report = w.observe(read(({"i": "a"}, T0 + np.arange(1.0, 5.0), [2.0, np.nan, np.inf, 3.0])), T0 + 5)
    assert w.detector.seen[0] == [(T0 + 1, 2.0), (T0 + 4, 3.0)]
    assert (report.scored, report.nonfinite, report.anomalies) == (3, 2, 1)
    c = w.table.col
    assert c["score"][0] == np.inf and c["actual"][0] == 3.0 and c["trained_until"][0] == T0 + 4


def test_mae_and_mape_leave_out_zero_actuals_and_points_without_an_expected_value():
    w = watch(QueryConfig(name="q", detector="ema", expr="x"), Recording(rows=0))
    w.observe(read(({"i": "a"}, [T0], [1.0])), T0)
    install_all(w, T0, Recording(rows=1))
    r = w.observe(read(({"i": "a"}, T0 + np.arange(1.0, 4.0), [2.0, 0.0, -4.0])), T0 + 4)
    assert r.mae == 2.0 and r.mape == 1.0  # errors 2, 0, 4 around 0; ratios 1 and 1 (the 0 left out)
    empty = w.observe(read(), T0 + 5)
    assert np.isnan(empty.mae) and np.isnan(empty.mape) and empty.max_score == 0.0


def test_series_differing_only_in_their_name_are_watched_once(caplog):
    w = watch(QueryConfig(name="q", detector="ema", expr='{__name__=~"a|b"}'))
    with caplog.at_level(logging.WARNING, logger="monitor.query"):
        w.observe(read(*[({"__name__": n, "job": "j"}, [T0], [1.0]) for n in ("a", "b")]), T0)
    assert len(w.table) == 1 and len(caplog.records) == 1  # one child, never two identical ones
    w.drop_stale(T0 + 10_000)
    w.observe(read(({"__name__": "b", "job": "j"}, [T0 + 10_001], [1.0])), T0 + 10_001)
    assert len(w.table) == 1  # the label set is free again once its holder went stale


def test_restored_series_are_exported_only_once_prometheus_returns_them():
    w = watch(QueryConfig(name="q", detector="ema", expr="x"))
    saved = registry.create("ema", {}, rows=2)
    cols = {
        "trained_until": np.array([T0, T0]),
        "last_seen": np.array([T0, T0]),
        "samples": np.array([5, 5]),
        "anomalies": np.array([1, 0]),
    }
    assert w.restore([{"i": "a"}, {"i": "b"}], saved, cols, T0 + 10) == 2
    assert w.exported().size == 0  # e.g. an old instance after a move: not exported as if live
    w.observe(read(({"i": "a"}, [T0 + 15], [1.0])), T0 + 20)
    assert [w.table.labels[r] for r in w.exported()] == [{"i": "a"}]
    assert w.table.col["samples"][w.exported()].tolist() == [6]


def test_warming_counts_series_whose_detector_has_not_seen_enough():
    w = watch(QueryConfig(name="q", detector="ema", expr="x", params={"warmup": 10}))
    w.observe(read(({"i": "a"}, [T0], [1.0]), ({"i": "b"}, [T0], [1.0])), T0)
    rows = w.waiting()
    trained = registry.create("ema", {"warmup": 10}, rows=2)
    trained.update(
        np.array([np.ones(12), np.r_[np.ones(3), np.full(9, np.nan)]]),
        np.tile(T0 - 12 + np.arange(12.0), (2, 1)),
    )
    w.install(rows, trained, np.array([T0, T0]))
    assert w.warming() == 1


def test_plain_selectors_are_read_raw_and_everything_else_with_query_range():
    for expr in ("up", "energy_price_metric", 'x{a="1", b=~"c.*"}', '{__name__="x"}', " node:load1 "):
        assert is_selector(expr), expr
    for expr in (
        "rate(x[1m])",
        "sum by (a) (x)",
        "x[5m]",
        "x + 1",
        "x offset 5m",
        "histogram_quantile(0.9, y)",
    ):
        assert not is_selector(expr), expr

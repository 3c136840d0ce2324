"""The per-series core: one detector per label set, each point scored once, stale series dropped,
max_series refusals counted once, and the exposition's labels."""

from __future__ import annotations

import logging

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from harness.services import assert_promtool_metrics_ok
from monitor.config import QueryConfig
from monitor.detectors import registry
from monitor.fleet import QueryFleet, exported_labels
from monitor.fleetexport import FleetMetrics, render_series
from streamwatch.series import Series

T0 = 1_700_000_000.0


def batch(labels: dict[str, str], ts, xs) -> Series:
    return Series(labels, np.asarray(ts, dtype=float), np.asarray(xs, dtype=float))


class Recording:
    """A real EMA detector that also keeps what it was asked to score."""

    def __init__(self) -> None:
        self.inner = registry.create("ema", {})
        self.seen: list[tuple[float, float]] = []

    def update_many(self, xs, ts):
        self.seen.extend(zip(ts.tolist(), xs.tolist(), strict=True))
        return self.inner.update_many(xs, ts)


def test_each_label_set_gets_its_own_detector_and_each_point_is_scored_once():
    fleet = QueryFleet(QueryConfig(name="price", expr="price"))
    a = {"__name__": "price", "series": "0"}
    b = {"__name__": "price", "series": "1"}
    ts = T0 + np.arange(4.0)
    report = fleet.observe([batch(a, ts, [1, 2, 3, 4]), batch(b, ts, [100, 200, 300, 400])], T0 + 4)
    assert len(report.admitted) == 2 and report.scored == 0  # waiting for their models
    recs = {}
    for key in fleet.waiting():
        recs[key] = Recording()
        assert fleet.install(key, recs[key], trained_until=T0 + 1)  # history reached T0 + 1
    ka, kb = batch(a, [], []).key, batch(b, [], []).key
    # The same points again plus a new one: only what is after the training and not yet scored counts.
    ts2 = T0 + np.arange(5.0)
    for _ in range(2):
        fleet.observe([batch(a, ts2, [1, 2, 3, 4, 5]), batch(b, ts2, [100, 200, 300, 400, 500])], T0 + 5)
    assert recs[ka].seen == [(T0 + 2, 3.0), (T0 + 3, 4.0), (T0 + 4, 5.0)]
    assert recs[kb].seen == [(T0 + 2, 300.0), (T0 + 3, 400.0), (T0 + 4, 500.0)]
    assert fleet.series[ka].samples == 3 and fleet.series[kb].actual == 500.0


def test_silent_series_are_dropped_after_stale_after_and_readmitted_fresh():
    fleet = QueryFleet(QueryConfig(name="q", expr="x", stale_after=60.0))
    a, b = {"i": "a"}, {"i": "b"}
    fleet.observe([batch(a, [T0], [1.0]), batch(b, [T0], [1.0])], T0)
    for key in fleet.waiting():
        fleet.install(key, registry.create("ema", {}), T0)
    for k in range(1, 7):  # only a keeps reporting
        fleet.observe([batch(a, [T0 + 10 * k], [1.0])], T0 + 10 * k)
        assert fleet.drop_stale(T0 + 10 * k) == []
    assert fleet.drop_stale(T0 + 61) == [batch(b, [], []).key]
    assert list(fleet.series) == [batch(a, [], []).key] and fleet.dropped_total == 1
    report = fleet.observe([batch(b, [T0 + 70], [1.0])], T0 + 70)
    assert report.admitted == [batch(b, [], []).key]  # back, as a new series that trains again


def test_beyond_max_series_new_series_are_refused_counted_once_and_logged_once(caplog):
    fleet = QueryFleet(QueryConfig(name="q", expr="x", max_series=2, stale_after=60.0))
    series = [{"i": str(i)} for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="monitor.fleet"):
        for k in range(3):
            report = fleet.observe([batch(s, [T0 + k], [1.0]) for s in series], T0 + k)
            assert report.refused == (3 if k == 0 else 0)
    assert len(fleet.series) == 2 and fleet.refused_total == 3
    assert len([r for r in caplog.records if "max_series" in r.getMessage()]) == 1
    # Room again (two series gone stale): the refused ones that still report are admitted.
    # The refused ones keep reporting; 0 and 1 go silent and stale.
    assert fleet.observe([batch(s, [T0 + 50], [1.0]) for s in series[2:]], T0 + 50).refused == 0
    assert len(fleet.drop_stale(T0 + 63)) == 2
    report = fleet.observe([batch(s, [T0 + 63], [1.0]) for s in series[2:]], T0 + 63)
    assert len(report.admitted) == 2 and report.refused == 0 and fleet.refused_total == 3


def test_accept_decides_which_series_this_process_watches():
    fleet = QueryFleet(QueryConfig(name="q", expr="x"), accept=lambda labels: labels["i"] != "1")
    fleet.observe([batch({"i": str(i)}, [T0], [1.0]) for i in range(3)], T0)
    assert sorted(dict(k)["i"] for k in fleet.series) == ["0", "2"] and fleet.refused_total == 0


def test_exported_labels_drop_the_name_and_rename_clashes():
    got = exported_labels("cpu", {"__name__": "x", "metric": "m", "bound": "b", "cpu": "1"})
    assert got == {"metric": "cpu", "exported_metric": "m", "exported_bound": "b", "cpu": "1"}


def test_the_exposition_has_one_child_per_series_with_its_labels_and_passes_promtool():
    fleet = QueryFleet(QueryConfig(name="cpu", expr="rate(x[1m])"))
    labels = [{"cpu": str(i), "mode": "user", "metric": "clash", "job": 'a"b\\c'} for i in range(3)]
    fleet.observe([batch(lab, T0 + np.arange(30.0), np.ones(30)) for lab in labels], T0 + 30)
    for key in fleet.waiting():
        fleet.install(key, registry.create("ema", {"warmup": 2}), T0 + 10)
    fleet.observe([batch(lab, T0 + np.arange(30.0), np.ones(30) * 2) for lab in labels], T0 + 30)
    metrics = FleetMetrics(["cpu"])
    metrics.series_text = render_series([fleet])
    text = metrics.exposition().decode()
    assert_promtool_metrics_ok(text)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "streamwatch_monitor_anomaly_score",
        "streamwatch_monitor_anomalies",
        "streamwatch_monitor_actual",
    ):
        got = sorted(s.labels["cpu"] for s in families[name].samples)
        assert got == ["0", "1", "2"], name
        for s in families[name].samples:
            assert s.labels["metric"] == "cpu" and s.labels["exported_metric"] == "clash"
            assert s.labels["job"] == 'a"b\\c'
    assert len(families["streamwatch_monitor_forecast"].samples) == 9
    assert families["streamwatch_monitor_samples_scored"].samples[0].value == 19  # T0 + 11 .. T0 + 29
    fleet.drop_stale(T0 + 10_000)
    metrics.series_text = render_series([fleet])
    assert 'cpu="1"' not in metrics.exposition().decode()


def test_nan_is_left_out_and_inf_is_an_anomaly_never_learnt():
    fleet = QueryFleet(QueryConfig(name="q", expr="x"))
    fleet.observe([batch({"i": "a"}, [T0], [1.0])], T0)
    (key,) = fleet.waiting()
    rec = Recording()
    fleet.install(key, rec, T0)
    report = fleet.observe([batch({"i": "a"}, T0 + np.arange(1.0, 5.0), [2.0, np.nan, np.inf, 3.0])], T0 + 5)
    assert rec.seen == [(T0 + 1, 2.0), (T0 + 4, 3.0)]
    assert (report.scored, report.nonfinite, report.anomalies) == (3, 2, 1)
    state = fleet.series[key]
    assert state.score == np.inf and state.actual == 3.0 and state.trained_until == T0 + 4


def test_series_differing_only_in_their_name_are_watched_once(caplog):
    fleet = QueryFleet(QueryConfig(name="q", expr='{__name__=~"a|b"}'))
    with caplog.at_level(logging.WARNING, logger="monitor.fleet"):
        fleet.observe([batch({"__name__": n, "job": "j"}, [T0], [1.0]) for n in ("a", "b")], T0)
    assert len(fleet.series) == 1 and len(caplog.records) == 1  # one child, never two identical ones
    fleet.drop_stale(T0 + 10_000)
    fleet.observe([batch({"__name__": "b", "job": "j"}, [T0 + 10_001], [1.0])], T0 + 10_001)
    assert len(fleet.series) == 1  # the label set is free again once its holder went stale


def test_plain_selectors_are_read_raw_and_everything_else_with_query_range():
    from monitor.watch import is_selector

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

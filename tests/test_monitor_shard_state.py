"""Sharding in the per-series core and detector state across restarts (monitor.snapshot)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from harness.cli import assert_one_line_error, run_python
from harness.services import assert_promtool_metrics_ok
from monitor import snapshot
from monitor.config import QueryConfig
from monitor.detectors import registry
from monitor.fleet import QueryFleet
from monitor.fleetexport import FleetMetrics
from monitor.prophet_profile import PROFILE_POINTS, Profile, ProfileBandDetector
from monitor.shard import belongs
from streamwatch.net import free_port
from streamwatch.series import Series

T0 = 1_700_000_000.0
QUERY = QueryConfig(name="price", expr="energy_price_metric", detector="ema")


def batches(n: int, ts: np.ndarray) -> list[Series]:
    return [
        Series({"__name__": "energy_price_metric", "series": str(i)}, ts, np.sin(ts / 60.0) + i)
        for i in range(n)
    ]


def trained_fleet(n: int, accept=None) -> QueryFleet:
    fleet = QueryFleet(QUERY, accept)
    ts = T0 + 15.0 * np.arange(40)
    fleet.observe(batches(n, ts), T0 + 600)
    for key in fleet.waiting():
        detector = registry.create("ema", {})
        detector.update_many(np.sin(ts / 60.0), ts)
        fleet.install(key, detector, float(ts[-1]))
    later = T0 + 15.0 * np.arange(40, 50)
    fleet.observe(batches(n, later), T0 + 750)  # scored: counts and detector state move on
    return fleet


def test_replicas_split_the_series_with_nothing_twice_and_nothing_left_out() -> None:
    kept: list[set] = []
    for index in range(3):
        fleet = QueryFleet(QUERY, lambda labels, i=index: belongs(labels, i, 3))
        fleet.observe(batches(300, T0 + np.arange(3.0)), T0 + 3)
        kept.append(set(fleet.series))
    assert sum(len(k) for k in kept) == 300
    assert len(kept[0] | kept[1] | kept[2]) == 300
    assert all(80 <= len(k) <= 120 for k in kept), [len(k) for k in kept]


def test_snapshot_restores_every_detector_where_it_left_off(tmp_path: Path) -> None:
    fleet = trained_fleet(5)
    path = snapshot.snapshot_path(tmp_path, QUERY.name, (1, 3))
    assert path.name == "snapshot-price-1of3.pickle"
    assert snapshot.save(path, fleet) == 5
    restored = QueryFleet(QUERY)
    saved = snapshot.load(path, QUERY)
    assert (
        sum(
            restored.restore(
                s.labels, s.detector, s.trained_until, s.last_seen, T0 + 900, s.samples, s.anomalies
            )
            for s in saved
        )
        == 5
    )
    assert restored.waiting() == []  # nothing to train: every series scores from the next point
    nxt = T0 + 15.0 * np.arange(50, 55)
    a = fleet.observe(batches(5, nxt), T0 + 900)
    b = restored.observe(batches(5, nxt), T0 + 900)
    assert a.scored == b.scored == 25
    for key, state in fleet.series.items():
        twin = restored.series[key]
        assert (twin.samples, twin.anomalies, twin.text) == (state.samples, state.anomalies, state.text)
        assert twin.score == state.score and twin.expected == state.expected  # the same detector state


def test_restore_keeps_only_this_replicas_series(tmp_path: Path) -> None:
    path = tmp_path / "s.pickle"
    snapshot.save(path, trained_fleet(30))
    mine = QueryFleet(QUERY, lambda labels: belongs(labels, 0, 2))
    got = sum(mine.restore(s.labels, s.detector, s.trained_until, T0, T0) for s in snapshot.load(path, QUERY))
    assert got == len(mine.series) and 0 < got < 30
    assert all(belongs(dict(k), 0, 2) for k in mine.series)


def test_series_stale_by_the_restart_are_not_restored_and_the_rest_go_stale_as_before(tmp_path: Path) -> None:
    path = tmp_path / "s.pickle"
    snapshot.save(path, trained_fleet(4))  # every series last seen at T0 + 750
    saved = snapshot.load(path, QUERY)
    assert {s.last_seen for s in saved} == {T0 + 750}
    late = QueryFleet(QUERY)  # back after more than stale_after (600 s): they would have been dropped
    assert not any(late.restore(s.labels, s.detector, s.trained_until, s.last_seen, T0 + 1351) for s in saved)
    soon = QueryFleet(QUERY)
    assert all(soon.restore(s.labels, s.detector, s.trained_until, s.last_seen, T0 + 800) for s in saved)
    assert soon.drop_stale(T0 + 1349) == [] and len(soon.drop_stale(T0 + 1351)) == 4  # no new point: gone


def test_a_snapshot_of_other_settings_or_version_or_damaged_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "s.pickle"
    snapshot.save(path, trained_fleet(3))
    assert len(snapshot.load(path, QUERY)) == 3
    changed = QueryConfig(name="price", expr="energy_price_metric", detector="ema", params={"alpha": 0.5})
    assert snapshot.load(path, changed) == []
    doc = pickle.loads(path.read_bytes())
    doc["format"] = snapshot.FORMAT_VERSION + 1
    path.write_bytes(pickle.dumps(doc))
    assert snapshot.load(path, QUERY) == []
    path.write_bytes(b"not a pickle")
    assert snapshot.load(path, QUERY) == []
    assert snapshot.load(tmp_path / "missing.pickle", QUERY) == []


def test_shard_and_restore_metrics_pass_promtool() -> None:
    metrics = FleetMetrics(["price"])
    metrics.shard_info.labels("1", "3").set(1)
    metrics.restored.labels("price").inc(7)
    text = metrics.exposition().decode()
    assert 'streamwatch_monitor_shard_info{shard="1",shards="3"} 1.0' in text
    assert 'streamwatch_monitor_series_restored_total{metric="price"} 7.0' in text
    assert_promtool_metrics_ok(text)


def test_bad_shards_stop_the_monitor_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "watch.toml"
    config.write_text(f'[monitor]\nport = {free_port()}\n[[monitor.queries]]\nname = "q"\nexpr = "up"\n')
    proc = run_python("monitor.py", "--config", str(config), "--shard", "5/3")
    assert_one_line_error(proc, "shard '5/3': INDEX 5 must be between 0 and 2", prog="monitor.py")
    config.write_text(config.read_text().replace("[monitor]\n", '[monitor]\nshard = "three"\n'))
    proc = run_python("monitor.py", "--config", str(config))
    assert_one_line_error(proc, "shard must be INDEX/COUNT or auto/COUNT", prog="monitor.py")
    proc = run_python(
        "monitor.py", "energy_price", "datasets/energy_price_train.json", "8090", "--shard", "0/2"
    )
    assert_one_line_error(proc, "--shard and --port go with --config", prog="monitor.py")


def test_a_fitted_profile_survives_the_snapshot(tmp_path: Path) -> None:
    # Prophet series keep their fitted profile: restored, they score exactly as before, with no fit.
    q = QueryConfig(name="price", expr="energy_price_metric", detector="prophet")
    profile = Profile(600.0, T0, np.sin(np.linspace(0, 2 * np.pi, PROFILE_POINTS, endpoint=False)), 0.3, 2.5)
    fleet = QueryFleet(q)
    labels = {"__name__": "energy_price_metric", "series": "7"}
    assert fleet.restore(labels, ProfileBandDetector(profile), T0, T0, T0)
    path = tmp_path / "p.pickle"
    assert snapshot.save(path, fleet) == 1
    (saved,) = snapshot.load(path, q)
    ts = T0 + np.arange(1.0, 40.0) * 15.0
    xs = np.sin(2 * np.pi * (ts - T0) / 600.0) + np.where(np.arange(ts.size) == 5, 2.0, 0.0)
    before = ProfileBandDetector(profile).update_many(xs, ts)
    after = saved.detector.update_many(xs, ts)
    assert np.array_equal(before.score, after.score) and np.count_nonzero(after.score > 1.0) == 1

"""Sharding in the monitor's core and every series' state across restarts (monitor.snapshot)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from harness.cli import assert_one_line_error, run_python
from harness.services import assert_promtool_metrics_ok
from monitor import snapshot
from monitor.config import QueryConfig
from monitor.detectors import registry
from monitor.export import MonitorMetrics
from monitor.prophet_profile import PROFILE_POINTS, Profile
from monitor.query import QueryWatch
from monitor.shard import belongs
from streamwatch.net import free_port
from streamwatch.promapi import Columns
from streamwatch.series import Series

T0 = 1_700_000_000.0
QUERY = QueryConfig(name="price", expr="energy_price_metric", detector="ema")


def batches(n: int, ts: np.ndarray) -> Columns:
    return Columns.of(
        [
            Series({"__name__": "energy_price_metric", "series": str(i)}, ts, np.sin(ts / 60.0) + i)
            for i in range(n)
        ]
    )


def new_watch(q: QueryConfig = QUERY, accept=None) -> QueryWatch:
    return QueryWatch(q, registry.container(q.detector, q.params), accept)


def trained_watch(n: int, accept=None) -> QueryWatch:
    w = new_watch(accept=accept)
    ts = T0 + 15.0 * np.arange(40)
    w.observe(batches(n, ts), T0 + 600)
    rows = w.waiting()
    trained = registry.create("ema", {}, rows=rows.size)
    trained.update(np.tile(np.sin(ts / 60.0), (rows.size, 1)), np.tile(ts, (rows.size, 1)))
    w.install(rows, trained, np.full(rows.size, ts[-1]))
    later = T0 + 15.0 * np.arange(40, 50)
    w.observe(batches(n, later), T0 + 750)  # scored: counts and detector state move on
    return w


def test_replicas_split_the_series_with_nothing_twice_and_nothing_left_out() -> None:
    kept: list[set] = []
    for index in range(3):
        w = new_watch(accept=lambda labels, i=index: belongs(labels, i, 3))
        w.observe(batches(300, T0 + np.arange(3.0)), T0 + 3)
        kept.append(set(w.table.index))
    assert sum(len(k) for k in kept) == 300
    assert len(kept[0] | kept[1] | kept[2]) == 300
    assert all(80 <= len(k) <= 120 for k in kept), [len(k) for k in kept]


def restore(path: Path, w: QueryWatch, now: float, q: QueryConfig = QUERY) -> int:
    saved = snapshot.load(path, q, w.detector)
    assert saved is not None
    return w.restore(saved.labels, saved.detector, saved.columns, now)


def test_snapshot_restores_every_series_where_it_left_off(tmp_path: Path) -> None:
    w = trained_watch(5)
    path = snapshot.snapshot_path(tmp_path, QUERY.name, (1, 3))
    assert path.name == "snapshot-price-1of3.npz"
    assert snapshot.save(path, w) == 5
    twin = new_watch()
    assert restore(path, twin, T0 + 900) == 5
    assert twin.waiting().size == 0  # nothing to train: every series scores from the next point
    nxt = T0 + 15.0 * np.arange(50, 55)
    a = w.observe(batches(5, nxt), T0 + 900)
    b = twin.observe(batches(5, nxt), T0 + 900)
    assert a.scored == b.scored == 25
    for key, row in w.table.index.items():
        r = twin.table.index[key]
        for name in ("samples", "anomalies", "score", "expected", "trained_until"):
            assert twin.table.col[name][r] == w.table.col[name][row], name  # the same detector state
        assert twin.table.texts[r] == w.table.texts[row]


def test_a_snapshot_is_plain_arrays_loaded_without_pickle(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    snapshot.save(path, trained_watch(2))
    with np.load(path, allow_pickle=False) as z:  # would raise on any object array
        meta = json.loads(str(z["meta"][()]))
        assert meta["format"] == snapshot.FORMAT_VERSION and len(meta["labels"]) == 2
        assert all(z[name].dtype != object for name in z.files)


def test_restore_keeps_only_this_replicas_series(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    snapshot.save(path, trained_watch(30))
    mine = new_watch(accept=lambda labels: belongs(labels, 0, 2))
    got = restore(path, mine, T0)
    assert got == len(mine.table) and 0 < got < 30
    assert all(belongs(dict(k), 0, 2) for k in mine.table.index)


def test_series_stale_by_the_restart_are_not_restored_and_the_rest_go_stale_as_before(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    snapshot.save(path, trained_watch(4))  # every series last seen at T0 + 750
    late = new_watch()  # back after more than stale_after (600 s): they would have been dropped
    assert restore(path, late, T0 + 1351) == 0
    soon = new_watch()
    assert restore(path, soon, T0 + 800) == 4
    assert soon.drop_stale(T0 + 1349) == 0 and soon.drop_stale(T0 + 1351) == 4  # no new point: gone


def test_a_snapshot_of_other_settings_or_version_or_damaged_or_foreign_is_not_used(
    tmp_path: Path, caplog
) -> None:
    path = tmp_path / "s.npz"
    w = trained_watch(3)
    snapshot.save(path, w)
    assert len(snapshot.load(path, QUERY, w.detector).labels) == 3
    changed = QueryConfig(name="price", expr="energy_price_metric", detector="ema", params={"alpha": 0.5})
    assert snapshot.load(path, changed, w.detector) is None
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"][()]))

    def write(**changes: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **{**arrays, **changes})
        path.write_bytes(buf.getvalue())

    write(meta=np.array(json.dumps({**meta, "format": snapshot.FORMAT_VERSION + 1})))
    assert snapshot.load(path, QUERY, w.detector) is None
    write(**{"d.mean": np.zeros((2, 5))})  # a detector state of another shape
    assert snapshot.load(path, QUERY, w.detector) is None
    write(**{"t.trained_until": np.array([np.inf, 0.0, 0.0])})
    assert snapshot.load(path, QUERY, w.detector) is None
    np.savez(path.open("wb"), meta=np.array([{"a": 1}], dtype=object))  # pickled objects: never loaded
    assert snapshot.load(path, QUERY, w.detector) is None
    path.write_bytes(b"not a snapshot")
    assert snapshot.load(path, QUERY, w.detector) is None
    assert snapshot.load(tmp_path / "missing.npz", QUERY, w.detector) is None
    assert sum("ignoring unreadable snapshot" in r.getMessage() for r in caplog.records) == 4


def test_shard_and_restore_metrics_pass_promtool() -> None:
    metrics = MonitorMetrics(["price"])
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
    w = new_watch(q)
    labels = {"__name__": "energy_price_metric", "series": "7"}
    cols = {
        "trained_until": np.array([T0]),
        "last_seen": np.array([T0]),
        "samples": np.zeros(1),
        "anomalies": np.zeros(1),
    }
    assert w.restore([labels], registry.from_profile("prophet", {}, profile), cols, T0) == 1
    path = tmp_path / "p.npz"
    assert snapshot.save(path, w) == 1
    saved = snapshot.load(path, q, w.detector)
    assert saved is not None
    ts = T0 + np.arange(1.0, 40.0) * 15.0
    xs = np.sin(2 * np.pi * (ts - T0) / 600.0) + np.where(np.arange(ts.size) == 5, 2.0, 0.0)
    before = registry.from_profile("prophet", {}, profile).update_many(xs, ts)
    after = saved.detector.update_many(xs, ts)
    assert np.array_equal(before.score, after.score) and np.count_nonzero(after.score > 1.0) == 1

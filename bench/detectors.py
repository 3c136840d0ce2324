"""``python -m bench.detectors``: points per second and memory of every detector, with library references.

For each detector: streaming (``update_one``, one value at a time, pure Python) on ``--stream-n`` points
and vectorised (``update_many`` over the whole array) on ``--n`` points, one million each by default
(``--n 100000 --stream-n 100000`` for a quick run), and the memory one instance holds after warming up
(tracemalloc). Beside them: the Prophet monitor's band (``monitor.detectors.prophet``) fitted on an hour
of simulator data, with the memory of one instance (its band grid and the fitted model it predicts
with), and the same moving statistics computed by river (streaming) and pandas (vectorised) as the
reference, with the largest difference from ours. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from monitor.detectors.registry import DETECTORS, create

Row = tuple[str, str, int, float, str]
# Streaming points for detectors too slow for a million: the Isolation Forest asks scikit-learn about each
# point alone (about a millisecond a call); its vectorised path is measured on the full --n.
STREAM_CAP = {"iforest": 1000}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + 2.0 * np.arange(n)
    xs = 250 + 100 * np.sin(ts / 100.0) + rng.normal(0, 10, n)
    xs[rng.choice(n, n // 1000, replace=False)] += 200
    return xs, ts


def memory_of(name: str, xs: np.ndarray, ts: np.ndarray) -> int:
    """Bytes one warmed-up instance keeps (its state after 5,000 values)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    d = create(name)
    if name in STREAM_CAP:  # the same state, reached without a slow point-by-point loop
        d.update_many(xs[:5000], ts[:5000])
    else:
        for x, t in zip(xs[:5000].tolist(), ts[:5000].tolist(), strict=True):
            d.update_one(x, t)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del d
    return after - before


def bench_ours(n: int, stream_n: int) -> list[Row]:
    xs, ts = data(max(n, stream_n))
    rows: list[Row] = []
    for name in DETECTORS:
        d = create(name)
        m = min(stream_n, STREAM_CAP.get(name, stream_n))
        sx, st = xs[:m].tolist(), ts[:m].tolist()
        secs, _ = timed(lambda d=d, sx=sx, st=st: [d.update_one(x, t) for x, t in zip(sx, st, strict=True)])
        rows.append((name, "streaming update_one", m, secs, f"{memory_of(name, xs, ts) / 1024:.1f} KiB"))
        secs, _ = timed(lambda name=name: create(name).update_many(xs[:n], ts[:n]))
        rows.append((name, "vectorised update_many", n, secs, ""))
    return rows


def bench_prophet(n: int, stream_n: int) -> list[Row]:
    try:
        from monitor.detectors.prophet import ProphetBandDetector
        from monitor.forecast import fit
        from simulator import wave
        from simulator.config import default_metrics
    except ImportError as exc:  # the monitor's Prophet band is another package's part
        return [("prophet", f"unavailable: {exc}", 0, float("nan"), "")]
    spec = default_metrics()[0]
    train_ts = 1.7e9 + 2.0 * np.arange(1800)
    train_vs = wave.values(spec, train_ts)
    fitted = fit(train_ts, train_vs, 100.0, 2.0)  # timed without tracemalloc, and Prophet is imported
    # What one instance holds, as the monitor keeps it: the fitted model plus the band grid (its 6 h
    # default horizon), after scoring 5,000 values.
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = ProphetBandDetector(
        fit(train_ts, train_vs, 100.0, 2.0).band(float(train_ts[-1]), 6 * 3600.0), 100.0
    )
    for i in range(5000):
        held.update_one(250.0, float(train_ts[-1]) + 2.0 * (i + 1))
    gc.collect()
    memory = f"{(tracemalloc.get_traced_memory()[0] - before) / 1024:.1f} KiB (model + 6 h grid)"
    tracemalloc.stop()
    del held
    total = max(n, stream_n)
    ts = train_ts[-1] + 2.0 * np.arange(1, total + 1)
    xs = np.full(total, 250.0)
    band = fitted.band(float(ts[0]), float(ts[-1] - ts[0]) + 2.0)  # the grid is predicted once, up front
    d = ProphetBandDetector(band, 100.0, fitted.fit_seconds)
    rows: list[Row] = [("prophet", "fit on 1 h (1,800 points)", 1800, fitted.fit_seconds, "")]
    sx, st = xs[:stream_n].tolist(), ts[:stream_n].tolist()
    secs, _ = timed(lambda: [d.update_one(x, t) for x, t in zip(sx, st, strict=True)])
    rows.append(("prophet", "streaming update_one (band lookup)", stream_n, secs, memory))
    secs, _ = timed(lambda: d.update_many(xs[:n], ts[:n]))
    rows.append(("prophet", "vectorised update_many (band lookup)", n, secs, ""))
    return rows


def bench_reference(n: int, stream_n: int) -> list[Row]:
    from river import stats, utils

    xs, ts = data(max(n, stream_n))
    sx = xs[:stream_n].tolist()
    xs, ts = xs[:n], ts[:n]
    rows: list[Row] = []
    s = pd.Series(xs)
    sma_ours = create("sma").update_many(xs, ts)
    secs, roll = timed(lambda: (s.rolling(10).mean(), s.rolling(10).std()))
    mean, _std = roll  # type: ignore[misc]
    ours_mean = sma_ours.expected[10:]
    diff = float(np.nanmax(np.abs(ours_mean - mean.to_numpy()[9:-1])))
    rows.append(("pandas", "rolling(10) mean + std", n, secs, f"max |diff| vs sma {diff:.1e}"))
    secs, q = timed(lambda: s.rolling(50).quantile(0.5))
    iqr_ours = create("iqr").update_many(xs, ts)
    diff = float(np.nanmax(np.abs(iqr_ours.expected[50:] - q.to_numpy()[49:-1])))  # type: ignore[union-attr]
    rows.append(("pandas", "rolling(50) median", n, secs, f"max |diff| vs iqr {diff:.1e}"))
    secs, _ = timed(lambda: (s.rolling(50).quantile(0.25), s.rolling(50).quantile(0.75)))
    rows.append(("pandas", "rolling(50) quartiles 0.25 + 0.75", n, secs, ""))
    secs, _ = timed(lambda: (s.ewm(alpha=0.1, adjust=False).mean(), s.ewm(alpha=0.1, adjust=False).var()))
    rows.append(("pandas", "ewm(alpha=0.1) mean + var", n, secs, ""))

    def river_sma() -> None:
        m, v = utils.Rolling(stats.Mean, window_size=10), utils.Rolling(stats.Var, window_size=10)
        for x in sx:
            m.get()
            v.get()
            m.update(x)
            v.update(x)

    def river_ema() -> None:
        m, v = stats.EWMean(fading_factor=0.1), stats.EWVar(fading_factor=0.1)
        for x in sx:
            m.get()
            v.get()
            m.update(x)
            v.update(x)

    def river_iqr() -> None:
        q = stats.RollingIQR(q_inf=0.25, q_sup=0.75, window_size=50)
        for x in sx:
            q.get()
            q.update(x)

    for label, fn in (
        ("Rolling(Mean, 10) + Rolling(Var, 10)", river_sma),
        ("EWMean + EWVar (0.1)", river_ema),
        ("RollingIQR(50)", river_iqr),
    ):
        secs, _ = timed(fn)
        rows.append(("river", label, stream_n, secs, ""))
    return rows


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.detectors", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="points for vectorised runs (default 1,000,000)")
    ap.add_argument(
        "--stream-n",
        type=int,
        default=1_000_000,
        help="points for one-at-a-time runs (default 1,000,000: minutes in all; lower it for a quick run)",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.n < 10_000 or args.stream_n < 10_000:
        # The memory figures warm up on 5,000 values and the reference rows skip 50-point warm-ups.
        ap.error("--n and --stream-n must be at least 10,000")
    rows = bench_ours(args.n, args.stream_n) + bench_prophet(args.n, args.stream_n)
    rows += bench_reference(args.n, args.stream_n)
    print("| detector | path | points | points/s | µs/point | note |\n|---|---|---:|---:|---:|---|")
    for name, path, n, secs, note in rows:
        if n and secs == secs and secs > 0:
            print(f"| {name} | {path} | {n:,} | {n / secs:,.0f} | {1e6 * secs / n:.3f} | {note} |")
        else:
            print(f"| {name} | {path} | {n:,} | - | - | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

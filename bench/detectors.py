"""``python -m bench.detectors``: what every detector costs the many-series monitor, and per series.

For each detector (``--detectors``, default all; Prophet's band and its normalised form included):

- **cycle**: a query of ``--series`` series (default 10,000 and 100,000) held as rows of one columnar
  detector, every row past its warm-up, scores ``--points`` new points per series (default 15: a 30 s
  cycle of 2 s scrapes) in one ``update`` call; the median and worst of ``--cycles`` cycles (default 5).
  The rows are made by warming up ``WARM_ROWS`` series on their history and copying them (``take``),
  so a 100,000-row detector is ready in seconds; the data are the simulator's kind of wave (a triangle
  of period 100 s, every series in its own phase and level, with spikes). Detectors that keep one
  Python object per series (``registry.PER_SERIES``) are measured at ``PER_SERIES_MAX`` series at most.
- **memory per series**: the bytes of state arrays per row (the whole state, divided by the rows); for
  a per-series object, what one warmed-up instance holds (tracemalloc).
- **one series**: points per second of ``update_many`` on one long series (``--one-n`` points, the
  evaluation's path) and of ``update_one`` point by point (``--stream-n`` points).
- **warm-up**: what ending its warm-up costs a series where that is more than learning a point (the
  seasonal baseline finds its period then), per series.

The load average (``/proc/loadavg``) is printed before and after: the machine is shared, and the figures
mean little without it. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence

import numpy as np

from monitor.detectors import registry
from monitor.detectors.base import Detector, PerSeries
from monitor.detectors.normalise import Normalised
from monitor.detectors.prophet import PROFILE_POINTS, Profile, ProfileBand

STEP_S = 2.0
PERIOD_S = 100.0
WARM_ROWS = 200  # series warmed up on their history, then copied to fill a query
PER_SERIES_MAX = 10_000  # one Python call per series per cycle: more takes minutes a cycle
DEFAULT_SERIES = (10_000, 100_000)
Factory = Callable[[int], Detector]


def load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def wave(rows: int, t: np.ndarray, seed: int = 0) -> np.ndarray:
    """(rows, T) values: a triangle wave per row (own phase, level and noise), with spikes now and then."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, PERIOD_S, rows)[:, None]
    level = rng.uniform(100, 1000, rows)[:, None]
    tri = 2 * np.abs(((t[None, :] + phase) / PERIOD_S) % 1.0 - 0.5)  # 0 .. 1
    x = level * (0.5 + tri) + rng.normal(0, 0.02, (rows, t.size)) * level
    spikes = rng.random(x.shape) < 0.001
    return np.where(spikes, x * 3, x)


def profile_band(normalise: bool = False) -> Factory:
    """Prophet's band with a fitted profile in every row (no fit here: what scoring costs)."""
    grid = np.arange(PROFILE_POINTS) * (PERIOD_S / PROFILE_POINTS)
    profile = Profile(PERIOD_S, 0.0, 550 + 450 * 2 * np.abs(grid / PERIOD_S - 0.5), 40.0, step=STEP_S)

    def make(rows: int) -> Detector:
        d = ProfileBand.of(profile, rows=rows)
        return Normalised(d) if normalise else d

    return make


def factories(names: Sequence[str]) -> dict[str, Factory]:
    out: dict[str, Factory] = {}
    for name in names:
        if name == "prophet":
            out[name] = profile_band()
        elif name == "prophet normalised":
            out[name] = profile_band(normalise=True)
        else:
            out[name] = lambda rows, name=name: registry.create(name, {}, rows)
    return out


def warmed(make: Factory, rows: int) -> tuple[Detector, float, float]:
    """A detector of ``rows`` series past their warm-up, the time the history's columns took per warmed
    series (seconds), and the time the cycle after it would start at."""
    proto = make(1)
    history = max(proto.warmup, 1) + 2 * round(PERIOD_S / STEP_S) + 10
    n = min(rows, WARM_ROWS)
    t = STEP_S * np.arange(history)
    d = make(n)
    began = time.perf_counter()
    d.update(wave(n, t), np.broadcast_to(t, (n, history)))
    per_series = (time.perf_counter() - began) / n
    if rows > n:
        d = d.take(np.arange(rows) % n)
    return d, per_series, float(t[-1]) + STEP_S


def state_bytes(d: Detector) -> float:
    """Bytes per series: the state arrays' (columnar), or one warmed-up member object's (per series)."""
    if isinstance(d, PerSeries):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        one = d.take([0])
        gc.collect()
        size = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        del one
        return float(size)
    return sum(v.nbytes for v in d.state.values()) / max(d.rows, 1)


def bench_cycles(name: str, make: Factory, rows: int, points: int, cycles: int) -> dict[str, object]:
    d, warm_s, t0 = warmed(make, rows)
    times = []
    for c in range(cycles):
        t = t0 + STEP_S * (np.arange(points) + c * points)
        x = wave(rows, t, seed=c + 1)
        tt = np.broadcast_to(t, x.shape)
        gc.collect()
        began = time.perf_counter()
        d.update(x, tt)
        times.append(time.perf_counter() - began)
    return {
        "name": name,
        "rows": rows,
        "median_ms": 1e3 * statistics.median(times),
        "worst_ms": 1e3 * max(times),
        "bytes": state_bytes(d),
        "warm_s": warm_s,
    }


def bench_one(make: Factory, one_n: int, stream_n: int) -> tuple[float, float]:
    """Points per second of ``update_many`` on one series of ``one_n`` points and of ``update_one``."""
    t = STEP_S * np.arange(max(one_n, stream_n))
    x = wave(1, t)[0]
    d = make(1)
    began = time.perf_counter()
    d.update_many(x[:one_n], t[:one_n])
    many = one_n / (time.perf_counter() - began)
    d = make(1)
    xs, ts = x[:stream_n].tolist(), t[:stream_n].tolist()
    began = time.perf_counter()
    for v, u in zip(xs, ts, strict=True):
        d.update_one(v, u)
    one = stream_n / (time.perf_counter() - began)
    return many, one


def bench_seasonal_warmup(rows: int = 1000) -> float:
    """Seconds per series of the column that ends the seasonal baseline's warm-up (period found, profile
    replayed), beside the columns before it."""
    d = registry.create("seasonal", {}, rows)
    w = d.warmup
    t = STEP_S * np.arange(w)
    x = wave(rows, t)
    d.update(x[:, :-1], np.broadcast_to(t[:-1], (rows, w - 1)))
    began = time.perf_counter()
    d.update(x[:, -1], np.full(rows, t[-1]))
    return (time.perf_counter() - began) / rows


def size(n: object) -> str:
    b = float(n)  # type: ignore[arg-type]
    return f"{b:,.0f} B" if b < 1024 else f"{b / 1024:,.1f} KiB"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.detectors", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--series",
        default=",".join(str(s) for s in DEFAULT_SERIES),
        help="comma-separated query sizes (default 10000,100000)",
    )
    ap.add_argument("--points", type=int, default=15, help="new points per series per cycle (default 15)")
    ap.add_argument("--cycles", type=int, default=5, help="cycles timed per size (default 5)")
    ap.add_argument(
        "--one-n", type=int, default=20_000, help="points of the one-series batch (default 20,000)"
    )
    ap.add_argument("--stream-n", type=int, default=2_000, help="points fed one at a time (default 2,000)")
    ap.add_argument(
        "--detectors",
        default=",".join([*registry.NAMES, "prophet normalised"]),
        help="comma-separated detectors (default: all, and Prophet's band normalised)",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in args.series.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--series takes comma-separated whole numbers, got {args.series!r}")
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    known = {*registry.NAMES, "prophet normalised"}
    if not names or any(n not in known for n in names):
        ap.error(f"--detectors takes names from {', '.join(sorted(known))}")
    if (
        not sizes
        or min(sizes) < 1
        or args.points < 1
        or args.cycles < 1
        or args.one_n < 1
        or args.stream_n < 1
    ):
        ap.error("--series, --points, --cycles, --one-n and --stream-n must be at least 1")
    print(f"load average before: {load()}")
    print(
        "\n| detector | series | points per cycle | scoring per cycle, median (worst) | per series "
        "| state per series | one series: update_many / update_one |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, make in factories(names).items():
        many, one = bench_one(make, args.one_n, args.stream_n)
        for rows in sizes:
            per_series = name in registry.PER_SERIES
            if per_series and rows > PER_SERIES_MAX:
                skipped = "not measured (one Python call per series)"
                print(f"| {name} | {rows:,} | {rows * args.points:,} | {skipped} | | | |")
                continue
            r = bench_cycles(name, make, rows, args.points, 1 if per_series else args.cycles)
            cycle = f"{r['median_ms']:,.1f} ms ({r['worst_ms']:,.1f})"
            per = f"{1e3 * r['median_ms'] / rows:.2f} us"  # type: ignore[operator]
            print(
                f"| {name} | {rows:,} | {rows * args.points:,} | {cycle} | {per} "
                f"| {size(r['bytes'])} | {many:,.0f} / {one:,.0f} points/s |",
                flush=True,
            )
            gc.collect()
    if "seasonal" in names:
        cost = 1e3 * bench_seasonal_warmup(min(1000, max(sizes)))
        print(f"\nseasonal: the column that ends a series' warm-up costs {cost:.1f} ms a series")
    print(f"\nload average after: {load()}  (profile grid: {PROFILE_POINTS} values)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m bench.backtest``: how long the backtest's replay takes and how much memory it holds.

The recording is made in-process (``--series`` seasonal series on the ``--step`` grid for ``--hours``,
read by a non-selector query, so the grid is all the engine reads), then replayed through the engine
with ``--interval`` cycles, exactly as ``monitor.py backtest`` does after reading Prometheus. Reading
the history from Prometheus is not included (it is one paged ``query_range`` per query and its cost is
Prometheus'). Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Sequence

import numpy as np

from monitor.backtest import cycle_times, replay
from monitor.config import MonitorConfig, QueryConfig
from monitor.replay import Recording, Track, lookback
from streamwatch.promapi import Columns


def recording(series: int, hours: float, step: float, start: float, seed: int = 0) -> Columns:
    rng = np.random.default_rng(seed)
    t = start + step * np.arange(int(hours * 3600 / step))
    phase = rng.uniform(0, 86400, (series, 1))
    x = 250 + 100 * np.sin(2 * np.pi * (t + phase) / 86400) + rng.normal(0, 10, (series, t.size))
    return Columns(
        [{"instance": f"host-{i}"} for i in range(series)],
        np.full(series, t.size, dtype=np.int64),
        np.tile(t, series),
        x.ravel(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.backtest", description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--step", type=float, default=15.0)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--detector", default="ema")
    args = ap.parse_args(argv)
    q = QueryConfig("load", "avg by (instance) (load)", detector=args.detector, step=args.step)
    cfg = MonitorConfig(queries=[q], interval=args.interval)
    until = 1.7e9
    since = until - args.hours * 3600
    first = since - lookback(cfg, q)
    cols = recording(args.series, (until - first) / 3600, args.step, np.ceil(first / args.step) * args.step)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    [out] = replay(cfg, [Recording(q.expr, q.step, Track(cols, first, until))], since, until)
    took = time.perf_counter() - began
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    points = int(out.scored.sum())
    cycles = len(cycle_times(since, until, args.interval))
    print(
        f"backtest replay, {args.detector}: {args.series} series x {args.hours:g} h at {args.step:g} s, "
        f"{cycles} cycles of {args.interval:g} s: {points} points scored in {took:.1f} s "
        f"({points / took / 1e6:.2f} M points/s); {int(out.flagged.sum())} flagged; peak RSS {rss:.0f} MiB "
        f"({rss0:.0f} MiB with the recording, before the replay); load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

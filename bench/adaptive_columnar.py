"""``python -m bench.adaptive_columnar``: the adaptive detector's cost per series per monitor cycle, columnar.

A query's series are the rows of one detector; a cycle brings each series ``--points`` new points (15: a
30 s cycle at the 2 s scrape). The detector first learns ``--history`` points per series (past its
warm-up and its period search), then ``--cycles`` cycles are timed; the figure is the mean wall time of a
cycle divided by the number of series, with the process's CPU time beside it (on a shared machine the
wall time includes waiting for a core). Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import numpy as np

from monitor.detectors.adaptive import Adaptive


def data(series: int, points: int, start: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + start)
    t = 1.7e9 + 2.0 * np.arange(start, start + points)
    phase = rng.uniform(0, 100, (series, 1))
    x = 250 + 100 * np.sin((t + phase) / 15.0) + rng.normal(0, 10, (series, points))
    return x, np.broadcast_to(t, x.shape).copy()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.adaptive_columnar", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=15)
    ap.add_argument("--history", type=int, default=360)
    ap.add_argument("--cycles", type=int, default=10)
    args = ap.parse_args(argv)
    d = Adaptive(rows=args.series)
    for start in range(0, args.history, 60):
        d.update(*data(args.series, min(60, args.history - start), start))
    secs, cpu = [], 0.0
    for c in range(args.cycles):
        x, t = data(args.series, args.points, args.history + c * args.points)
        t0, c0 = time.perf_counter(), time.process_time()
        d.update(x, t)
        secs.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    per = float(np.mean(secs)) / args.series * 1e6
    state = sum(v.nbytes for v in d.state.values()) / args.series
    print(
        f"adaptive, columnar: {args.series} series x {args.points} points a cycle: "
        f"{per:.1f} us per series per cycle (mean of {args.cycles} cycles, min "
        f"{min(secs) / args.series * 1e6:.1f}; CPU time {cpu / args.cycles / args.series * 1e6:.1f}); "
        f"state {state / 1024:.1f} KiB per series; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark and calibration of the Prophet monitor: ``python -m bench.monitor [--quick]``.

Prints: fit time for 1 h, 6 h and 24 h of 2 s training data; the cost of one cycle and samples scored
per second; resident memory after 1,000 cycles; and the calibration the issue asks for (share of clean
samples flagged, share of quarter-range shifts caught) on both simulator metrics over several hours.
Data comes from the simulator's own wave function; the cycle runs through the real ``Engine`` with a
``FakeClock`` and an in-process client, so no network time is measured.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import time
from collections.abc import Sequence

import numpy as np

from monitor.config import MonitorConfig, QueryConfig
from monitor.detectors import registry
from monitor.detectors.prophet import ProphetParams
from monitor.engine import Engine, Seed
from monitor.prophet_profile import Profile, fit_profile
from simulator import wave
from simulator.config import MetricSpec, default_metrics
from streamwatch.clock import FakeClock
from streamwatch.promapi import Columns
from streamwatch.series import Series

STEP_S = 2.0
START = 1_763_900_000.0


class WaveClient:
    """Prometheus' raw reads of a simulator wave, in process: ``expr[Nms]`` at ``at`` returns the wave's
    samples of that window, as the monitor's reader asks for them."""

    def __init__(self, spec: MetricSpec, step_s: float, seed: int = 3):
        self.spec = spec
        self.step_s = step_s
        self.seed = seed
        self.labels = {"__name__": spec.metric_name}

    def query_columns(self, expr: str, at: float | None = None) -> Columns:
        assert at is not None
        window = float(expr.rsplit("[", 1)[1].rstrip("ms]")) / 1000.0
        ts = (
            np.arange(math.floor((at - window) / self.step_s) + 1, math.floor(at / self.step_s) + 1)
            * self.step_s
        )
        return Columns.of([Series(self.labels, ts, wave.values(self.spec, ts, self.seed))])


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def train(spec: MetricSpec, hours: float) -> tuple[np.ndarray, np.ndarray]:
    ts = START + np.arange(0.0, hours * 3600, STEP_S)
    return ts, wave.values(spec, ts)


def fit(spec: MetricSpec, hours: float) -> Profile:
    ts, vs = train(spec, hours)
    return fit_profile(ts, vs, ProphetParams())


def bench_fit(spec: MetricSpec, hours_list: Sequence[float]) -> None:
    print(f"\nfit time, {spec.name}, 2 s samples (period detection + Prophet fit + one period's profile)")
    for hours in hours_list:
        began = time.perf_counter()
        profile = fit(spec, hours)
        total = time.perf_counter() - began
        print(
            f"  {hours:>4g} h  {int(hours * 3600 / STEP_S):>6} points  total {total:6.2f} s"
            f"  (Prophet fit {profile.fit_seconds:5.2f} s)  period {profile.period:g} s"
        )


def bench_cycles(spec: MetricSpec, profile: Profile, cycles: int, interval: float) -> None:
    """The positional form's cycle: one query, one series, the engine as the service runs it."""
    clock = FakeClock(START + 3600)
    q = QueryConfig(
        name=spec.name, expr=spec.metric_name, detector="prophet", step=STEP_S, max_series=1, export_band=True
    )
    cfg = MonitorConfig(interval=interval, queries=[q], port=1, snapshot_every=1e9)
    engine = Engine(cfg, WaveClient(spec, STEP_S), clock, out=io.StringIO())
    engine.watches[0].seed = Seed(registry.from_profile("prophet", {}, profile), clock.time())
    engine.last_snapshot = math.inf  # no snapshot writes: only the cycle is measured
    engine.run_cycle()
    rss_before = rss_mib()
    timings = np.empty(cycles)
    for i in range(cycles):
        clock.advance(interval)
        began = time.perf_counter()
        engine.run_cycle()
        timings[i] = time.perf_counter() - began
    scored = engine.metrics.samples.labels(spec.name)._value.get()
    print(
        f"\ncycles, {spec.name}: {cycles} cycles of {interval:g} s ({scored / (cycles + 1):.0f} samples each)"
    )
    print(
        f"  per cycle (read, score, export, print): median {np.median(timings) * 1e6:7.1f} us,"
        f" p99 {np.percentile(timings, 99) * 1e6:7.1f} us"
    )
    print(
        f"  resident memory: {rss_before:.0f} MiB before, {rss_mib():.0f} MiB after {cycles} cycles"
        f" (the whole process: Python, pandas, Prophet, the fitted model)"
    )


def calibrate(spec: MetricSpec, hours: int, seeds: Sequence[int]) -> None:
    profile = fit(spec, 1)
    det = registry.from_profile("prophet", {}, profile)
    quarter = (spec.max - spec.min) / 4
    per_hour: list[float] = []
    caught_up: list[float] = []
    caught_down: list[float] = []
    n = 0
    for seed in seeds:
        for h in range(hours):
            # Scraped at 1 s and a quarter-second phase: not the training's 2 s grid.
            ts = START + 3600 * (1 + h) + np.arange(0.0, 3600.0, 1.0) + 0.25
            clean = wave.values(spec, ts, seed + 1)
            per_hour.append(float(det.update_many(clean, ts).anomalous.mean()))
            caught_up.append(float(det.update_many(clean + quarter, ts).anomalous.mean()))
            caught_down.append(float(det.update_many(clean - quarter, ts).anomalous.mean()))
            n += ts.size
    worst = max(per_hour)
    print(
        f"\ncalibration, {spec.name}: trained on 1 h, scored {hours} h x {len(seeds)} noise seeds "
        f"({n:,} samples at 1 s); band +/- {profile.half_width:.1f} (k=4), period {profile.period:g} s"
    )
    print(f"  clean data flagged: {np.mean(per_hour) * 100:.3f}% overall, worst hour {worst * 100:.3f}%")
    print(
        f"  shift of a quarter range ({quarter:g}) caught: up {min(caught_up) * 100:.2f}%, "
        f"down {min(caught_down) * 100:.2f}% (worst hour)"
    )
    # A model trained on yesterday's data must still be in phase today.
    ts = START + 23 * 3600 + np.arange(0.0, 3600.0, 1.0) + 0.25
    clean = wave.values(spec, ts, 99)
    print(f"  hour 23 after training: {det.update_many(clean, ts).anomalous.mean() * 100:.3f}% flagged")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.monitor", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller figures (fit 1 h only, 1 seed)")
    args = p.parse_args(argv)
    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.ERROR)
    specs = default_metrics()
    bench_fit(specs[1], [1] if args.quick else [1, 6, 24])
    bench_cycles(specs[1], fit(specs[1], 1), 1000, 30.0)
    for spec in specs:
        calibrate(spec, 2 if args.quick else 6, [0] if args.quick else [0, 1, 2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark and calibration of the Prophet monitor: ``python -m bench.monitor [--quick]``.

Prints: fit time for 1 h, 6 h and 24 h of 2 s training data; the cost of one cycle and samples scored
per second; resident memory after 1,000 cycles; and the calibration the issue asks for (share of clean
samples flagged, share of quarter-range shifts caught) on both simulator metrics over several hours.
Data comes from the simulator's own wave function; the cycle runs through the real ``Runner`` with a
``FakeClock`` and an in-process source, so no network time is measured.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import time
from collections.abc import Sequence

import numpy as np

from monitor.detectors import registry
from monitor.detectors.prophet import ProphetBandDetector
from monitor.exporter import MonitorMetrics
from monitor.runner import Runner, RunnerSettings
from simulator import wave
from simulator.config import MetricSpec, default_metrics
from streamwatch.clock import FakeClock
from streamwatch.series import Series

STEP_S = 2.0
START = 1_763_900_000.0


class WaveSource:
    """New samples of a simulator wave since the previous call, as Prometheus would hand them over."""

    def __init__(self, spec: MetricSpec, step_s: float, start: float, seed: int = 3):
        self.spec = spec
        self.step_s = step_s
        self.last = start
        self.seed = seed
        self.labels = {"__name__": spec.metric_name}

    def fetch(self, now: float) -> list[Series]:
        ts = np.arange(self.last + self.step_s, now + 1e-9, self.step_s)
        if ts.size:
            self.last = float(ts[-1])
        return [Series(self.labels, ts, wave.values(self.spec, ts, self.seed))]

    def recent(self, now: float, window: float) -> list[Series]:
        ts = np.arange(now - window, now + 1e-9, self.step_s)
        return [Series(self.labels, ts, wave.values(self.spec, ts, self.seed))]


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def train(spec: MetricSpec, hours: float) -> tuple[np.ndarray, np.ndarray]:
    ts = START + np.arange(0.0, hours * 3600, STEP_S)
    return ts, wave.values(spec, ts)


def bench_fit(spec: MetricSpec, hours_list: Sequence[float]) -> None:
    print(f"\nfit time, {spec.name}, 2 s samples (period detection + Prophet fit + 6 h band grid)")
    for hours in hours_list:
        ts, vs = train(spec, hours)
        began = time.perf_counter()
        det = registry.build("prophet", {}, ts, vs)
        total = time.perf_counter() - began
        print(
            f"  {hours:>4g} h  {ts.size:>6} points  total {total:6.2f} s"
            f"  (Prophet fit {det.fit_seconds:5.2f} s)  period {det.period:g} s"
        )


def bench_cycles(spec: MetricSpec, det: ProphetBandDetector, cycles: int, interval: float) -> None:
    clock = FakeClock(START + 3600)
    source = WaveSource(spec, STEP_S, clock.time())
    runner = Runner(
        det, source, MonitorMetrics(spec.name), clock, RunnerSettings(interval=interval), out=io.StringIO()
    )
    # The wave itself is generated outside the timed part: only what the monitor does is measured.
    batches = []
    for _ in range(cycles):
        clock.advance(interval)
        batches.append(source.fetch(clock.time()))
    rss_before = rss_mib()
    timings = np.empty(cycles)
    scored = 0
    for i, batch in enumerate(batches):
        began = time.perf_counter()
        stats, last = runner.score(batch)
        runner.metrics.record_cycle(stats, START, last)
        runner._print(START, stats)
        timings[i] = time.perf_counter() - began
        scored += stats.samples
    print(f"\ncycles, {spec.name}: {cycles} cycles of {interval:g} s ({scored // cycles} samples each)")
    print(
        f"  per cycle: median {np.median(timings) * 1e6:7.1f} us,"
        f" p99 {np.percentile(timings, 99) * 1e6:7.1f} us"
        f"  ->  {scored / timings.sum():,.0f} samples scored per second"
    )
    # Then the whole cycle as the service runs it (source, scoring, metrics, printed line), for memory.
    for _ in range(cycles):
        clock.advance(interval)
        runner.run_cycle()
    runner.out = io.StringIO()
    print(
        f"  resident memory: {rss_before:.0f} MiB before, {rss_mib():.0f} MiB after {2 * cycles} cycles"
        f" (the whole process: Python, pandas, Prophet, the fitted model)"
    )
    big_ts = START + 3600 + np.arange(0.0, 86400.0, 1.0)
    big_x = wave.values(spec, big_ts[:2000])
    big_x = np.resize(big_x, big_ts.size)
    began = time.perf_counter()
    det.update_many(big_x, big_ts)
    took = time.perf_counter() - began
    print(
        f"  one batch of {big_ts.size:,} samples (a day at 1 s, band extended as needed): {took * 1e3:.1f} ms"
    )


def calibrate(spec: MetricSpec, hours: int, seeds: Sequence[int]) -> None:
    ts_train, vs_train = train(spec, 1)
    det = registry.build("prophet", {}, ts_train, vs_train)
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
        f"({n:,} samples at 1 s); band +/- {det.band.half_width:.1f} (k=4), period {det.period:g} s"
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
    ts, vs = train(specs[1], 1)
    det = registry.build("prophet", {}, ts, vs)
    bench_cycles(specs[1], det, 1000, 30.0)
    for spec in specs:
        calibrate(spec, 2 if args.quick else 6, [0] if args.quick else [0, 1, 2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

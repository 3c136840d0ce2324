"""Benchmark of the many-series monitor: ``python -m bench.series [options]``.

Everything is real and on loopback: ``simulator.py serve --series N`` scraped by Prometheus every 2 s,
and ``monitor.py --config`` watching ``energy_price_metric`` as a subprocess. Three parts (``--parts``):

- ``ema``: N series (default 10,000), the EMA detector, ``--interval`` (default 30 s): the first cycle
  (which trains every series), then the median and worst of ``--cycles`` cycles (read, score, export,
  from the monitor's own log line), the monitor's RSS, and how long a scrape of its /metrics takes.
- ``prophet``: a fleet of ``--prophet-series`` series (default 1,000) with Prophet, once Prometheus
  holds ``--fit-window`` of history: time until every series is fitted, for each ``--workers``
  count (default 1,2).
- ``churn``: a second simulator renames ``--churn-count`` series every ``--churn-every`` seconds for
  ``--churn-duration``: RSS after each period, and exported children against the series that exist.

The load average is printed with each figure: the machine is shared, and the figures mean little
without it. Defaults are the issue's sizes; a shortened run: ``--series 2000 --cycles 3
--prophet-series 50 --churn-every 60 --churn-duration 240``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import requests
import yaml

from harness.procs import ManagedProcess, prometheus_argv, python_argv
from streamwatch.net import free_port, wait_until
from streamwatch.promapi import PrometheusClient

ROOT = Path(__file__).resolve().parent.parent
SCRAPE_S = 2
CYCLE_LINE = re.compile(r"cycle: (\d+) series, (\d+) samples scored, .* ([\d.]+) s$")


def load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Stack:
    """A simulator and the Prometheus scraping it."""

    sim: ManagedProcess
    prom: ManagedProcess
    url: str

    def stop(self) -> None:
        self.sim.stop()
        self.prom.stop()


def start_stack(work: Path, name: str, series: int, *sim_args: str) -> Stack:
    sim_port, prom_port = free_port(), free_port()
    sim = ManagedProcess(
        f"simulator-{name}",
        python_argv("simulator.py", "serve", "--port", str(sim_port), "--series", str(series), *sim_args),
        work / f"simulator-{name}.log",
        cwd=ROOT,
    )
    sim.wait_http(f"http://127.0.0.1:{sim_port}/healthz", 60)
    config = {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_S}s"},
        "scrape_configs": [
            {"job_name": "simulator", "static_configs": [{"targets": [f"127.0.0.1:{sim_port}"]}]}
        ],
    }
    prom_dir = work / f"prometheus-{name}"  # prometheus_argv reads prometheus.yml and keeps its TSDB there
    prom_dir.mkdir(parents=True, exist_ok=True)
    (prom_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom = ManagedProcess(
        f"prometheus-{name}", prometheus_argv(prom_dir, prom_port), work / f"prometheus-{name}.log"
    )
    url = f"http://127.0.0.1:{prom_port}"
    prom.wait_http(f"{url}/-/ready", 60)
    client = PrometheusClient(url, timeout_s=30)

    def all_there() -> bool:
        found = client.query("count(energy_price_metric)")
        return bool(found) and int(found[0].values[0]) == series

    if not wait_until(all_there, 120, 1.0):
        raise SystemExit(f"Prometheus never saw {series} series: {sim.log_tail()}")
    return Stack(sim, prom, url)


@dataclass
class Monitor:
    process: ManagedProcess
    url: str
    log: Path

    def cycles(self) -> list[tuple[int, int, float]]:
        """(series, samples scored, seconds) of each cycle so far, from its log."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            m = CYCLE_LINE.search(line)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), float(m.group(3))))
        return out

    def scrape_s(self) -> tuple[float, str]:
        began = time.perf_counter()
        text = requests.get(self.url, timeout=30).text
        return time.perf_counter() - began, text


def start_monitor(
    work: Path, name: str, prom_url: str, interval: float, query: str, workers: int = 0
) -> Monitor:
    port = free_port()
    cfg = work / f"watch-{name}.toml"
    cfg.write_text(
        f'[monitor]\nport = {port}\nprometheus_url = "{prom_url}"\ninterval = {interval}\n'
        f"fit_workers = {workers}\n\n[[monitor.queries]]\n{query}\n"
    )
    log = work / f"monitor-{name}.log"
    proc = ManagedProcess(f"monitor-{name}", python_argv("monitor.py", "--config", str(cfg)), log, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/metrics"
    proc.wait_http(url, 120)
    return Monitor(proc, url, log)


def children(text: str, metric: str) -> int:
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("streamwatch_monitor_samples_scored_total{") and f'metric="{metric}"' in line
    )


def part_ema(work: Path, stack: Stack, n: int, cycles: int, interval: float) -> None:
    mon = start_monitor(
        work, "ema", stack.url, interval, 'name = "price"\nexpr = "energy_price_metric"\ndetector = "ema"'
    )
    loads = []
    if not wait_until(lambda: len(mon.cycles()) >= cycles + 1, (cycles + 2) * interval + 600, 1.0):
        raise SystemExit(f"the monitor did not run {cycles + 1} cycles: {mon.process.log_tail()}")
    loads.append(load())
    done = mon.cycles()
    scrapes = []
    for _ in range(3):
        took, text = mon.scrape_s()
        scrapes.append(took)
    rss = rss_mib(mon.process.proc.pid)
    steady = [c[2] for c in done[1:]]
    print(f"\nema, {n} series, interval {interval:g} s ({len(steady)} cycles after the first):")
    print(f"  first cycle (reads and trains every series): {done[0][2]:.2f} s")
    print(
        f"  cycle (read, score, export): median {statistics.median(steady):.2f} s, worst {max(steady):.2f} s"
    )
    print(f"  samples scored per cycle: {statistics.median(c[1] for c in done[1:]):.0f}")
    print(f"  monitor RSS: {rss:.0f} MiB; /metrics scrape: median {statistics.median(scrapes):.3f} s")
    print(f"  exported children per metric: {children(text, 'price')} ({len(text) / 1e6:.1f} MB of text)")
    print(f"  load average (1, 5, 15 min) at the end: {loads[-1]}")
    mon.process.stop()


def part_prophet(work: Path, n: int, workers: Sequence[int], fit_window: float) -> None:
    # Its own fleet of n series: a history read of the whole ema fleet would be timed as well.
    stack = start_stack(work, "prophet", n)
    try:
        _prophet(work, stack, n, workers, fit_window)
    finally:
        stack.stop()


def _prophet(work: Path, stack: Stack, n: int, workers: Sequence[int], fit_window: float) -> None:
    client = PrometheusClient(stack.url, timeout_s=30)
    needed = int(0.9 * fit_window / SCRAPE_S)

    def history() -> bool:
        found = client.query(f'count_over_time(energy_price_metric{{series="0"}}[{int(fit_window)}s])')
        return bool(found) and found[0].values[0] >= needed

    if not wait_until(history, fit_window + 120, 2.0):
        raise SystemExit("Prometheus holds too little history for the Prophet part")
    for w in workers:
        query = (
            f'name = "price"\nexpr = "energy_price_metric"\ndetector = "prophet"\nstep = {SCRAPE_S}\n'
            f"fit_window = {fit_window}"
        )
        began = time.monotonic()
        # A short interval: "fitted" is read from /metrics, which counts a fit once the monitor installed it.
        mon = start_monitor(work, f"prophet-{w}", stack.url, 5.0, query, workers=w)
        marker = f'streamwatch_monitor_fits_total{{metric="price"}} {float(n)}'
        loads = []

        def all_fitted(mon: Monitor = mon, marker: str = marker, loads: list[str] = loads) -> bool:
            loads.append(load())
            return marker in mon.scrape_s()[1]

        ok = wait_until(all_fitted, 3600, 2.0)
        took = time.monotonic() - began
        rss = rss_mib(mon.process.proc.pid)
        status = "" if ok else " (NOT all fitted: timed out)"
        print(f"\nprophet, {n} series, fit_workers {w}: every series fitted {took:.0f} s after start{status}")
        flat = mon.log.read_text(errors="replace").count("no repeating shape")
        print(f"  ({n / took:.2f} fits/s; monitor RSS {rss:.0f} MiB, workers not counted)")
        print(f"  {n - flat} fitted with a season, {flat} without (no significant season in the history)")
        print(f"  load average (1, 5, 15 min) at the start / end: {loads[0]} / {loads[-1]}")
        mon.process.stop()


def part_churn(work: Path, n: int, count: int, every: float, duration: float) -> None:
    stack = start_stack(work, "churn", n, "--churn-every", str(every), "--churn-count", str(count))
    try:
        stale = every / 2
        query = f'name = "price"\nexpr = "energy_price_metric"\ndetector = "ema"\nstale_after = {stale:g}'
        mon = start_monitor(work, "churn", stack.url, min(30.0, every / 4), query)
        print(
            f"\nchurn: {n} series, {count} renamed every {every:g} s for {duration:g} s, "
            f"stale_after {stale:g} s"
        )
        print("  time     RSS MiB  children  dropped  load average")
        start = time.monotonic()
        # Sample just before each rename, once the previous generation had stale_after to go.
        first = every - time.time() % every - 5
        k = 0
        while True:
            at = start + first + k * every
            if at - start > duration:
                break
            time.sleep(max(0.0, at - time.monotonic()))
            _, text = mon.scrape_s()
            dropped = next(
                (
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith('streamwatch_monitor_series_dropped_total{metric="price"}')
                ),
                0.0,
            )
            rss = rss_mib(mon.process.proc.pid)
            print(
                f"  {at - start:6.0f} s  {rss:7.0f}  {children(text, 'price'):8d}  {dropped:7.0f}  {load()}"
            )
            k += 1
        mon.process.stop()
    finally:
        stack.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.series", description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="ema,prophet,churn", help="which parts to run (default all three)")
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--cycles", type=int, default=10, help="cycles measured after the first (default 10)")
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--prophet-series", type=int, default=1000)
    p.add_argument("--workers", default="1,2", help="fit_workers values to time (default 1,2)")
    p.add_argument("--fit-window", type=float, default=600.0, help="Prophet history in seconds (default 600)")
    p.add_argument("--churn-series", type=int, default=10_000)
    p.add_argument("--churn-count", type=int, default=1000)
    p.add_argument("--churn-every", type=float, default=600.0)
    p.add_argument("--churn-duration", type=float, default=3600.0)
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    print(
        f"bench.series on {Path('/proc/cpuinfo').read_text().count('processor')} CPUs; load average {load()}"
    )
    with TemporaryDirectory(prefix="bench-series-") as tmp:
        work = Path(tmp)
        if "ema" in parts:
            stack = start_stack(work, "ema", args.series)
            try:
                part_ema(work, stack, args.series, args.cycles, args.interval)
            finally:
                stack.stop()
        if "prophet" in parts:
            workers = [int(w) for w in args.workers.split(",")]
            part_prophet(work, args.prophet_series, workers, args.fit_window)
        if "churn" in parts:
            part_churn(work, args.churn_series, args.churn_count, args.churn_every, args.churn_duration)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

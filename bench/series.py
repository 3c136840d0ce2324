"""Benchmark of the many-series monitor: ``python -m bench.series [options]``.

Everything is real and on loopback: ``simulator.py serve --series N`` scraped by Prometheus every 2 s,
and ``monitor.py --config`` watching ``energy_price_metric`` as a subprocess. Three parts (``--parts``):

- ``monitor``: N series (default 10,000), ``--detector`` (default: ``--config``'s default), ``--interval``
  (default 30 s): the first cycle (which trains every series), then the median and worst of ``--cycles``
  cycles (read, score, export) and of their scoring (both from the monitor's own log line), the
  monitor's CPU per cycle and RSS, how long a scrape of its /metrics takes and how many series it adds.
- ``peer``: side by side on the same N series and the same Prometheus, one after the other: CPU per 30 s
  of Prometheus alone (the baseline), of Streamwatch (the monitor, plus what scraping its exports adds
  to Prometheus), and of Grafana's rules-only framework (its ``adaptive.yml`` rules, read at run time
  from ``--peer-rules``, evaluated by Prometheus on the same series, tagged as its README says); prints
  both costs and their ratio.
- ``inprocess``: ``--inprocess-series`` (default 10,000 and 100,000) in-process, on recorded reads: a
  Prometheus answer of N series x 15 points, decoded and parsed, scored by the query's columnar
  detector and rendered, per cycle; and the process' RSS. For sizes the simulator fleet and Prometheus
  cannot carry on one 2-core machine.
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
import os
import re
import signal
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import requests
import yaml

from harness.procs import ManagedProcess, prometheus_argv, python_argv
from monitor.config import QueryConfig
from streamwatch.net import free_port, wait_until
from streamwatch.promapi import PrometheusClient

ROOT = Path(__file__).resolve().parent.parent
SCRAPE_S = 2
CYCLE_LINE = re.compile(r"cycle: (\d+) series, (\d+) samples scored, .* ([\d.]+) s \(scoring ([\d.]+) s\)$")
PEER_RULES = ROOT.parent / "shared" / "peers" / "grafana-promql-anomaly-detection" / "rules"
TICKS = os.sysconf("SC_CLK_TCK")


def load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


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

    def cycles(self) -> list[tuple[int, int, float, float]]:
        """(series, samples scored, seconds, of which scoring) of each cycle so far, from its log."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            m = CYCLE_LINE.search(line)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4))))
        return out

    def scrape_s(self) -> tuple[float, str]:
        began = time.perf_counter()
        text = requests.get(self.url, timeout=30).text
        return time.perf_counter() - began, text


def start_monitor(
    work: Path, name: str, prom_url: str, interval: float, query: str, workers: int = 0, port: int = 0
) -> Monitor:
    port = port or free_port()
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
    """Series the monitor exports for ``metric`` that carry an input series' labels."""
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("streamwatch_monitor_") and f'metric="{metric}"' in line and 'series="' in line
    )


def monitor_query(detector: str) -> str:
    return f'name = "price"\nexpr = "energy_price_metric"\ndetector = "{detector}"\nstep = {SCRAPE_S}'


def part_monitor(work: Path, stack: Stack, n: int, cycles: int, interval: float, detector: str) -> None:
    mon = start_monitor(work, "monitor", stack.url, interval, monitor_query(detector))
    if not wait_until(lambda: len(mon.cycles()) >= 2, 3 * interval + 600, 1.0):
        raise SystemExit(f"the monitor did not run 2 cycles: {mon.process.log_tail()}")
    cpu0, seen0 = cpu_s(mon.process.proc.pid), len(mon.cycles())
    if not wait_until(lambda: len(mon.cycles()) >= seen0 + cycles, (cycles + 2) * interval + 600, 1.0):
        raise SystemExit(f"the monitor did not run {cycles} more cycles: {mon.process.log_tail()}")
    cpu = (cpu_s(mon.process.proc.pid) - cpu0) / (len(mon.cycles()) - seen0)
    done = mon.cycles()
    scrapes = []
    for _ in range(3):
        took, text = mon.scrape_s()
        scrapes.append(took)
    rss = rss_mib(mon.process.proc.pid)
    steady = done[1:]
    print(
        f"\nmonitor, {detector}, {n} series, interval {interval:g} s ({len(steady)} cycles after the first):"
    )
    print(f"  first cycle (reads history and trains every series): {done[0][2]:.2f} s")
    print(
        f"  cycle (read, score, export): median {statistics.median(c[2] for c in steady):.3f} s, "
        f"worst {max(c[2] for c in steady):.3f} s"
    )
    print(
        f"  of which scoring: median {statistics.median(c[3] for c in steady) * 1e3:.1f} ms, "
        f"worst {max(c[3] for c in steady) * 1e3:.1f} ms"
    )
    print(f"  monitor CPU per cycle: {cpu:.3f} s (user + system, over {len(mon.cycles()) - seen0} cycles)")
    print(f"  samples scored per cycle: {statistics.median(c[1] for c in steady):.0f}")
    print(f"  monitor RSS: {rss:.0f} MiB; /metrics scrape: median {statistics.median(scrapes):.3f} s")
    print(
        f"  series exported per input series: {children(text, 'price') / n:.2f}"
        f" ({len(text) / 1e6:.1f} MB of text)"
    )
    print(f"  load average (1, 5, 15 min) at the end: {load()}")
    mon.process.stop()


def prometheus_cpu(stack: Stack, seconds: float, extra_pid: int | None = None) -> tuple[float, float]:
    """CPU seconds per 30 s of Prometheus (and of ``extra_pid``) over ``seconds``."""
    pids = [stack.prom.proc.pid] + ([extra_pid] if extra_pid else [])
    before = [cpu_s(p) for p in pids]
    time.sleep(seconds)
    used = [cpu_s(p) - b for p, b in zip(pids, before, strict=True)]
    per = 30.0 / seconds
    return used[0] * per, (used[1] * per if extra_pid else 0.0)


def reconfigure(stack: Stack, work: Path, config: dict) -> None:
    """Give the running Prometheus a new configuration (SIGHUP: it runs without the lifecycle API)."""
    (work / "prometheus-monitor" / "prometheus.yml").write_text(yaml.safe_dump(config))
    stack.prom.proc.send_signal(signal.SIGHUP)
    time.sleep(5)


def part_peer(
    work: Path,
    stack: Stack,
    n: int,
    interval: float,
    detector: str,
    rules: Path,
    window: float,
    scrapes: Sequence[float] = (15.0,),
) -> None:
    adaptive = rules / "adaptive.yml"
    if not adaptive.is_file():
        raise SystemExit(
            f"--peer-rules {rules}: no adaptive.yml there (Grafana's rules are read at run time)"
        )
    config = yaml.safe_load((work / "prometheus-monitor" / "prometheus.yml").read_text())
    print(f"\nside by side, {n} series, CPU seconds per 30 s, each measured over {window:.0f} s:")
    base, _ = prometheus_cpu(stack, window)
    print(f"  Prometheus alone (scraping the simulator every {SCRAPE_S} s): {base:.2f} s   load {load()}")

    port = free_port()
    mon = start_monitor(work, "peer", stack.url, interval, monitor_query(detector), port=port)
    # Past the start: the first cycles train every series and write the first snapshot.
    wait_until(lambda: len(mon.cycles()) >= 4, 5 * interval + 600, 1.0)
    totals = []
    # The monitor's exports change once a cycle: scraped every `interval` Prometheus misses nothing,
    # scraped more often it stores the same values again. Each scrape interval is measured in turn.
    for every in scrapes:
        scraped = {
            **config,
            "scrape_configs": [
                *config["scrape_configs"],
                {
                    "job_name": "streamwatch",
                    "scrape_interval": f"{every:g}s",
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                },
            ],
        }
        reconfigure(stack, work, scraped)
        prom, monitor = prometheus_cpu(stack, window, mon.process.proc.pid)
        totals.append(monitor + (prom - base))
        print(
            f"  Streamwatch ({detector}), its exports scraped every {every:g} s: monitor {monitor:.2f} s + "
            f"Prometheus scraping its exports {prom - base:+.2f} s = {totals[-1]:.2f} s   load {load()}"
        )
    mon.process.stop()

    # Grafana's framework takes any series tagged anomaly_name / anomaly_type (its rules/README.md); the
    # tag is a recording rule, as its examples/ do, and the rules are its own files, untouched.
    tag = work / "tag.yml"
    tag.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "bench_tag",
                        "rules": [
                            {
                                "record": "anomaly:resource:price",
                                "expr": "energy_price_metric",
                                "labels": {"anomaly_name": "price", "anomaly_type": "resource"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    reconfigure(stack, work, {**config, "rule_files": [str(tag), str(adaptive)]})
    time.sleep(interval)  # the first evaluations of every group
    prom, _ = prometheus_cpu(stack, window)
    grafana = prom - base
    print(f"  Grafana's rules (adaptive.yml): Prometheus {grafana:+.2f} s   load {load()}")
    for every, total in zip(scrapes, totals, strict=True):
        ratio = f"{total / grafana:.2f}" if grafana > 0 else "n/a"
        print(f"  ratio Streamwatch (scraped every {every:g} s) / Grafana: {ratio}")
    print(
        "  (Grafana's bands span up to 26 h: their evaluations grow as history accumulates, so a run of "
        "minutes measures their cheapest hours.)"
    )
    reconfigure(stack, work, config)


def part_inprocess(sizes: Sequence[int], detector: str, cycles: int) -> None:
    """The cycle's in-process work on recorded reads, for fleets too large for the simulator here."""
    import gc
    import json

    import numpy as np

    from monitor.detectors import registry
    from monitor.export import render_series
    from monitor.query import QueryWatch
    from streamwatch.promapi import decode_json, parse_columns

    for n in sizes:
        q = QueryConfig(
            name="price", expr="energy_price_metric", detector=detector, step=SCRAPE_S, max_series=n
        )
        w = QueryWatch(q, registry.container(detector, q.params))
        rng = np.random.default_rng(0)
        t0 = 1_700_000_000.0

        def body(k: int, n: int = n, t0: float = t0, rng: np.random.Generator = rng) -> bytes:
            ts = t0 + SCRAPE_S * (np.arange(15) + 15 * k)
            level = 500 + 100 * np.sin(ts / 300.0)
            result = [
                {
                    "metric": {
                        "__name__": "energy_price_metric",
                        "instance": "127.0.0.1:5000",
                        "job": "sim",
                        "series": str(i),
                    },
                    "values": [
                        [float(t), repr(float(v))]
                        for t, v in zip(ts, level + rng.normal(0, 5, 15), strict=True)
                    ],
                }
                for i in range(n)
            ]
            return json.dumps(
                {"status": "success", "data": {"resultType": "matrix", "result": result}}
            ).encode()

        bodies = [body(k) for k in range(cycles + 2)]  # recorded: made before anything is timed
        first = parse_columns(decode_json(bodies[0]))
        w.observe(first, t0)
        rows = w.waiting()
        trained = registry.create(detector, q.params, rows=rows.size)
        w.install(rows, trained, np.full(rows.size, t0 - 1.0))
        timing = {"decode and parse": [], "scoring": [], "render": []}
        for k in range(1, cycles + 2):
            began = time.perf_counter()
            read = parse_columns(decode_json(bodies[k]))
            parsed = time.perf_counter()
            w.begin_cycle()
            w.observe(read, t0 + 30 * k)
            scored = time.perf_counter()
            render_series([w])
            rendered = time.perf_counter()
            if k > 1:  # the first includes one-off allocations
                timing["decode and parse"].append(parsed - began)
                timing["scoring"].append(scored - parsed)
                timing["render"].append(rendered - scored)
        gc.collect()
        total = sum(statistics.median(v) for v in timing.values())
        parts = ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in timing.items())
        print(
            f"\nin process, {detector}, {n:,} series x 15 points, median of {cycles} cycles (recorded reads):"
        )
        print(f"  {parts}; together {total:.3f} s")
        print(f"  scoring per series per cycle: {statistics.median(timing['scoring']) / n * 1e6:.1f} us")
        print(
            f"  RSS {rss_mib(os.getpid()):.0f} MiB (this process, the recorded answers included)"
            f"   load {load()}"
        )


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
    p.add_argument(
        "--parts", default="monitor,peer,inprocess,prophet,churn", help="which parts to run (default all)"
    )
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--detector", default=QueryConfig.__dataclass_fields__["detector"].default)
    p.add_argument(
        "--peer-rules", type=Path, default=PEER_RULES, help=f"Grafana's rules/ folder (default {PEER_RULES})"
    )
    p.add_argument(
        "--peer-window", type=float, default=180.0, help="seconds each side-by-side phase is measured"
    )
    p.add_argument(
        "--peer-scrape",
        default="15,30",
        help="scrape intervals of the monitor's /metrics to measure side by side, in s (default 15,30)",
    )
    p.add_argument("--inprocess-series", default="10000,100000")
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
        if parts & {"monitor", "peer"}:
            stack = start_stack(work, "monitor", args.series)
            try:
                if "monitor" in parts:
                    part_monitor(work, stack, args.series, args.cycles, args.interval, args.detector)
                if "peer" in parts:
                    part_peer(
                        work,
                        stack,
                        args.series,
                        args.interval,
                        args.detector,
                        args.peer_rules,
                        args.peer_window,
                        [float(v) for v in args.peer_scrape.split(",")],
                    )
            finally:
                stack.stop()
        if "inprocess" in parts:
            part_inprocess([int(n) for n in args.inprocess_series.split(",")], args.detector, args.cycles)
        if "prophet" in parts:
            workers = [int(w) for w in args.workers.split(",")]
            part_prophet(work, args.prophet_series, workers, args.fit_window)
        if "churn" in parts:
            part_churn(work, args.churn_series, args.churn_count, args.churn_every, args.churn_duration)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

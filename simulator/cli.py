"""``python simulator.py [serve|generate|capture]``: the simulator's command line."""

from __future__ import annotations

import argparse
import json
import logging
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.config import DEFAULT_INSTANCE, DEFAULT_JOB, SimulatorConfig
from streamwatch import config as configlib
from streamwatch.atomic import atomic_write_text
from streamwatch.cli import ArgumentParser
from streamwatch.clock import SystemClock
from streamwatch.durations import parse_duration
from streamwatch.errors import DataError, UserError
from streamwatch.httpguard import ALLOWED_HOST_HELP
from streamwatch.logs import setup_logging

log = logging.getLogger("simulator")
COMMANDS = ("serve", "generate", "capture")
MAX_GENERATE_POINTS = 2_000_000  # monitor.loader.MAX_TRAIN_POINTS (not imported: it loads numpy)
MAX_EPOCH_S = 1e11  # the year 5138; later is milliseconds by mistake

# Flask, pandas and the API client are imported inside the subcommand that needs them: a typo in a
# flag is reported at once, and `serve` starts without loading pandas.


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="simulator.py",
        description="Seasonal Prometheus metric source for Streamwatch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the epilog's usage lines as built
    )
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="serve /metrics, /healthz and /anomalies (the default)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 5000)")
    serve.add_argument("--config", type=Path, help="TOML file with seed, tick_s and [[metrics]]")
    serve.add_argument("--seed", type=int, help="noise seed (default 0)")
    serve.add_argument(
        "--series",
        type=int,
        help="serve each metric as N series told apart by a `series` label, each with its own phase and "
        "amplitude (default 1: one series, no label)",
    )
    serve.add_argument(
        "--churn-every",
        type=float,
        help="with --series: rename --churn-count series every N seconds (benchmarks)",
    )
    serve.add_argument("--churn-count", type=int, help="how many series --churn-every renames (default 0)")
    serve.add_argument("--log-format", choices=("text", "json"), default="text")
    serve.add_argument("--allowed-host", action="append", dest="allowed_hosts", help=ALLOWED_HOST_HELP)
    # The serve flags work without the word "serve" too, so the top-level help shows them, taken from
    # the serve parser itself so the two never disagree.
    usage = " ".join(serve.format_usage().removeprefix("usage: ").split())
    flags = textwrap.fill(usage, 78, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
    parser.epilog = (
        f"Without a subcommand, serve runs (the default):\n{flags}\nSee `simulator.py serve --help`."
    )

    gen = sub.add_parser("generate", help="write training data without a server, as Prometheus returns it")
    gen.add_argument("--metric", required=True, help="metric short name, e.g. energy_price")
    gen.add_argument("--duration", default="1h", help="range to cover, e.g. 1h (default 1h)")
    gen.add_argument("--out", type=Path, required=True, help="output JSON file (written atomically)")
    gen.add_argument("--end", type=float, help="last timestamp, epoch seconds (default now)")
    gen.add_argument("--step", default="2s", help="sample spacing (default 2s, the scrape interval)")
    gen.add_argument("--seed", type=int, help="noise seed (default from config, 0)")
    gen.add_argument("--config", type=Path, help="TOML file with [[metrics]]")
    gen.add_argument("--job", default=DEFAULT_JOB, help=f"job label (default {DEFAULT_JOB})")
    gen.add_argument(
        "--instance", default=DEFAULT_INSTANCE, help=f"instance label (default {DEFAULT_INSTANCE})"
    )

    cap = sub.add_parser("capture", help="save a live Prometheus' answer to a range query")
    cap.add_argument("--prometheus-url", default="http://127.0.0.1:9090")
    cap.add_argument("--query", required=True, help="range selector, e.g. 'energy_price_metric[1h]'")
    cap.add_argument("--out", type=Path, required=True, help="output JSON file (written atomically)")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = list(argv) if argv is not None else None
    if args is None:
        import sys

        args = sys.argv[1:]
    # `python simulator.py --port 5000` keeps working: no subcommand means serve.
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help")):
        args = ["serve", *args]
    return _parser().parse_args(args)


def load_config(path: Path | None, **overrides: Any) -> SimulatorConfig:
    return configlib.load(SimulatorConfig, path, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "generate":
        return cmd_generate(args)
    if args.command == "capture":
        return cmd_capture(args)
    return cmd_serve(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from simulator.app import create_app
    from streamwatch.wsgi import serve

    cfg = load_config(
        args.config,
        host=args.host,
        port=args.port,
        seed=args.seed,
        allowed_hosts=args.allowed_hosts,
        series=args.series,
        churn_every=args.churn_every,
        churn_count=args.churn_count,
    )
    setup_logging(args.log_format)
    clock = SystemClock()
    app = create_app(cfg, clock)
    names = ", ".join(m.metric_name for m in cfg.metrics)
    started = f"simulator serving {names} on http://{cfg.host}:{cfg.port} (seed {cfg.seed})"
    return serve(app, cfg.host, cfg.port, "simulator", started, on_stop=clock.stop)


def cmd_generate(args: argparse.Namespace) -> int:
    from simulator.training import generate

    cfg = load_config(args.config, seed=args.seed)
    spec = cfg.metric(args.metric)
    if spec is None:
        raise UserError(f"unknown metric {args.metric!r} (known: {', '.join(cfg.metric_names)})")
    duration_s = parse_duration(args.duration, "--duration")
    step_s = parse_duration(args.step, "--step")
    if step_s > duration_s:
        raise UserError(f"--step {args.step} is longer than --duration {args.duration}")
    # 100000d at 2 s was accepted: 4.3 billion points. A monitor trains on at most MAX_TRAIN_POINTS.
    points = duration_s / step_s
    if points > MAX_GENERATE_POINTS:
        raise UserError(
            f"--duration {args.duration} at --step {args.step} is {points:,.0f} points, more than "
            f"{MAX_GENERATE_POINTS:,} (the most a monitor trains on); shorten it or raise --step"
        )
    if args.end is not None and not 0 <= args.end <= MAX_EPOCH_S:
        raise UserError(f"--end must be epoch seconds from 0 to {MAX_EPOCH_S:g}, got {args.end:g}")
    end = args.end if args.end is not None else time.time()
    doc = generate(spec, end, duration_s, step_s, cfg.seed, cfg.tick_s, args.job, args.instance)
    _write_json(args.out, doc)
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    from simulator.training import capture
    from streamwatch.promapi import PrometheusClient

    doc = capture(PrometheusClient(args.prometheus_url), args.query)
    _write_json(args.out, doc)
    return 0


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    try:
        text = json.dumps(doc, separators=(",", ":"), allow_nan=False)  # NaN/Infinity are not JSON
    except ValueError:
        raise DataError(f"{path}: not written: the data holds NaN or infinite values") from None
    try:
        atomic_write_text(path, text + "\n")
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None

"""``python monitor.py --config watch.toml``: every series of every ``[[monitor.queries]]`` query."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from werkzeug.serving import make_server

from monitor.config import MonitorConfig, load_file
from monitor.fleetexport import FleetMetrics, wsgi_app
from monitor.watch import FleetRunner
from streamwatch.clock import SystemClock
from streamwatch.errors import UserError
from streamwatch.logs import setup_logging
from streamwatch.net import require_free_port
from streamwatch.promapi import PrometheusClient

log = logging.getLogger("monitor")


def load(args: argparse.Namespace) -> MonitorConfig:
    if args.config is None:
        raise UserError("give METRIC TRAIN_FILE PORT, or --config FILE with [[monitor.queries]] tables")
    cfg = load_file(
        args.config,
        prometheus_url=args.prometheus_url,
        interval=args.interval,
        host=args.host,
        log_format=args.log_format,
    )
    if not cfg.queries:
        raise UserError(f"{args.config}: no [[monitor.queries]] table: nothing to watch")
    if cfg.port is None:
        raise UserError(f"{args.config}: [monitor] needs port = N (where /metrics is served)")
    return cfg


def main(args: argparse.Namespace) -> int:
    cfg = load(args)
    setup_logging(cfg.log_format)
    logging.getLogger("prophet.plot").disabled = True
    assert cfg.port is not None
    require_free_port(cfg.host, cfg.port, "monitor")
    metrics = FleetMetrics([q.name for q in cfg.queries])
    server = make_server(cfg.host, cfg.port, wsgi_app(metrics), threaded=True)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    clock = SystemClock()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: clock.stop())
    runner = FleetRunner(cfg, PrometheusClient(cfg.prometheus_url), clock, metrics)
    names = ", ".join(f"{q.name} ({q.detector})" for q in cfg.queries)
    log.info("watching %s every %g s, serving http://%s:%d/metrics", names, cfg.interval, cfg.host, cfg.port)
    try:
        runner.run()
    finally:
        server.shutdown()
    log.info("stopped")
    return 0

"""``python monitor.py --config watch.toml``: every series of every ``[[monitor.queries]]`` query."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import socket
import threading

from werkzeug.serving import make_server

from monitor import snapshot
from monitor.cli import prepare_model_dir
from monitor.config import MonitorConfig, load_file
from monitor.fleetexport import FleetMetrics, wsgi_app
from monitor.shard import belongs, parse_shard
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
    # Flags of the one-series form would be silently ignored here: each query says its own.
    for flag, given in (
        ("--query", args.query),
        ("--param", args.param),
        ("--period", args.period),
        ("--retrain-every", args.retrain_every),
    ):
        if given:
            raise UserError(f"{flag} is for the METRIC TRAIN_FILE PORT form; set it in [[monitor.queries]]")
    cfg = load_file(
        args.config,
        prometheus_url=args.prometheus_url,
        interval=args.interval,
        host=args.host,
        log_format=args.log_format,
        port=args.port_option,
        shard=args.shard,
        model_dir=str(args.model_dir) if args.model_dir else None,
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
    shard = parse_shard(cfg.shard, socket.gethostname()) if cfg.shard else None
    require_free_port(cfg.host, cfg.port, "monitor")
    prepare_model_dir(cfg.model_dir)  # snapshots go there: a folder that cannot hold them fails now
    metrics = FleetMetrics([q.name for q in cfg.queries])
    index, count = shard or (0, 1)
    metrics.shard_info.labels(str(index), str(count)).set(1)
    server = make_server(cfg.host, cfg.port, wsgi_app(metrics), threaded=True)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    clock = SystemClock()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: clock.stop())
    accept = (lambda labels: belongs(labels, index, count)) if count > 1 else None
    runner = SnapshottingRunner(cfg, PrometheusClient(cfg.prometheus_url), clock, metrics, accept=accept)
    runner.shard = shard  # names its snapshot files, so replicas sharing a folder keep theirs apart
    runner.restore()
    names = ", ".join(f"{q.name} ({q.detector})" for q in cfg.queries)
    where = f", shard {index}/{count}" if count > 1 else ""
    log.info(
        "watching %s every %g s%s, serving http://%s:%d/metrics",
        names,
        cfg.interval,
        where,
        cfg.host,
        cfg.port,
    )
    try:
        runner.run()
    finally:
        runner.snapshot()  # on SIGTERM too: a restart resumes from here instead of retraining
        server.shutdown()
    log.info("stopped")
    return 0


class SnapshottingRunner(FleetRunner):
    """The fleet loop, writing every detector's state every ``snapshot_every`` seconds and restoring it
    at start (``monitor.snapshot``)."""

    shard: tuple[int, int] | None = None
    last_snapshot: float = -math.inf

    def restore(self) -> None:
        now = self.clock.time()
        self.last_snapshot = now
        for w in self.watches:
            saved = snapshot.load(
                snapshot.snapshot_path(self.cfg.model_dir, w.query.name, self.shard), w.query
            )
            restored = sum(
                w.fleet.restore(
                    s.labels, s.detector, s.trained_until, s.last_seen, now, s.samples, s.anomalies
                )
                for s in saved
            )
            self.metrics.restored.labels(w.query.name).inc(restored)
            self.metrics.series.labels(w.query.name).set(len(w.fleet.series))
            if saved:
                log.info("query %s: %d of %d saved series restored", w.query.name, restored, len(saved))

    def run_cycle(self) -> bool:
        ok = super().run_cycle()
        if self.clock.time() - self.last_snapshot >= self.cfg.snapshot_every:
            self.snapshot()
        return ok

    def snapshot(self) -> None:
        self.last_snapshot = self.clock.time()
        for w in self.watches:
            path = snapshot.snapshot_path(self.cfg.model_dir, w.query.name, self.shard)
            try:
                n = snapshot.save(path, w.fleet)
            except OSError as exc:  # a full or read-only volume: keep scoring, say so
                log.warning(
                    "query %s: snapshot not written to %s: %s", w.query.name, path, exc.strerror or exc
                )
                continue
            log.debug("query %s: %d series saved to %s", w.query.name, n, path)

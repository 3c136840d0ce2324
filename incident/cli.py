"""``python incident_detector.py``: watch the monitors' anomaly counters and keep the incident log."""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Sequence

from incident.config import IncidentConfig
from incident.log import IncidentLog
from incident.service import IncidentWatcher, check_queries, serve
from incident.state import StateFile, state_path_for
from streamwatch.cli import ArgumentParser
from streamwatch.clock import SystemClock
from streamwatch.config import load
from streamwatch.logs import setup_logging
from streamwatch.net import require_free_port
from streamwatch.promapi import PrometheusClient

log = logging.getLogger("incident")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="incident_detector.py",
        description="Turn the monitors' anomaly counts into Sev 1 / Sev 2 incidents: a decaying score per "
        "series (never summed per metric), an append-only incident log, and metrics for Prometheus "
        "alerting rules.",
    )
    p.add_argument("--config", help="TOML file with any IncidentConfig keys (flags win over the file)")
    p.add_argument("--port", type=int, help="port for /metrics, /state and /healthz (default 8110)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--prometheus-url", help="Prometheus to query (default http://127.0.0.1:9090)")
    p.add_argument("--interval", type=float, help="seconds between cycles (default 5)")
    p.add_argument("--log", help="incident log file, append-only (default incidents.log)")
    p.add_argument(
        "--log-format",
        choices=["json", "text"],
        help="incident log file format: json lines (default) or readable text for tail -f",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        "port": args.port,
        "host": args.host,
        "prometheus_url": args.prometheus_url,
        "interval": args.interval,
        "log": args.log,
        "log_format": args.log_format,
    }
    cfg = load(IncidentConfig, args.config, overrides=overrides)
    setup_logging("text")
    # Checked before the log is opened, so a busy port leaves no empty incident log behind.
    require_free_port(cfg.host, cfg.port, "incident detector")
    client = PrometheusClient(cfg.prometheus_url, timeout_s=cfg.prometheus_timeout_s)
    check_queries(client, cfg)  # a query Prometheus cannot parse is a config error, not an outage
    clock = SystemClock()
    incident_log = IncidentLog(cfg.log, cfg.log_format, cfg.log_max_bytes, cfg.log_backup_count)
    state_file = StateFile(state_path_for(cfg.log))
    watcher = IncidentWatcher(cfg, client, clock, incident_log, state_file=state_file)
    server = serve(watcher, cfg.host, cfg.port)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: clock.stop())
    r = cfg.rules()
    log.info(
        "watching %s via %s every %gs: half-life %gs, threshold %g (clear below %g), Sev 1 at %d metrics; "
        "metrics on http://%s:%d/metrics, log %s",
        ",".join(cfg.metrics) or "every metric's series", cfg.prometheus_url, cfg.interval, r.half_life_s,
        r.threshold, r.clear_threshold, r.sev1_min_metrics, cfg.host, cfg.port, cfg.log,
    )  # fmt: skip
    try:
        watcher.run()
    finally:
        server.shutdown()
        incident_log.close()
    log.info("stopped")
    return 0

"""``python -m dashboard``: serve the live page on 127.0.0.1:8000."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from streamwatch import cli as sw_cli
from streamwatch.config import load
from streamwatch.httpguard import ALLOWED_HOST_HELP
from streamwatch.logs import setup_logging
from streamwatch.wsgi import serve

log = logging.getLogger("dashboard")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = sw_cli.ArgumentParser(
        prog="dashboard",
        description="Streamwatch's live page: forecast bands, anomalies, incident scores and severity, read "
        "from Prometheus' HTTP API.",
    )
    p.add_argument("--config", type=Path, help="TOML file; its [dashboard] table holds the keys below")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000)")
    p.add_argument("--prometheus-url", help="Prometheus to read from (default http://127.0.0.1:9090)")
    p.add_argument(
        "--simulator-url", help="simulator for the injection buttons (default http://127.0.0.1:5000)"
    )
    p.add_argument(
        "--incident-url",
        help="incident detector for the banner and incident list (default http://127.0.0.1:8110)",
    )
    p.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        help="watched metric short name; repeat for several (default energy_consumption, energy_price)",
    )
    p.add_argument("--refresh", type=float, dest="refresh_s", help="seconds between page updates (default 2)")
    p.add_argument("--allowed-host", action="append", dest="allowed_hosts", help=ALLOWED_HOST_HELP)
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_format)
    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "prometheus_url": args.prometheus_url,
        "simulator_url": args.simulator_url,
        "incident_url": args.incident_url,
        "metrics": args.metrics,
        "refresh_s": args.refresh_s,
        "allowed_hosts": args.allowed_hosts,
    }
    cfg = load(DashboardConfig, args.config, section="dashboard", overrides=overrides)
    app = create_app(cfg)
    metrics = ", ".join(cfg.metrics)
    started = f"dashboard on http://{cfg.host}:{cfg.port}/ reading {cfg.prometheus_url} (metrics: {metrics})"
    return serve(app, cfg.host, cfg.port, "dashboard", started)


def run(argv: Sequence[str] | None = None) -> int:
    return sw_cli.run(main, argv, prog="dashboard")

"""An Alertmanager webhook receiver: every alert it is sent goes to an append-only alert log.

``prometheus/alertmanager.yml`` delivers to ``http://127.0.0.1:5001/``; ``make demo`` runs this
receiver there, so a new user sees Sev 1 / Sev 2 alerts arrive (``tail -f var/alerts.log``) before
wiring Alertmanager to a pager, a chat room or email. It also counts what it received, for Prometheus.

    python -m incident.webhook [--host 127.0.0.1] [--port 5001] [--log alerts.log]
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask, Response, jsonify, request
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from incident.log import AppendOnlyLog, check_rotation, dumps
from streamwatch import healthz
from streamwatch.cli import ArgumentParser, run
from streamwatch.config import check_host, load
from streamwatch.httpguard import ALLOWED_HOST_HELP, Guard, protect
from streamwatch.logs import setup_logging
from streamwatch.ranges import BODY_BYTES, LOG_BACKUPS, LOG_BYTES, PORT, Range, check_ranges
from streamwatch.wsgi import serve

log = logging.getLogger("alerts")


@dataclass
class WebhookConfig:
    host: str = "127.0.0.1"
    port: int = 5001
    log: str = "alerts.log"
    log_max_bytes: int = 10_000_000
    log_backup_count: int = 5
    recent: int = 100  # alerts kept in memory for GET /alerts
    # Host names Alertmanager may call the receiver by besides the bind address and localhost.
    allowed_hosts: list[str] = field(default_factory=list)
    # Larger than the other services' 64 KiB: Alertmanager never retries a 4xx, so a notification
    # refused as too large would be lost; 1 MiB holds hundreds of alerts.
    max_body_bytes: int = 1024 * 1024

    RANGES: ClassVar[dict[str, Range]] = {
        "port": PORT,
        "log_max_bytes": LOG_BYTES,
        "log_backup_count": LOG_BACKUPS,
        "recent": Range(1, 10_000),
        "max_body_bytes": BODY_BYTES,
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_host("host", self.host)
        check_rotation(self.log_max_bytes, self.log_backup_count)
        self.guard()  # a malformed allowed_hosts entry is a config error at start

    def guard(self) -> Guard:
        """What POST / accepts: Alertmanager's JSON at our own Host, never a browser's cross-site post."""
        return Guard.for_server(self.host, self.port, self.allowed_hosts, self.max_body_bytes)


def _strings(value: Any, where: str) -> dict[str, str]:
    """A label or annotation set: an object of strings (Alertmanager's are never anything else)."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object of strings")
    for k, v in value.items():
        if not isinstance(v, str):
            raise ValueError(f"{where}.{k} must be a string, got {type(v).__name__}")
    return dict(value)


def _time_text(value: Any, where: str) -> str | None:
    """``startsAt``/``endsAt``: an RFC 3339 string as Alertmanager sends it (or absent)."""
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{where} must be an RFC 3339 time string, got {type(value).__name__}")


def alert_records(payload: Any, received: float) -> list[dict[str, Any]]:
    """The alerts of one Alertmanager webhook payload (version 4), one flat record each.

    Raises ``ValueError`` naming what is wrong when ``payload`` is not such a notification. Everything
    is checked here, before anything is written: a 5xx after a line was written would make Alertmanager
    retry, and the retry write it twice.
    """
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object (Alertmanager's webhook payload)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("'alerts' must be a list")
    receiver = payload.get("receiver")
    if receiver is not None and not isinstance(receiver, str):
        raise ValueError("'receiver' must be a string")
    out = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise ValueError(f"alerts[{i}] must be an object with 'labels'")
        labels = _strings(alert.get("labels"), f"alerts[{i}].labels")
        annotations = _strings(alert.get("annotations") or {}, f"alerts[{i}].annotations")
        status = alert.get("status", payload.get("status", "unknown"))
        if not isinstance(status, str):
            raise ValueError(f"alerts[{i}].status must be a string")
        out.append(
            {
                "received": round(received, 3),
                "status": status,
                "alertname": labels.get("alertname", ""),
                "labels": labels,
                "annotations": annotations,
                "startsAt": _time_text(alert.get("startsAt"), f"alerts[{i}].startsAt"),
                "endsAt": _time_text(alert.get("endsAt"), f"alerts[{i}].endsAt"),
                "receiver": receiver,
            }
        )
    return out


def one_line(record: dict[str, Any]) -> str:
    labels = record["labels"]
    where = " ".join(f"{k}={labels[k]}" for k in ("sev", "metric") if k in labels)
    summary = record["annotations"].get("summary", "")
    return f"{record['status'].upper():8} {record['alertname']} {where} {summary}".rstrip()


def create_app(cfg: WebhookConfig, alert_log: AppendOnlyLog, clock: Callable[[], float] = time.time) -> Flask:
    """The receiver: POST / (Alertmanager), GET /alerts (recent), GET /metrics, GET /healthz."""
    app = Flask("incident.webhook")
    protect(app, cfg.guard())  # a foreign page once wrote a forged "resolved" line into alerts.log
    registry = CollectorRegistry()
    received = Counter(
        "streamwatch_alerts_received_total",
        "Alerts received from Alertmanager, by alert name and status (firing or resolved).",
        ["alertname", "status"],
        registry=registry,
    )
    recent: deque[dict[str, Any]] = deque(maxlen=cfg.recent)
    lock = threading.Lock()

    @app.post("/")
    def receive() -> Any:
        payload = request.get_json(silent=True)  # the guard already refused any other Content-Type
        try:
            records = alert_records(payload, clock())
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        lines = [dumps(record) for record in records]  # all formatted before the first is written
        with lock:  # one writer at a time keeps lines whole
            for record, line in zip(records, lines, strict=True):
                try:
                    alert_log.append_line(line)
                except OSError as exc:
                    # A 5xx makes Alertmanager retry the notification, so a full disk delays the alerts
                    # instead of losing them (the ones already written may then appear twice).
                    log.error("cannot write %s: %s", alert_log.path, exc.strerror or exc)
                    msg = f"cannot write the alert log: {exc.strerror or exc}"
                    return jsonify(error=msg), 503
                recent.append(record)
                received.labels(record["alertname"], record["status"]).inc()
                log.info("%s", one_line(record))
        return jsonify(received=len(records)), 200

    @app.get("/alerts")
    def alerts() -> Any:
        with lock:
            return jsonify(alerts=list(recent))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    healthz.add_route(app)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="incident.webhook", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="TOML file with any WebhookConfig keys (flags win over the file)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 5001)")
    p.add_argument("--log", help="alert log, append-only JSON lines (default alerts.log)")
    p.add_argument("--allowed-host", action="append", dest="allowed_hosts", help=ALLOWED_HOST_HELP)
    args = p.parse_args(argv)
    flags = {"host": args.host, "port": args.port, "log": args.log, "allowed_hosts": args.allowed_hosts}
    cfg = load(WebhookConfig, args.config, overrides=flags)
    setup_logging()
    disable_created_metrics()
    with AppendOnlyLog(cfg.log, cfg.log_max_bytes, cfg.log_backup_count) as alert_log:
        app = create_app(cfg, alert_log)
        started = f"alert receiver on http://{cfg.host}:{cfg.port}/ writing {cfg.log}"
        return serve(app, cfg.host, cfg.port, "alert receiver", started)


if __name__ == "__main__":
    raise SystemExit(run(main, prog="incident.webhook"))

"""The simulator's Flask application (app factory): /metrics, /healthz and the /anomalies API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)

from simulator.active import ActiveAnomalies, TooManyAnomalies
from simulator.anomalies import AnomalyError, validate, validate_series
from simulator.config import SimulatorConfig
from simulator.exporter import build_registry
from streamwatch import healthz
from streamwatch.clock import Clock, SystemClock
from streamwatch.httpguard import protect

log = logging.getLogger("simulator")


@dataclass
class SimulatorState:
    config: SimulatorConfig
    clock: Clock
    anomalies: ActiveAnomalies
    registry: CollectorRegistry
    injected: Counter


def create_app(config: SimulatorConfig | None = None, clock: Clock | None = None) -> Flask:
    config = config or SimulatorConfig()
    clock = clock or SystemClock()
    disable_created_metrics()
    anomalies = ActiveAnomalies(config.max_active_anomalies)
    registry, injected = build_registry(config, anomalies, clock)
    state = SimulatorState(config, clock, anomalies, registry, injected)
    specs = {m.name: m for m in config.metrics}

    app = Flask("simulator")
    app.extensions["simulator"] = state
    protect(app, config.guard())  # JSON only, same origin, our Host, bounded body; no NaN in or out

    def error(status: int, message: str, field: str | None = None) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": message}
        if field is not None:
            body["field"] = field
        return jsonify(body), status

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    healthz.add_route(app, lambda: {"metrics": [m.metric_name for m in config.metrics]})

    @app.get("/anomalies")
    def list_anomalies() -> Response:
        return jsonify({"anomalies": [a.to_json() for a in anomalies.active(clock.time())]})

    @app.post("/anomalies")
    def inject() -> tuple[Response, int]:
        body = request.get_json(silent=True)  # the guard already refused any other Content-Type
        if body is None:
            return error(400, "body must be a JSON object", "body")
        try:
            metric, kind, magnitude, duration_s = validate(body, specs)
            series = validate_series(body, config.series)
        except AnomalyError as exc:
            return error(400, str(exc), exc.field)
        try:
            anomaly = anomalies.add(metric, kind, magnitude, duration_s, clock.time(), series)
        except TooManyAnomalies as exc:
            return error(429, str(exc))
        injected.labels(metric, kind).inc()
        target = metric if series is None else f'{metric}{{series="{series}"}}'
        log.info(
            "injected %s on %s: magnitude %g for %gs (id %s)", kind, target, magnitude, duration_s, anomaly.id
        )
        return jsonify(anomaly.to_json()), 201

    @app.delete("/anomalies/<anomaly_id>")
    def end_anomaly(anomaly_id: str) -> tuple[Response | str, int]:
        removed = anomalies.remove(anomaly_id)
        if removed is None:
            return error(404, f"no active anomaly with id {anomaly_id!r}", "id")
        log.info("ended %s on %s early (id %s)", removed.kind, removed.metric, removed.id)
        return "", 204

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> tuple[Response, int]:
        return error(404, f"no such endpoint: {request.method} {request.path}")

    @app.errorhandler(405)
    def not_allowed(_exc: Exception) -> tuple[Response, int]:
        return error(405, f"method {request.method} not allowed on {request.path}")

    return app
